package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDecodeQMP(t *testing.T) {
	for line, ok := range map[string]bool{
		`{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}`: true,
		`{"return": {}}`: true,
		`{"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}`:                                                  true,
		`{"event": "DEVICE_DELETED", "data": {"device": "d1", "path": "/machine/peripheral/d1"}, "timestamp": {"seconds": 1, "microseconds": 2}}`: true,
		`{"return": {}, "event": "X"}`: false,
		`{}`:                           false,
		`[1]`:                          false,
		`{"return": `:                  false,
	} {
		_, err := decodeQMP([]byte(line))
		if (err == nil) != ok {
			t.Errorf("decodeQMP(%s): err %v, want ok=%v", line, err, ok)
		}
	}
}

// FuzzDecodeQMP: a message decodeQMP accepts is exactly one kind, and
// re-encoding its parts decodes to the same kind.
func FuzzDecodeQMP(f *testing.F) {
	f.Add([]byte(`{"return": {"running": true}}`))
	f.Add([]byte(`{"event": "DEVICE_DELETED", "data": {"device": "d1"}}`))
	f.Add([]byte(`{"error": {"class": "GenericError", "desc": "x"}}`))
	f.Add([]byte(`{"QMP": {}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := decodeQMP(line)
		if err != nil {
			return
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("re-encode %s: %v", line, err)
		}
		m2, err := decodeQMP(b)
		if err != nil {
			t.Fatalf("re-encoded %s does not decode: %v", b, err)
		}
		if (m.Return != nil) != (m2.Return != nil) || m.Event != m2.Event || (m.Error != nil) != (m2.Error != nil) || (m.Greeting != nil) != (m2.Greeting != nil) {
			t.Fatalf("kind changed: %s -> %s", line, b)
		}
	})
}

func TestConsole(t *testing.T) {
	c := newConsole(nil)
	done := make(chan string, 1)
	go func() {
		l, err := c.wait(context.Background(), func(l string) bool { return strings.Contains(l, "STOWAGE-VM: exit") })
		if err != nil {
			l = err.Error()
		}
		done <- l
	}()
	for _, p := range []string{"boot\r\nSTOWAGE", "-VM: ex", "it 0\r\n", "tail without newline"} {
		if _, err := c.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if l := <-done; l != "STOWAGE-VM: exit 0" {
		t.Fatalf("wait returned %q", l)
	}
	if got := c.tail(2); got != "boot\nSTOWAGE-VM: exit 0\ntail without newline" && got != "STOWAGE-VM: exit 0\ntail without newline" {
		t.Fatalf("tail %q", got)
	}
	c.close()
	if _, err := c.wait(context.Background(), func(l string) bool { return l == "never" }); !errors.Is(err, errConsoleClosed) {
		t.Fatalf("wait after close: %v", err)
	}
	if l, _, ok := c.find(func(l string) bool { return strings.HasPrefix(l, "tail") }); !ok || l != "tail without newline" {
		t.Fatalf("the partial last line was not kept at close: %q", l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2 := newConsole(nil)
	if _, err := c2.wait(ctx, func(string) bool { return false }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}

func TestLockHost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	ctx := context.Background()
	unlock, err := lockHost(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := lockHost(short, path); err == nil || !strings.Contains(err.Error(), "another guest") {
		t.Fatalf("second lock: err %v", err)
	}
	unlock()
	unlock2, err := lockHost(ctx, path)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}
