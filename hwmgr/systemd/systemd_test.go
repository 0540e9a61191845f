package systemd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"
)

// notifySocket listens on a unixgram socket as systemd does and points
// NOTIFY_SOCKET at it.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdnotify") // short: sun_path is 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyReadyWatchdogStopping(t *testing.T) {
	c := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "40000") // 40 ms: pings every 20 ms
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	ok, err := Ready("serving 3 drives")
	if err != nil || !ok {
		t.Fatalf("Ready: %v %v", ok, err)
	}
	if got := recv(t, c); got != "READY=1\nSTATUS=serving 3 drives" {
		t.Fatalf("got %q", got)
	}
	iv, err := WatchdogInterval()
	if err != nil || iv != 20*time.Millisecond {
		t.Fatalf("WatchdogInterval = %v, %v; want 20ms (half of WATCHDOG_USEC)", iv, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Watchdog(ctx, iv, func() bool { return true }) }()
	for i := 0; i < 3; i++ {
		if got := recv(t, c); got != "WATCHDOG=1" {
			t.Fatalf("ping %d: %q", i, got)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ok, err := Stopping(); err != nil || !ok {
		t.Fatalf("Stopping: %v %v", ok, err)
	}
	// Pings already queued before cancel may precede STOPPING=1.
	for {
		got := recv(t, c)
		if got == "STOPPING=1" {
			break
		}
		if got != "WATCHDOG=1" {
			t.Fatalf("got %q, want STOPPING=1", got)
		}
	}
}

func TestWatchdogForAnotherProcess(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "40000")
	t.Setenv("WATCHDOG_PID", "1")
	if iv, err := WatchdogInterval(); err != nil || iv != 0 {
		t.Fatalf("watchdog of pid 1: %v %v, want 0", iv, err)
	}
}

func TestNotifyWithoutSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")
	if ok, err := Ready("x"); ok || err != nil {
		t.Fatalf("Ready without NOTIFY_SOCKET: %v %v", ok, err)
	}
}

func TestListenFallsBackWithoutActivation(t *testing.T) {
	t.Setenv("LISTEN_FDS", "")
	os.Unsetenv("LISTEN_FDS")
	l, activated, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if activated {
		t.Fatal("activated without LISTEN_FDS")
	}
}

// TestSocketActivation passes a listening socket as fd 3 to a re-executed
// test binary the way systemd does (LISTEN_FDS=1, LISTEN_PID = the child's
// pid, set by the shell that execs it), and talks to the child through it.
func TestSocketActivation(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" -test.run '^TestSocketActivationChild$' -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "HWMGR_ACTIVATION_CHILD=1")
	cmd.ExtraFiles = []*os.File{f}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.Close() // the child holds the socket now
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading from the child: %v\n%s", err, out.String())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%s", err, out.String())
	}
	if strings.TrimSpace(line) != "activated "+addr {
		t.Fatalf("child said %q, want activated %s\n%s", line, addr, out.String())
	}
}

// TestSocketActivationChild is the child of TestSocketActivation; run on
// its own it has nothing to do.
func TestSocketActivationChild(t *testing.T) {
	if os.Getenv("HWMGR_ACTIVATION_CHILD") != "1" {
		return
	}
	l, activated, err := Listen("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !activated {
		t.Fatal("not activated")
	}
	if os.Getenv("LISTEN_FDS") != "" {
		t.Error("LISTEN_FDS left in the environment for our children")
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "activated %s\n", l.Addr())
}

func TestUnitFiles(t *testing.T) {
	want := map[string]map[string]string{
		"hwmgr.service": {"Type": "notify", "WatchdogSec": "60s", "Restart": "on-failure", "Requires": "hwmgr.socket"},
		"hwmgr.socket":  {"ListenStream": "9741", "Service": "hwmgr.service"},
	}
	for file, kv := range want {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := unit.DeserializeOptions(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		got := map[string]string{}
		for _, o := range opts {
			got[o.Name] = o.Value
		}
		for k, v := range kv {
			if got[k] != v {
				t.Errorf("%s: %s=%q, want %q", file, k, got[k], v)
			}
		}
		if file == "hwmgr.service" && !strings.Contains(got["ExecStart"], "hwmgr serve") {
			t.Errorf("ExecStart %q", got["ExecStart"])
		}
	}
}
