//go:build vmtest

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVMQMPMonitor drives a real QEMU monitor (machine "none": no guest)
// under the host lock: commands, errors, events, quit.
func TestVMQMPMonitor(t *testing.T) {
	qemuBin, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("qemu-system-x86_64 not installed (make deps)")
		}
		t.Skip("qemu-system-x86_64 not installed; run make deps")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	unlock, err := lockHost(ctx, LockPath)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	sock := filepath.Join(t.TempDir(), "q.sock")
	cmd := exec.Command(qemuBin, "-M", "none", "-nodefaults", "-no-user-config", "-display", "none",
		"-qmp", "unix:"+sock+",server=on,wait=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()

	var q *QMP
	dialCtx, cancelDial := context.WithTimeout(ctx, 30*time.Second)
	defer cancelDial()
	for q == nil {
		if q, err = DialQMP(dialCtx, sock); err != nil {
			if dialCtx.Err() != nil {
				t.Fatalf("QMP never came up: %v", err)
			}
			select {
			case <-exited:
				t.Fatalf("qemu exited: %v", waitErr)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	defer q.Close()

	ret, err := q.Execute(ctx, "query-version", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		QEMU struct{ Major int } `json:"qemu"`
	}
	if err := json.Unmarshal(ret, &v); err != nil || v.QEMU.Major < 6 {
		t.Fatalf("query-version: %s (%v)", ret, err)
	}
	_, err = q.Execute(ctx, "no-such-command", map[string]any{"x": 1})
	var qe *QMPError
	if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
		t.Fatalf("unknown command: err %v", err)
	}
	// An event: stop the (empty) machine, QEMU emits STOP.
	if _, err := q.Execute(ctx, "stop", nil); err != nil {
		t.Fatal(err)
	}
	evCtx, cancelEv := context.WithTimeout(ctx, 30*time.Second)
	defer cancelEv()
	if _, err := q.WaitEvent(evCtx, "STOP", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Execute(ctx, "quit", nil); err != nil && !strings.Contains(err.Error(), "connection") {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-ctx.Done():
		t.Fatal("qemu did not exit after quit")
	}
	if _, err := q.Execute(ctx, "query-status", nil); err == nil {
		t.Fatal("a command after quit succeeded")
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := q.WaitEvent(short, "NEVER", nil); err == nil {
		t.Fatal("WaitEvent for an event that never comes returned no error")
	}
}
