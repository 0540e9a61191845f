package volume

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stowage/stowage/osd/zone"
)

func faultyAll(t *testing.T, devs []zone.Device) []*zone.Faulty {
	t.Helper()
	var fs []*zone.Faulty
	for i, d := range devs {
		f, err := zone.NewFaulty(d, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	return fs
}

// faultyVolume creates a volume on six in-memory drives behind Faulty
// wrappers (closed when the test ends).
func faultyVolume(t *testing.T) ([]*zone.Faulty, *Volume) {
	t.Helper()
	fs := faultyAll(t, asDevices(memDevs(t, 6)))
	v, err := Create(context.Background(), asDevices(fs), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return fs, v
}

// kill makes every operation on f fail with EIO, as a dead drive.
func kill(t *testing.T, f *zone.Faulty) {
	t.Helper()
	if err := f.Inject(zone.Rule{}); err != nil {
		t.Fatal(err)
	}
}

// TestLoseRebuildLoseOthers: on 6 loop devices (and 2 spares), lose m
// drives, read everything degraded, rebuild both slots onto the spares,
// lose the m other drives, read everything again; then restart from the
// devices' labels alone.
func TestLoseRebuildLoseOthers(t *testing.T) {
	ctx := context.Background()
	paths := loopPaths(t, 8)
	raw := openPaths(t, paths)
	fs := faultyAll(t, raw[:6])
	var damage int
	var dmu sync.Mutex
	o := testOpts()
	o.OnDamage = func(Damage) { dmu.Lock(); damage++; dmu.Unlock() }
	v, err := Create(ctx, asDevices(fs), o)
	if err != nil {
		t.Fatal(err)
	}
	bs := putBlocks(t, v, rand.New(rand.NewPCG(11, 12)), 30, 600<<10)

	kill(t, fs[0]) // a data slot
	kill(t, fs[4]) // a parity slot
	if n := readAll(t, v, bs); n != len(bs) {
		t.Errorf("%d of %d degraded reads used parity, want all (slot 0 holds data of each)", n, len(bs))
	}
	if damage < len(bs) {
		t.Errorf("%d damaged fragments reported for %d degraded reads", damage, len(bs))
	}
	if st := v.Status(); st.Slots[0].ReadErrors < int64(len(bs)) || st.Slots[2].ReadErrors != 0 {
		t.Errorf("read errors: slot 0 %d (want ≥ %d), slot 2 %d (want 0)", st.Slots[0].ReadErrors, len(bs), st.Slots[2].ReadErrors)
	}
	extra := randBlock(rand.New(rand.NewPCG(1, 1)), 1000)
	if _, err := v.Put(ctx, extra.key, extra.data); err == nil {
		t.Error("put acknowledged with 2 of 6 drives dead")
	}

	for _, r := range []struct{ slot, spare int }{{0, 6}, {4, 7}} {
		var last Progress
		calls := 0
		res, err := v.Rebuild(ctx, r.slot, raw[r.spare], RebuildOptions{Progress: func(p Progress) { last = p; calls++ }})
		if err != nil {
			t.Fatalf("rebuild slot %d: %v", r.slot, err)
		}
		// The failed put above left 4 of its fragments: a readable block, rebuilt too.
		if res.Keys != len(bs)+1 || res.Written != len(bs)+1 || res.Failed != 0 {
			t.Errorf("rebuild slot %d: %+v, want %d keys written", r.slot, res, len(bs)+1)
		}
		if calls != res.Keys || last.Done != last.Total || last.Total != res.Keys {
			t.Errorf("rebuild progress: %d calls, last %+v", calls, last)
		}
	}
	st := v.Status()
	if st.Degraded || st.Generation != 5 || st.Slots[0].Device != paths[6] || st.Slots[4].Device != paths[7] {
		t.Fatalf("status after rebuilds: %+v", st)
	}
	if n := readAll(t, v, bs); n != 0 {
		t.Errorf("%d reads needed parity after the rebuild", n)
	}
	kill(t, fs[1])
	kill(t, fs[5])
	if n := readAll(t, v, bs); n != len(bs) {
		t.Errorf("%d of %d reads used parity with slots 1 and 5 dead", n, len(bs))
	}
	if err := v.Close(); err != nil {
		t.Logf("close with dead drives: %v", err)
	}

	// Restart: every device reopened from its path, in another order, the
	// replaced drives included (their labels name stale members).
	for _, d := range raw {
		d.Close()
	}
	order := []int{7, 3, 0, 5, 1, 6, 2, 4}
	var re []string
	for _, i := range order {
		re = append(re, paths[i])
	}
	v2, err := Open(ctx, openPaths(t, re), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	st2 := v2.Status()
	if st2.ID != st.ID || st2.Degraded || st2.Generation != 5 || st2.Slots[0].Device != paths[6] || st2.Slots[4].Device != paths[7] || st2.Slots[1].Device != paths[1] {
		t.Fatalf("status after restart: %+v", st2)
	}
	if n := readAll(t, v2, bs); n != 0 {
		t.Errorf("%d reads needed parity after the restart", n)
	}
}

// TestRestartLoop: close every engine and device, reopen the paths in
// another order: the labels find the volume, every block reads back, and
// with a drive missing the volume opens degraded.
func TestRestartLoop(t *testing.T) {
	ctx := context.Background()
	paths := loopPaths(t, 6)
	devs := openPaths(t, paths)
	v, err := Create(ctx, devs, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	id := v.Status().ID
	bs := putBlocks(t, v, rand.New(rand.NewPCG(21, 22)), 20, 1<<20)
	if err := v.Delete(ctx, bs[0].key); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		d.Close()
	}
	v2, err := Open(ctx, openPaths(t, []string{paths[5], paths[2], paths[0], paths[4], paths[1], paths[3]}), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if v2.Status().ID != id || v2.Status().Degraded {
		t.Fatalf("reopened %+v, want volume %s whole", v2.Status(), id)
	}
	if n := readAll(t, v2, bs[1:]); n != 0 {
		t.Errorf("%d reads needed parity", n)
	}
	if _, err := v2.Get(ctx, bs[0].key); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted block after restart: %v", err)
	}
	v2.Close()

	// Two drives gone (m = 2): opens degraded, serves everything.
	v3, err := Open(ctx, openPaths(t, []string{paths[0], paths[2], paths[3], paths[5]}), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Close()
	st := v3.Status()
	if !st.Degraded || st.Slots[1].State != "lost" || st.Slots[4].State != "lost" {
		t.Errorf("status with two drives missing: %+v", st)
	}
	if n := readAll(t, v3, bs[1:]); n != len(bs)-1 {
		t.Errorf("%d of %d reads used parity with slot 1 missing", n, len(bs)-1)
	}
	if _, err := v3.Put(ctx, bs[0].key, bs[0].data); !errors.Is(err, ErrDegraded) {
		t.Errorf("put on a degraded volume: %v, want ErrDegraded", err)
	}
	// Three drives gone: refused.
	if _, err := Open(ctx, openPaths(t, []string{paths[0], paths[2], paths[3]}), testOpts()); !errors.Is(err, ErrUnrecoverable) {
		t.Errorf("open with 3 of 6 drives: %v", err)
	}
}

// TestCrashAllDrivesFile, …Zoned: concurrent puts while every drive loses power at
// its own random point; after the crash (unflushed writes dropped or torn
// by zone.Mem's model) the volume reopens and every acknowledged block
// reads back.
func TestCrashAllDrivesFile(t *testing.T)  { testCrashAllDrives(t, zone.KindFile) }
func TestCrashAllDrivesZoned(t *testing.T) { testCrashAllDrives(t, zone.KindZoned) }

func testCrashAllDrives(t *testing.T, kind zone.Kind) {
	ctx := context.Background()
	const workers, each = 4, 8
	run := func(seed uint64, cut func(ms []*zone.Mem, rng *rand.Rand)) ([]*zone.Mem, []block, int64) {
		ms := memDevsOf(t, kind, 6)
		v, err := Create(ctx, asDevices(ms), testOpts())
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(seed, 77))
		var ops0 int64
		for _, m := range ms {
			ops0 += m.Ops()
		}
		cut(ms, rng)
		var mu sync.Mutex
		var acked []block
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(seed, uint64(w)))
				for range each {
					b := randBlock(r, 1+r.IntN(300<<10))
					if _, err := v.Put(ctx, b.key, b.data); err != nil {
						continue
					}
					mu.Lock()
					acked = append(acked, b)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		v.Close()
		var ops int64
		for _, m := range ms {
			ops += m.Ops()
		}
		return ms, acked, (ops - ops0) / int64(len(ms))
	}
	_, all, perDrive := run(0, func([]*zone.Mem, *rand.Rand) {})
	if len(all) != workers*each || perDrive == 0 {
		t.Fatalf("uncut run: %d acknowledged, %d ops per drive", len(all), perDrive)
	}
	for seed := uint64(1); seed <= 10; seed++ {
		ms, acked, _ := run(seed, func(ms []*zone.Mem, rng *rand.Rand) {
			// Drives lose power near one moment, each at its own op.
			base := rng.Int64N(perDrive + 1)
			for _, m := range ms {
				m.CutPowerAfter(base + rng.Int64N(perDrive/8+1))
			}
		})
		rng := rand.New(rand.NewPCG(seed, 88))
		var crashed []zone.Device
		for _, m := range ms {
			crashed = append(crashed, m.Crash(rng))
		}
		v, err := Open(ctx, crashed, testOpts())
		if err != nil {
			t.Fatalf("seed %d: open after the crash: %v", seed, err)
		}
		readAll(t, v, acked)
		if _, err := v.Scrub(ctx, ScrubOptions{}); err != nil {
			t.Errorf("seed %d: scrub after the crash: %v", seed, err)
		}
		readAll(t, v, acked)
		b := randBlock(rng, 5000)
		if _, err := v.Put(ctx, b.key, b.data); err != nil {
			t.Errorf("seed %d: put after the crash: %v", seed, err)
		}
		t.Logf("seed %d: %d of %d puts acknowledged, all read back", seed, len(acked), workers*each)
		v.Close()
	}
}

// TestRebuildResume: a rebuild interrupted part way leaves the slot
// rebuilding (in the labels too: a restart says so); Rebuild again onto
// the same drive resumes and skips what is already there.
func TestRebuildResume(t *testing.T) {
	ctx := context.Background()
	ms := memDevs(t, 7)
	devs := asDevices(ms)
	v, err := Create(ctx, devs[:6], testOpts())
	if err != nil {
		t.Fatal(err)
	}
	bs := putBlocks(t, v, rand.New(rand.NewPCG(31, 32)), 24, 64<<10)
	if err := v.MarkLost(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if st := v.Status(); !st.Degraded || st.Slots[3].State != "lost" {
		t.Fatalf("status after MarkLost: %+v", st)
	}
	if n := readAll(t, v, bs); n != len(bs) {
		t.Errorf("%d of %d reads used parity with slot 3 lost", n, len(bs))
	}
	cctx, cancel := context.WithCancel(ctx)
	_, err = v.Rebuild(cctx, 3, devs[6], RebuildOptions{Workers: 1, Progress: func(p Progress) {
		if p.Done == 10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rebuild: %v", err)
	}
	if st := v.Status(); !st.Degraded || st.Slots[3].State != "rebuilding" {
		t.Fatalf("status after an interrupted rebuild: %+v", st)
	}
	// Resumed in the same process: the engine already on the drive is
	// reused, and interrupted again.
	cctx, cancel = context.WithCancel(ctx)
	res, err := v.Rebuild(cctx, 3, devs[6], RebuildOptions{Workers: 1, Progress: func(p Progress) {
		if p.Done == 15 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || res.Present < 10 {
		t.Fatalf("second interrupted rebuild: %+v %v", res, err)
	}
	v.Close()
	// Restart: the labels say slot 3 is rebuilding on drive 6; drive 3 is stale.
	v2, err := Open(ctx, devs, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	if st := v2.Status(); st.Slots[3].State != "rebuilding" || st.Slots[3].Device != "memg" {
		t.Fatalf("status after restart: %+v", st)
	}
	readAll(t, v2, bs)
	res, err = v2.Rebuild(ctx, 3, devs[6], RebuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Present < 15 || res.Present+res.Written != len(bs) {
		t.Errorf("resumed rebuild %+v, want ≥ 15 present and %d in all", res, len(bs))
	}
	if st := v2.Status(); st.Degraded {
		t.Errorf("status after the resumed rebuild: %+v", st)
	}
	if n := readAll(t, v2, bs); n != 0 {
		t.Errorf("%d reads needed parity after the rebuild", n)
	}
	// The old drive of slot 3 cannot join another volume's slot by mistake.
	if _, err := v2.Rebuild(ctx, 2, devs[3], RebuildOptions{}); !errors.Is(err, ErrInUse) {
		t.Errorf("rebuild onto a drive holding a member: %v", err)
	}
}

// TestCodes: the smallest, an odd and the largest code; each survives the
// loss of m drives (MarkLost) and refuses a Put while degraded.
func TestCodes(t *testing.T) {
	ctx := context.Background()
	for _, km := range [][2]int{{1, 1}, {6, 3}, {12, 4}} {
		k, m := km[0], km[1]
		t.Run(fmt.Sprintf("%d+%d", k, m), func(t *testing.T) {
			o := testOpts()
			o.K, o.M = k, m
			v, err := Create(ctx, asDevices(memDevs(t, k+m)), o)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			rng := rand.New(rand.NewPCG(uint64(k), uint64(m)))
			bs := putBlocks(t, v, rng, 8, 700<<10)
			for _, b := range bs {
				if bi, err := v.Stat(ctx, b.key); err != nil || bi.Fragments != k+m || bi.FragmentSize != (len(b.data)+k-1)/k {
					t.Fatalf("stat: %+v %v", bi, err)
				}
			}
			lost := rng.Perm(k + m)[:m]
			for _, s := range lost {
				if err := v.MarkLost(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			readAll(t, v, bs)
			b := randBlock(rng, 10)
			if _, err := v.Put(ctx, b.key, b.data); !errors.Is(err, ErrDegraded) {
				t.Errorf("put with slots %v lost: %v", lost, err)
			}
		})
	}
}

// TestReadFlippedBits: a drive returning flipped bits on every read (a
// bad cable, not bad media): each read still returns the right bytes and
// names the slot as corrupt.
func TestReadFlippedBits(t *testing.T) {
	ctx := context.Background()
	fs, v := faultyVolume(t)
	bs := putBlocks(t, v, rand.New(rand.NewPCG(51, 52)), 10, 300<<10)
	if err := fs[1].Inject(zone.Rule{Ops: zone.OpRead, Corrupt: true}); err != nil {
		t.Fatal(err)
	}
	for _, b := range bs {
		_, rep, err := v.Read(ctx, b.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Damage) != 1 || rep.Damage[0].Slot != 1 || rep.Damage[0].Kind != Corrupt {
			t.Fatalf("read report %+v, want slot 1 corrupt", rep)
		}
	}
	if n := readAll(t, v, bs); n != len(bs) {
		t.Errorf("%d of %d reads used parity", n, len(bs))
	}
	fs[1].Clear()
	if n := readAll(t, v, bs); n != 0 {
		t.Errorf("%d reads used parity after the fault cleared", n)
	}
}
