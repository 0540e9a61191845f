package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// slotDrive returns the index in ds of the drive holding slot of the
// first volume.
func slotDrive(t testing.TB, n *Node, ds []Drive, slot int) int {
	t.Helper()
	st := n.Status()
	for i, d := range ds {
		if r := role(st, d.Path); r.Role == RoleMember && r.Slot == slot {
			return i
		}
	}
	t.Fatalf("no drive holds slot %d", slot)
	return -1
}

// faultyNode opens a node (no scrub) on 7 loop devices behind
// zone.Faulty, a 4+2 volume and a spare, and puts count blocks of up to
// 100 KiB. The node closes when the test ends.
func faultyNode(t testing.TB, seed uint64, count int) (*Node, []Drive, []*zone.Faulty, []block) {
	t.Helper()
	ds, fs := faulty(t, open(t, loops(t, 7)))
	o := testOpts()
	o.ScrubDelay = time.Hour
	n, err := Open(context.Background(), ds, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, ds, fs, putBlocks(t, n, rand.New(rand.NewPCG(seed, seed+1)), count, 100<<10)
}

// rebuilt waits until the first volume is healthy again with no job
// running, and checks that path holds none of its slots.
func rebuilt(t testing.TB, n *Node, path string) Status {
	t.Helper()
	st := waitFor(t, n, "the rebuild onto the spare", func(s Status) bool {
		return s.Volumes[0].State == "healthy" && len(s.Jobs) == 1 && !s.Jobs[0].Running && s.Jobs[0].Err == ""
	})
	for _, s := range st.Volumes[0].Slots {
		if s.Device == path || s.State != "ok" {
			t.Errorf("slot %d: %s on %s after the rebuild", s.Slot, s.State, s.Device)
		}
	}
	return st
}

// TestMemberFailsWritesUnderLoad (7 loops: a 4+2 volume and a spare): 4
// writers put blocks while one member starts failing every write. With
// no RemoveDrive call the member is taken out (role failed, counted),
// the volume goes degraded, Puts are refused with ErrFull (never
// acknowledged short of k+m fragments), Run rebuilds onto the spare, and
// then every acknowledged block reads and Puts succeed again, also with
// two other original members dead.
func TestMemberFailsWritesUnderLoad(t *testing.T) {
	ctx := context.Background()
	n, ds, fs, acked := faultyNode(t, 61, 8)
	victim := slotDrive(t, n, ds, 2)

	rctx, cancel := context.WithCancel(ctx)
	var run sync.WaitGroup
	run.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); run.Wait() }()

	var mu sync.Mutex
	refused := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 63))
			for range 300 {
				select {
				case <-stop:
					return
				default:
				}
				b := randBlock(rng, 1+rng.IntN(64<<10))
				_, err := n.Put(ctx, b.key, b.data)
				mu.Lock()
				switch {
				case err == nil:
					acked = append(acked, b)
				case errors.Is(err, ErrFull):
					refused++
				default:
					t.Errorf("put %x: %v", b.key[:8], err)
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, n, "puts under way", func(s Status) bool { return s.Counter.Puts >= 20 })
	if err := fs[victim].Inject(zone.Rule{Ops: zone.OpWrite | zone.OpFlush}); err != nil {
		t.Fatal(err)
	}
	// One more write, in case the writers were all done already.
	extra := randBlock(rand.New(rand.NewPCG(66, 67)), 4096)
	if _, err := n.Put(ctx, extra.key, extra.data); !errors.Is(err, ErrFull) {
		t.Errorf("put onto the failing member: %v, want ErrFull", err)
	}
	st := waitFor(t, n, "the failing member taken out", func(s Status) bool {
		return role(s, ds[victim].Path).Role == RoleFailed
	})
	close(stop)
	wg.Wait()
	if r := role(st, ds[victim].Path); !strings.Contains(r.Detail, "error") || r.Slot != -1 {
		t.Errorf("failed drive: %+v", r)
	}
	if st.Counter.DrivesFailed != 1 {
		t.Errorf("DrivesFailed %d, want 1", st.Counter.DrivesFailed)
	}
	t.Logf("%d puts acknowledged, %d refused while the volume was degraded", len(acked), refused)
	readAll(t, n, acked)
	st = rebuilt(t, n, ds[victim].Path)
	if st.Counter.Rebuilt == 0 {
		t.Error("nothing rebuilt")
	}
	readAll(t, n, acked)
	acked = append(acked, putBlocks(t, n, rand.New(rand.NewPCG(64, 65)), 5, 100<<10)...)

	// Redundancy is whole again: two other original members die.
	cancel()
	run.Wait()
	for _, slot := range []int{0, 5} {
		if err := fs[slotDrive(t, n, ds, slot)].Inject(zone.Rule{}); err != nil {
			t.Fatal(err)
		}
	}
	readAll(t, n, acked)
}

// TestReadErrorLimit: read errors take a member out only when
// ReadErrorLimit of them fall within ReadErrorWindow (injected clock);
// then Run rebuilds its slot onto the spare.
func TestReadErrorLimit(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 7)))
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	o := testOpts()
	o.ScrubDelay = time.Hour
	o.ReadErrorLimit, o.ReadErrorWindow = 3, time.Hour
	o.Now, o.Sleep = clock.Now, clock.Sleep
	n, err := Open(ctx, ds, o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	bs := putBlocks(t, n, rand.New(rand.NewPCG(71, 72)), 12, 100<<10)
	victim := slotDrive(t, n, ds, 0) // a data slot: every read touches it
	w := n.drives[victim].w
	readFails := func(count int64) {
		t.Helper()
		if err := fs[victim].Inject(zone.Rule{Ops: zone.OpRead, Count: count}); err != nil {
			t.Fatal(err)
		}
		readAll(t, n, bs)
		fs[victim].Clear()
	}
	readFails(2)
	if r := w.failure(); r != "" {
		t.Fatalf("2 read errors: failed (%s), want below the limit of 3", r)
	}
	clock.mu.Lock()
	clock.now = clock.now.Add(time.Hour)
	clock.mu.Unlock()
	readFails(2) // the first two are out of the window now
	if r := w.failure(); r != "" {
		t.Fatalf("2+2 read errors an hour apart: failed (%s)", r)
	}
	readFails(1)
	if r := w.failure(); !strings.Contains(r, "3 read errors") {
		t.Fatalf("3 read errors within the window: failure %q", r)
	}
	if err := fs[victim].Inject(zone.Rule{Ops: zone.OpRead}); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var run sync.WaitGroup
	run.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); run.Wait() }()
	rebuilt(t, n, ds[victim].Path)
	st := n.Status()
	if r := role(st, ds[victim].Path); r.Role != RoleFailed || st.Counter.DrivesFailed != 1 {
		t.Errorf("victim %+v, %d drives failed", r, st.Counter.DrivesFailed)
	}
	readAll(t, n, bs)
	putBlocks(t, n, rand.New(rand.NewPCG(73, 74)), 3, 10<<10)
}

// TestLabelFailed: hwmgr sets a member's label state to failed through
// its own descriptor; at the next label check Run takes the drive out
// and rebuilds its slot onto the spare, without another write to it.
func TestLabelFailed(t *testing.T) {
	ctx := context.Background()
	n, bs := labelCheckNode(t, 81)
	victim, a := setLabel(t, n, lifecycle.Failed)
	rctx, cancel := context.WithCancel(ctx)
	var run sync.WaitGroup
	run.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); run.Wait() }()
	st := rebuilt(t, n, victim)
	if r := role(st, victim); r.Role != RoleFailed || r.Detail != "label says failed" {
		t.Errorf("victim %+v", r)
	}
	readAll(t, n, bs)
	putBlocks(t, n, rand.New(rand.NewPCG(83, 84)), 3, 10<<10)
	if err := a.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := a.Current(); r.State != lifecycle.Failed {
		t.Errorf("label state %s, want failed (hwmgr's)", r.State)
	}
}

// TestPutRetriedOnAnotherVolume (12 loops: two 4+2 volumes, no spare): a
// member of the volume a key goes to first fails its writes; that Put is
// not lost but stored on the other volume, and the failing volume is
// degraded at once (no Run). When a member of the second volume fails
// too, a Put is refused with ErrFull; every acknowledged block reads.
func TestPutRetriedOnAnotherVolume(t *testing.T) {
	ctx := context.Background()
	ds, fs := faulty(t, open(t, loops(t, 12)))
	n, err := Open(ctx, ds, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if len(n.vols) != 2 {
		t.Fatalf("%d volumes, want 2", len(n.vols))
	}
	rng := rand.New(rand.NewPCG(111, 112))
	acked := putBlocks(t, n, rng, 6, 50<<10)
	// A block whose first volume is vols[0], and a member of it.
	first := n.vols[0]
	b := randBlock(rng, 40<<10)
	for byKey(n.vols, b.key)[0] != first {
		b = randBlock(rng, 40<<10)
	}
	victim := -1
	for i, d := range n.drives {
		if d.vol == first && victim < 0 {
			victim = i
		}
	}
	if err := fs[victim].Inject(zone.Rule{Ops: zone.OpWrite}); err != nil {
		t.Fatal(err)
	}
	if stored, err := n.Put(ctx, b.key, b.data); err != nil || !stored {
		t.Fatalf("put with a member of its first volume failing: stored=%v %v", stored, err)
	}
	acked = append(acked, b)
	st := n.Status()
	if r := role(st, ds[victim].Path); r.Role != RoleFailed || st.Counter.DrivesFailed != 1 {
		t.Fatalf("victim %+v, %d failed", r, st.Counter.DrivesFailed)
	}
	for _, v := range st.Volumes {
		if want := v.ID != first.id; v.Writable != want {
			t.Errorf("volume %s writable=%v, want %v", v.ID, v.Writable, want)
		}
	}
	if bi, err := n.vols[1].v.Stat(ctx, b.key); err != nil || bi.Fragments != 6 {
		t.Errorf("the block on the other volume: %+v %v", bi, err)
	}
	for i, d := range n.drives {
		if d.vol == n.vols[1] {
			if err := fs[i].Inject(zone.Rule{Ops: zone.OpWrite}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	c := randBlock(rng, 30<<10)
	if _, err := n.Put(ctx, c.key, c.data); !errors.Is(err, ErrFull) {
		t.Fatalf("put with both volumes losing a member: %v, want ErrFull", err)
	}
	if st := n.Status(); st.Counter.DrivesFailed != 2 || st.Volumes[0].Writable || st.Volumes[1].Writable {
		t.Errorf("after the second failure: %d failed, writable %v %v", st.Counter.DrivesFailed, st.Volumes[0].Writable, st.Volumes[1].Writable)
	}
	readAll(t, n, acked)
}

// TestDeviceGone: a member whose reads say ENXIO (the device is gone)
// fails at its first read error, well below ReadErrorLimit; Run takes it
// out and rebuilds onto the spare.
func TestDeviceGone(t *testing.T) {
	ctx := context.Background()
	n, ds, fs, bs := faultyNode(t, 121, 10)
	victim := slotDrive(t, n, ds, 1)
	if err := fs[victim].Inject(zone.Rule{Err: syscall.ENXIO}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Get(ctx, bs[0].key); err != nil {
		t.Fatal(err)
	}
	if r := n.drives[victim].w.failure(); !strings.HasPrefix(r, "device gone") {
		t.Fatalf("after one ENXIO: failure %q, want device gone", r)
	}
	rctx, cancel := context.WithCancel(ctx)
	var run sync.WaitGroup
	run.Go(func() { _ = n.Run(rctx) })
	defer func() { cancel(); run.Wait() }()
	st := rebuilt(t, n, ds[victim].Path)
	if r := role(st, ds[victim].Path); r.Role != RoleFailed {
		t.Errorf("victim %+v", r)
	}
	readAll(t, n, bs)
}
