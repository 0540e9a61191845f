package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/node"
)

// TestKernelIOErrorsReachHealth feeds kernel log records through a FIFO
// (one record per read, as /dev/kmsg hands them out) to the daemon's I/O
// error counter, and checks the health policy judges the drive on them.
func TestKernelIOErrorsReachHealth(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR keeps a writer open, so the reader never sees end of file.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := newIOErrorCounter()
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx, fifo, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()

	p := healthPolicy{cfg: health.Defaults(), kernel: c}
	d := node.Drive{Identity: node.Identity{Name: "loop7"}}
	if h := p.Judge(d, nil); h.Verdict != node.VerdictUnknown {
		t.Fatalf("no SMART, no errors: %s", h.Verdict)
	}
	records := []string{
		"3,101,5000000,-;I/O error, dev loop7, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2\n",
		"3,103,5000200,-;critical medium error, dev loop7, sector 4096 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n",
	}
	want := []uint64{1, 2}
	// Each record is written once the one before was counted: a FIFO,
	// unlike /dev/kmsg, would hand two queued records to one read.
	for i, rec := range records {
		if _, err := w.WriteString(rec); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.get("loop7") != want[i] {
			if time.Now().After(deadline) {
				t.Fatalf("after record %d: %d errors counted, want %d", i, c.get("loop7"), want[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	h := p.Judge(d, nil)
	if h.Verdict != node.VerdictWarn || len(h.Reasons) != 1 || h.Reasons[0].Rule != health.RuleKernelIOErrors {
		t.Fatalf("two kernel I/O errors: %+v", h)
	}
}
