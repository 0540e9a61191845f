package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/discover"
	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/iostat"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/hwmgr/smart"
)

const benchDrives = 100

func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
	}
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// BenchmarkCycle100 measures one steady-state daemon cycle (discovery
// rescan, a SMART poll of every drive, an I/O stats sample, health
// judgement) over 100 real loop devices, with smartctl replaced by a
// script that prints a captured smartctl JSON output (loop devices have no
// SMART). It reports wall and CPU time (ours plus the smartctl processes)
// per drive, the daemon's heap per drive, and
// smart-spawn-limit-ratio: the SMART poll's wall time over the time to
// merely spawn the same script 100 times with the same parallelism, the
// floor any smartctl-based poll pays.
func BenchmarkCycle100(b *testing.B) {
	if os.Geteuid() != 0 {
		if testingCI() {
			b.Fatal("needs root for loop devices")
		}
		b.Skip("needs root for loop devices")
	}
	dir := b.TempDir()
	fixture, err := filepath.Abs("../../smart/testdata/smartctl-json/HGST_HUS724020ALE640_28.json")
	if err != nil {
		b.Fatal(err)
	}
	script := filepath.Join(dir, "smartctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexec cat "+fixture+"\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	var devs []string
	b.Cleanup(func() {
		for _, d := range devs {
			_ = exec.Command("losetup", "-d", d).Run()
		}
	})
	for i := 0; i < benchDrives; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%03d.img", i))
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Truncate(p, 4<<20); err != nil {
			b.Fatal(err)
		}
		out, err := exec.Command("losetup", "-f", "--show", p).Output()
		if err != nil {
			b.Fatalf("losetup %d: %v", i, err)
		}
		devs = append(devs, string(out[:len(out)-1]))
	}
	var names []string
	for _, d := range devs {
		names = append(names, filepath.Base(d))
	}
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	ior, err := iostat.NewReader(iostat.Config{})
	if err != nil {
		b.Fatal(err)
	}
	base := heapInUse()
	n := node.New(node.Config{
		Drives: driveSource{scanner: discover.NewScanner(discover.Config{Filter: discover.Filter{Loop: true, LoopBackingDir: dir, Names: names}, Logger: log})},
		SMART:  smartSource{runner: smart.Runner{Path: script}, now: time.Now},
		Stats:  &statsSource{reader: ior},
		Health: healthPolicy{cfg: health.Defaults()},
		Labels: newLabelStore("/sys", foreignDetector{}, time.Now),
		Logger: log,
	})
	if err := n.Scan(ctx); err != nil {
		b.Fatal(err)
	}
	if got := len(n.Inventory().Drives); got != benchDrives {
		b.Fatalf("%d drives discovered, want %d", got, benchDrives)
	}
	n.PollSMART(ctx)
	if err := n.PollStats(ctx); err != nil {
		b.Fatal(err)
	}
	heap := heapInUse() - base
	if d := n.Inventory().Drives[0]; d.SMART == nil || d.Label.State != node.StateNew {
		b.Fatalf("first drive: smart %v state %s (%s)", d.SMART, d.Label.State, d.LabelError)
	}

	// The floor: spawning the script alone, 4 at a time like the node.
	spawn := func() time.Duration {
		start := time.Now()
		sem := make(chan struct{}, 4)
		var wg sync.WaitGroup
		for i := 0; i < benchDrives; i++ {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_ = exec.Command(script).Run()
			}()
		}
		wg.Wait()
		return time.Since(start)
	}

	var wall, cpu, smartWall, floor time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0, t0 := cpuTime(), time.Now()
		if err := n.Scan(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		n.PollSMART(ctx)
		t2 := time.Now()
		if err := n.PollStats(ctx); err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		cpu += cpuTime() - c0
		smartWall += t2.Sub(t1)
		b.StopTimer()
		floor += spawn()
		b.StartTimer()
	}
	per := float64(b.N * benchDrives)
	b.ReportMetric(float64(wall.Nanoseconds())/per, "wall-ns/drive")
	b.ReportMetric(float64(cpu.Nanoseconds())/per, "cpu-ns/drive")
	b.ReportMetric(float64(heap)/benchDrives, "heap-B/drive")
	b.ReportMetric(smartWall.Seconds()/floor.Seconds(), "smart-spawn-limit-ratio")
}
