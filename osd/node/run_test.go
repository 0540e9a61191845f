package node

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// TestCorruptScrubAndRepairQueue on 6 loop devices: a fragment corrupted
// in place is found and repaired by Run's scrub (counted in Status); a
// second one, found by a Get (right bytes), is repaired by the repair
// queue; afterwards reads need no parity.
func TestCorruptScrubAndRepairQueue(t *testing.T) {
	ctx := context.Background()
	ds := open(t, loops(t, 6))
	o := testOpts()
	o.ScrubInterval = time.Hour
	n, err := Open(ctx, ds, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rng := rand.New(rand.NewPCG(11, 12))
	bs := putBlocks(t, n, rng, 12, 400<<10)
	for i := range bs { // every block at least 16 KiB: its first fragment has 4 KiB to find
		for len(bs[i].data) < 16<<10 {
			bs[i] = randBlock(rng, 20<<10)
			if _, err := n.Put(ctx, bs[i].key, bs[i].data); err != nil {
				t.Fatal(err)
			}
		}
	}
	d, off := findFragment(t, ds, bs[3].data[:4096])
	flipByte(t, d, off+100)

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	st := waitFor(t, n, "a scrub pass", func(s Status) bool { return s.Counter.ScrubPasses >= 1 })
	lp := st.Scrub.LastPass
	if lp.Keys != len(bs) || lp.Corrupt != 1 || lp.Repaired != 1 || lp.Damaged != 1 {
		t.Fatalf("scrub pass %+v, want %d keys, 1 corrupt fragment repaired", lp, len(bs))
	}
	if st.Counter.DamageFound["corrupt"] != 1 || st.Counter.Repaired != 1 || st.Counter.ScrubKeys != int64(len(bs)) ||
		st.Counter.ScrubFindings["corrupt"] != 1 || st.Counter.RepairedByKind["corrupt"] != 1 {
		t.Fatalf("counters %+v", st.Counter)
	}
	if st.Scrub.Running || st.Scrub.NextPass.IsZero() || st.Scrub.LastFinished.IsZero() {
		t.Errorf("scrub status %+v", st.Scrub)
	}

	d, off = findFragment(t, ds, bs[7].data[:4096])
	flipByte(t, d, off+5)
	got, err := n.Get(ctx, bs[7].key)
	if err != nil || !bytes.Equal(got, bs[7].data) {
		t.Fatalf("get of the corrupted block: %v", err)
	}
	st = waitFor(t, n, "the repair queue", func(s Status) bool { return s.Repair.Done >= 1 })
	if st.Counter.DamageFound["corrupt"] != 2 || st.Counter.Repaired != 2 || st.Counter.ReadsReconstructed != 1 || st.Repair.Queued != 0 {
		t.Fatalf("after the queued repair: counters %+v, repair %+v", st.Counter, st.Repair)
	}
	readAll(t, n, bs)
	if r := n.Status().Counter.ReadsReconstructed; r != 1 {
		t.Errorf("%d reads needed parity after the repairs, want only the first one", r)
	}
	// A clean second pass: the last pass shows nothing, the cumulative
	// counters keep the first pass's finding; repairs by kind.
	n.StartScrub()
	st = waitFor(t, n, "a second scrub pass", func(s Status) bool { return s.Counter.ScrubPasses >= 2 })
	if st.Scrub.LastPass.Damaged != 0 || st.Counter.ScrubFindings["corrupt"] != 1 || st.Counter.RepairedByKind["corrupt"] != 2 ||
		len(st.Counter.RepairedByKind) != 1 {
		t.Errorf("after a clean pass: last pass %+v, scrub findings %v, repaired by kind %v",
			st.Scrub.LastPass, st.Counter.ScrubFindings, st.Counter.RepairedByKind)
	}
}

// TestScrubProgressETA: with an injected clock and a 1 MiB/s rate, the
// scrub's progress and ETA show in Status while it runs, and the pass
// takes bytes ÷ rate of clock time.
func TestScrubProgressETA(t *testing.T) {
	ctx := context.Background()
	clk := &fakeClock{now: time.Unix(1_000_000, 0)}
	o := testOpts()
	o.ScrubBytesPerSecond = 1 << 20
	o.Now, o.Sleep = clk.Now, clk.Sleep
	n, err := Open(ctx, open(t, loops(t, 6)), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bs := putBlocks(t, n, rand.New(rand.NewPCG(1, 1)), 10, 512<<10)
	var seen []ScrubStatus
	clk.hook = func() { seen = append(seen, n.Status().Scrub) }
	start := clk.Now()
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	st := waitFor(t, n, "a scrub pass", func(s Status) bool { return s.Counter.ScrubPasses >= 1 })
	took := st.Scrub.LastFinished.Sub(start)
	want := time.Duration(float64(st.Counter.ScrubBytes) / float64(1<<20) * float64(time.Second))
	if took < want-time.Millisecond || took > want+time.Millisecond {
		t.Errorf("pass took %v of clock, want %v (%d bytes at 1 MiB/s)", took, want, st.Counter.ScrubBytes)
	}
	if len(seen) < len(bs)-1 {
		t.Fatalf("%d status samples during the pass", len(seen))
	}
	mid := seen[len(seen)/2]
	if !mid.Running || mid.Progress.Done == 0 || mid.Progress.Done >= mid.Progress.Total || mid.Progress.ETA <= 0 || mid.PassETA < mid.Progress.ETA {
		t.Errorf("status mid-pass %+v", mid)
	}
	// ETA ≈ the clock time the rest of the pass took.
	rest := st.Scrub.LastFinished.Sub(start.Add(time.Duration(0))) - mid.Progress.ETA
	if rest < 0 {
		t.Errorf("ETA %v beyond the pass's %v", mid.Progress.ETA, took)
	}
}

// TestLoseRebuildLoseOthers on 8 loop devices (one 4+2 volume, 2 spares)
// behind fault injectors: 2 members fail with EIO, every block reads;
// RemoveDrive puts the volume in degraded mode (no Put) and Run rebuilds
// both slots onto the spares with progress in Status; then 2 other
// original members fail and every block still reads.
func TestLoseRebuildLoseOthers(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 8)))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bs := putBlocks(t, n, rand.New(rand.NewPCG(5, 5)), 30, 300<<10)
	var members []int
	for i, d := range ds {
		if role(n.Status(), d.Path).Role == RoleMember {
			members = append(members, i)
		}
	}
	if len(members) != 6 {
		t.Fatalf("%d members", len(members))
	}
	for _, i := range members[:2] {
		if err := fs[i].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, bs)
	for j, i := range members[:2] {
		err := n.RemoveDrive(ctx, ds[i].Path)
		if j == 0 {
			// The first loss is recorded on the 4 good members, not on
			// the second dead one: removed all the same, error returned.
			if !errors.Is(err, volume.ErrLabelsNotUpdated) {
				t.Fatalf("removing the first of two dead members: %v, want ErrLabelsNotUpdated", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if st := n.Status(); st.Volumes[0].State != "degraded" || st.Volumes[0].Writable {
		t.Fatalf("after losing 2: volume %s writable=%v", st.Volumes[0].State, st.Volumes[0].Writable)
	}
	extra := randBlock(rand.New(rand.NewPCG(8, 8)), 1000)
	if _, err := n.Put(ctx, extra.key, extra.data); !errors.Is(err, ErrFull) {
		t.Fatalf("put while degraded: %v, want ErrFull", err)
	}
	readAll(t, n, bs)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	st := waitFor(t, n, "rebuilds", func(s Status) bool {
		return s.Volumes[0].State == "healthy" && len(s.Jobs) == 1 && !s.Jobs[0].Running
	})
	if j := st.Jobs[0]; j.Kind != "rebuild" || j.Progress.Done != len(bs) || j.Progress.Total != len(bs) || j.Err != "" {
		t.Errorf("jobs %+v", st.Jobs)
	}
	// The scrub and the repair queue, running meanwhile, may fill some
	// fragments of a slot being rebuilt before the rebuild gets there.
	if c := st.Counter; c.Rebuilt == 0 || c.Rebuilt > 2*int64(len(bs)) {
		t.Errorf("%d fragments rebuilt, want 1..%d", c.Rebuilt, 2*len(bs))
	}
	for _, s := range st.Volumes[0].Slots {
		if s.Fragments != len(bs) {
			t.Errorf("slot %d (%s) holds %d fragments, want %d", s.Slot, s.Device, s.Fragments, len(bs))
		}
	}
	for _, i := range members[2:4] {
		if err := fs[i].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, bs)
	spares := 0
	for _, d := range st.Drives {
		if d.Role == RoleSpare || d.Role == RoleTarget {
			spares++
		}
	}
	if spares != 0 {
		t.Errorf("%d spares/targets left, want both rebuilt into members", spares)
	}
}

// TestAddDriveRebuild: a 4+2 volume on 6 loop devices loses 2 members
// (EIO, then RemoveDrive); three drives are added: one with ext4 on it
// (refused as foreign and left byte-for-byte untouched) and two blank
// ones, onto which Run rebuilds; then 2 other original members fail and
// every block reads.
func TestAddDriveRebuild(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 6)))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bs := putBlocks(t, n, rand.New(rand.NewPCG(51, 52)), 25, 300<<10)
	for _, i := range []int{1, 4} {
		if err := fs[i].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
		if err := n.RemoveDrive(ctx, ds[i].Path); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, bs)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); wg.Wait() }()
	fresh := loops(t, 3)
	run(t, "mkfs.ext4", "-q", "-F", fresh[0])
	before := loopdev.Hash(t, fresh[0])
	for _, d := range open(t, fresh) {
		if err := n.AddDrive(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.AddDrive(ctx, open(t, fresh[1:2])[0]); !errors.Is(err, ErrBusy) {
		t.Errorf("adding a drive twice: %v, want ErrBusy", err)
	}
	st := waitFor(t, n, "rebuilds onto the added drives", func(s Status) bool {
		return s.Volumes[0].State == "healthy" && len(s.Jobs) == 1 && !s.Jobs[0].Running
	})
	if r := role(st, fresh[0]); r.Role != RoleForeign {
		t.Errorf("ext4 drive: %s (%s), want foreign", r.Role, r.Detail)
	}
	for _, p := range fresh[1:] {
		if r := role(st, p); r.Role != RoleMember {
			t.Errorf("%s: %s (%s), want member", p, r.Role, r.Detail)
		}
	}
	for _, i := range []int{0, 2} {
		if err := fs[i].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, bs)
	if h := loopdev.Hash(t, fresh[0]); h != before {
		t.Errorf("the ext4 drive changed: %s -> %s", before, h)
	}
}
