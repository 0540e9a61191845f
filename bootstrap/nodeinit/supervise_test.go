package nodeinit

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSupervisorRestartsWithBackoff(t *testing.T) {
	dir := t.TempDir()
	stamps := filepath.Join(dir, "starts")
	// A real daemon that prints, leaves a partial line, and dies at once.
	script := `date +%s.%N >> "$1"; echo "starting"; echo "oops" >&2; printf partial; exit 3`
	var out syncBuffer
	s := &Supervisor{Name: "flaky", Path: "/bin/sh", Args: []string{"-c", script, "sh", stamps},
		Output: &out, MinBackoff: 50 * time.Millisecond, MaxBackoff: 400 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	// Count starts by the children's own stamps, not s.Starts(): a child
	// counted as started may not have written its stamp yet when cancel
	// kills it.
	deadline := time.Now().Add(20 * time.Second)
	for stampCount(stamps) < 6 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	b, err := os.ReadFile(stamps)
	if err != nil {
		t.Fatal(err)
	}
	var times []float64
	for _, l := range strings.Fields(string(b)) {
		var f float64
		if _, err := fmt.Sscan(l, &f); err != nil {
			t.Fatal(err)
		}
		times = append(times, f)
	}
	if len(times) < 6 {
		t.Fatalf("%d starts in 20s, want at least 6", len(times))
	}
	// Gaps grow: 50, 100, 200, 400, 400 ms (plus the child's own run time).
	wantMin := []float64{0.05, 0.1, 0.2, 0.4, 0.4}
	for i, w := range wantMin {
		gap := times[i+1] - times[i]
		if gap < w*0.9 {
			t.Errorf("gap %d = %.3fs, want at least %.3fs", i, gap, w)
		}
		if gap > w+3 {
			t.Errorf("gap %d = %.3fs, far above the %.3fs back-off", i, gap, w)
		}
	}
	o := out.String()
	for _, want := range []string{"flaky: starting\n", "flaky: oops\n", "flaky: partial\n"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
}

func TestSupervisorStopsDaemon(t *testing.T) {
	var out syncBuffer
	// A daemon that ignores SIGTERM gets SIGKILL after StopTimeout.
	s := &Supervisor{Name: "stubborn", Path: "/bin/sh", Args: []string{"-c", `trap "echo got-term" TERM; echo up; while :; do sleep 0.05; done`},
		Output: &out, StopTimeout: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "stubborn: up") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return: the daemon was not killed")
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("stopped in %s: SIGKILL came before StopTimeout", took)
	}
	if !strings.Contains(out.String(), "stubborn: got-term") {
		t.Errorf("the daemon never saw SIGTERM:\n%s", out.String())
	}
	if s.Starts() != 1 {
		t.Errorf("starts = %d, want 1 (no restart during shutdown)", s.Starts())
	}
}

func TestBackoff(t *testing.T) {
	s := &Supervisor{MinBackoff: time.Second, MaxBackoff: 8 * time.Second, ResetAfter: time.Minute}
	var w time.Duration
	var got []time.Duration
	for range 6 {
		w = s.Backoff(w, time.Second)
		got = append(got, w)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("back-off sequence %v, want %v s", got, want)
		}
	}
	if s.Backoff(8*time.Second, 2*time.Minute) != time.Second {
		t.Fatal("a long run must reset the back-off")
	}
}

// stampCount returns how many complete lines the file at path holds.
func stampCount(path string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\n")
}
