package nodeinit

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWatchPowerButtonFIFO(t *testing.T) {
	dev := t.TempDir()
	if err := os.Mkdir(filepath.Join(dev, "input"), 0o755); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dev, "input", "event0")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	pressed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go WatchPowerButton(ctx, dev, func() { close(pressed) })
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the watcher opened it
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ev := make([]byte, eventSize)
	binary.LittleEndian.PutUint16(ev[16:], evKey)
	binary.LittleEndian.PutUint16(ev[18:], 30) // KEY_A: ignored
	binary.LittleEndian.PutUint32(ev[20:], 1)
	if _, err := w.Write(ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pressed:
		t.Fatal("KEY_A taken for the power button")
	case <-time.After(100 * time.Millisecond):
	}
	binary.LittleEndian.PutUint16(ev[18:], keyPower)
	if _, err := w.Write(ev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pressed:
	case <-time.After(5 * time.Second):
		t.Fatal("power key press not seen")
	}
}

func TestReaperLeavesTrackedChildren(t *testing.T) {
	var r Reaper
	orphan := exec.Command("/bin/true")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	own := exec.Command("/bin/true")
	if err := r.Start(own); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	reaped := 0
	for reaped == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		reaped += r.Reap()
	}
	if reaped == 0 {
		t.Fatal("the untracked child was never reaped")
	}
	// The tracked child is still there for its owner's Wait.
	if err := own.Wait(); err != nil {
		t.Fatalf("tracked child's Wait: %v (the reaper stole it?)", err)
	}
	// The untracked one was reaped by the reaper: its Wait fails with ECHILD.
	if err := orphan.Wait(); !errors.Is(err, syscall.ECHILD) {
		t.Fatalf("untracked child's Wait: %v, want ECHILD", err)
	}
}
