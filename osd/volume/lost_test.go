package volume

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// TestMarkLostDurable (7 loop devices, a 4+2 volume and a blank drive):
// MarkLost records the loss in a new layout generation on the other
// members, even when the label write fails on one of them (the error
// wraps ErrLabelsNotUpdated; the slot is lost in memory all the same).
// Reopened with every drive, the lost one healthy again, the volume is
// degraded: the lost drive is left out, its bytes unchanged, Puts are
// refused, every block reads, and the member that missed the new
// generation is brought up to date. Rebuild onto the blank drive makes
// it whole; the old drive stays out.
func TestMarkLostDurable(t *testing.T) {
	ctx := context.Background()
	paths := loopPaths(t, 7)
	devs := openPaths(t, paths)
	f, err := zone.NewFaulty(devs[4], 4)
	if err != nil {
		t.Fatal(err)
	}
	withFault := append([]zone.Device(nil), devs[:6]...)
	withFault[4] = f
	v, err := Create(ctx, withFault, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	bs := putBlocks(t, v, rand.New(rand.NewPCG(81, 82)), 12, 200<<10)

	if err := f.Inject(zone.Rule{Ops: zone.OpWrite | zone.OpFlush}); err != nil {
		t.Fatal(err)
	}
	err = v.MarkLost(ctx, 1)
	if !errors.Is(err, ErrLabelsNotUpdated) {
		t.Fatalf("MarkLost with slot 4's label failing: %v, want ErrLabelsNotUpdated", err)
	}
	if st := v.Status(); !st.Degraded || st.Slots[1].State != "lost" || st.Generation != 2 {
		t.Fatalf("status after MarkLost: %+v", st)
	}
	f.Clear()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	lostHash := loopdev.Hash(t, paths[1])
	for i, want := range []uint64{2, 1, 2, 2, 1, 2} {
		fd, err := ReadLayout(ctx, devs[i])
		if err != nil {
			t.Fatal(err)
		}
		if fd.Layout.Generation != want {
			t.Errorf("slot %d: label generation %d, want %d", i, fd.Layout.Generation, want)
		}
	}

	// Reopen with all six drives, the lost one readable again.
	v, err = Open(ctx, devs[:6], testOpts())
	if err != nil {
		t.Fatal(err)
	}
	st := v.Status()
	if !st.Degraded || st.Generation != 2 || st.Slots[1].State != "lost" || st.Slots[1].Device != "" {
		t.Fatalf("reopened: %+v", st)
	}
	if fd, err := ReadLayout(ctx, devs[4]); err != nil || fd.Layout.Generation != 2 {
		t.Errorf("slot 4 not brought up to date: generation %d, %v", fd.Layout.Generation, err)
	}
	b := randBlock(rand.New(rand.NewPCG(83, 84)), 4096)
	if _, err := v.Put(ctx, b.key, b.data); !errors.Is(err, ErrDegraded) {
		t.Errorf("put on the reopened volume: %v, want ErrDegraded", err)
	}
	if n := readAll(t, v, bs); n != len(bs) {
		t.Errorf("%d of %d reads used parity with slot 1 lost", n, len(bs))
	}
	if h := loopdev.Hash(t, paths[1]); h != lostHash {
		t.Errorf("the lost drive changed on reopen: %s -> %s", lostHash, h)
	}

	if _, err := v.Rebuild(ctx, 1, devs[6], RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := v.Status(); st.Degraded {
		t.Fatalf("after the rebuild: %+v", st)
	}
	if _, err := v.Put(ctx, b.key, b.data); err != nil {
		t.Fatalf("put after the rebuild: %v", err)
	}
	bs = append(bs, b)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v, err = Open(ctx, devs, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if st := v.Status(); st.Degraded || st.Slots[1].Device != devs[6].Info().Path {
		t.Fatalf("reopened after the rebuild: %+v", st)
	}
	readAll(t, v, bs)
	if h := loopdev.Hash(t, paths[1]); h != lostHash {
		t.Errorf("the lost drive changed: %s -> %s", lostHash, h)
	}
}

// TestMarkLostDuringRebuild (zone.Mem): a slot lost while another is
// being rebuilt stays lost when the rebuild finishes, also after a
// restart; the drive a rebuild is filling, lost part way, ends the
// rebuild with an error (no panic) and its slot stays lost, that drive
// left out on reopen; a rebuild onto a third drive makes the volume whole.
func TestMarkLostDuringRebuild(t *testing.T) {
	ctx := context.Background()
	devs := asDevices(memDevs(t, 9))
	v, err := Create(ctx, devs[:6], testOpts())
	if err != nil {
		t.Fatal(err)
	}
	bs := putBlocks(t, v, rand.New(rand.NewPCG(85, 86)), 24, 64<<10)
	if err := v.MarkLost(ctx, 1); err != nil {
		t.Fatal(err)
	}
	loseOnce := func(slot int) RebuildOptions {
		var once sync.Once
		return RebuildOptions{Workers: 2, Progress: func(Progress) {
			once.Do(func() {
				if err := v.MarkLost(ctx, slot); err != nil {
					t.Errorf("MarkLost(%d) during the rebuild: %v", slot, err)
				}
			})
		}}
	}
	if _, err := v.Rebuild(ctx, 1, devs[6], loseOnce(4)); err != nil {
		t.Fatal(err)
	}
	reopen := func(n int) {
		t.Helper()
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if v, err = Open(ctx, devs[:n], testOpts()); err != nil {
			t.Fatal(err)
		}
	}
	reopen(7)
	st := v.Status()
	if st.Slots[1].State != "ok" || st.Slots[1].Device != devs[6].Info().Path || st.Slots[4].State != "lost" || st.Slots[4].Device != "" {
		t.Fatalf("reopened after the rebuild of slot 1: %+v", st)
	}
	readAll(t, v, bs)

	if _, err := v.Rebuild(ctx, 4, devs[7], loseOnce(4)); err == nil {
		t.Fatal("rebuild whose drive was lost part way succeeded")
	}
	reopen(8)
	st = v.Status()
	if st.Slots[4].State != "lost" || st.Slots[4].Device != "" || !v.Degraded() {
		t.Fatalf("reopened after the lost rebuild: %+v", st)
	}
	b := randBlock(rand.New(rand.NewPCG(87, 88)), 4096)
	if _, err := v.Put(ctx, b.key, b.data); !errors.Is(err, ErrDegraded) {
		t.Errorf("put: %v, want ErrDegraded", err)
	}
	readAll(t, v, bs)
	if _, err := v.Rebuild(ctx, 4, devs[8], RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	reopen(9)
	defer v.Close()
	if st := v.Status(); st.Degraded || st.Slots[4].Device != devs[8].Info().Path {
		t.Fatalf("reopened after the last rebuild: %+v", st)
	}
	if _, err := v.Put(ctx, b.key, b.data); err != nil {
		t.Fatal(err)
	}
	readAll(t, v, append(bs, b))
}
