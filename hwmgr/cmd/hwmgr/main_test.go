package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test re-execute this binary as hwmgr itself: with
// HWMGR_TEST_MAIN set, the arguments after "--" are hwmgr's.
func TestMain(m *testing.M) {
	if os.Getenv("HWMGR_TEST_MAIN") == "1" {
		args := os.Args[1:]
		for i, a := range args {
			if a == "--" {
				args = args[i+1:]
				break
			}
		}
		os.Exit(run(args, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestServeSocketActivated starts `hwmgr serve` as its own process the way
// systemd does with hwmgr.socket: the listening socket as fd 3, LISTEN_FDS=1
// and LISTEN_PID set to the new process. The API must answer on that
// socket (not on -listen), and SIGTERM must stop it cleanly (exit 0).
func TestServeSocketActivated(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, os.Args[0],
		"--", "serve", "-listen", "127.0.0.1:1", "-smartctl", "", "-kmsg", "", "-no-uevents", "-devices", "none-such",
		"-read-token", "r", "-log-format", "json")
	cmd.Env = append(os.Environ(), "HWMGR_TEST_MAIN=1", "NOTIFY_SOCKET=")
	cmd.ExtraFiles = []*os.File{f}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.Close()
	// Wait for the daemon's "hwmgr ready" log line.
	lines := bufio.NewScanner(stderr)
	var logged []string
	ready := false
	for !ready && lines.Scan() {
		logged = append(logged, lines.Text())
		var rec map[string]any
		if json.Unmarshal(lines.Bytes(), &rec) == nil {
			if rec["msg"] == "hwmgr starting" && rec["socket_activated"] != true {
				t.Errorf("not socket activated: %s", lines.Text())
			}
			ready = rec["msg"] == "hwmgr ready"
		}
	}
	if !ready {
		t.Fatalf("no ready line:\n%s", strings.Join(logged, "\n"))
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for lines.Scan() {
		}
	}()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz on the activated socket: %d", resp.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-drained // EOF: the process exited
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hwmgr after SIGTERM: %v", err)
	}
}
