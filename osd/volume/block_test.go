package volume

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stowage/stowage/osd/engine"
	"github.com/stowage/stowage/osd/zone"
)

// memVolume creates a 4+2 volume on in-memory drives (closed when the
// test ends).
func memVolume(t *testing.T) *Volume {
	t.Helper()
	v, err := Create(context.Background(), asDevices(memDevs(t, 6)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// busy marks slots as having reads in flight until the test's undo.
func busy(v *Volume, slots ...int) (undo func()) {
	for _, i := range slots {
		v.reading[i].Add(1)
	}
	return func() {
		for _, i := range slots {
			v.reading[i].Add(-1)
		}
	}
}

// TestReadSpreadsOverParity: a read fetches the k least busy slots,
// parity ones included, decodes the data fragments it skipped, and
// returns the right bytes without calling it damage or reconstruction.
func TestReadSpreadsOverParity(t *testing.T) {
	ctx := context.Background()
	v := memVolume(t)
	rng := rand.New(rand.NewPCG(61, 62))
	var bs []block
	for _, size := range []int{1, 5, 4097, 300 << 10, 1<<20 + 3, engine.MaxBlock} {
		b := randBlock(rng, size)
		if _, err := v.Put(ctx, b.key, b.data); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	slots, err := v.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		busy, want []int
	}{
		{nil, []int{0, 1, 2, 3}},
		{[]int{0}, []int{1, 2, 3, 4}},
		{[]int{1, 3}, []int{0, 2, 4, 5}},
		{[]int{0, 1, 2}, []int{3, 4, 5, 0}},
		{[]int{4, 5}, []int{0, 1, 2, 3}},
	} {
		undo := busy(v, tc.busy...)
		if got := v.pick(slots); !slices.Equal(got, tc.want) {
			t.Errorf("busy %v: pick %v, want %v", tc.busy, got, tc.want)
		}
		for _, b := range bs {
			blk, rep, err := v.ReadBlock(ctx, b.key)
			if err != nil {
				t.Fatalf("busy %v: read %d bytes: %v", tc.busy, len(b.data), err)
			}
			if len(rep.Damage) != 0 || rep.Reconstructed {
				t.Errorf("busy %v: read %d bytes: report %+v on a healthy volume", tc.busy, len(b.data), rep)
			}
			var w bytes.Buffer
			if n, err := blk.WriteTo(&w); err != nil || n != int64(len(b.data)) || blk.Len() != len(b.data) || !bytes.Equal(w.Bytes(), b.data) {
				t.Fatalf("busy %v: read %d bytes: wrote %d (%v), Len %d, equal %v", tc.busy, len(b.data), n, err, blk.Len(), bytes.Equal(w.Bytes(), b.data))
			}
			// A range across fragment boundaries.
			off, n := int64(len(b.data)/5), int64(len(b.data)/2)
			w.Reset()
			if _, err := blk.WriteRange(&w, off, n); err != nil || !bytes.Equal(w.Bytes(), b.data[off:off+n]) {
				t.Fatalf("busy %v: range %d+%d of %d bytes: %v", tc.busy, off, n, len(b.data), err)
			}
			blk.Release()
			blk.Release() // idempotent
		}
		undo()
	}
}

// TestReadBusyCorruptParity: a bad parity fragment picked because the
// data slots are busy is found (CRC), reported, and the block is still
// read right from the other fragments.
func TestReadBusyCorruptParity(t *testing.T) {
	ctx := context.Background()
	fs, v := faultyVolume(t)
	// Fragments of several 4 KiB blocks: each gets a flipped bit, and
	// the one in the record's first block is not all padding.
	rng := rand.New(rand.NewPCG(63, 64))
	var bs []block
	for range 8 {
		b := randBlock(rng, 64<<10+rng.IntN(256<<10))
		if _, err := v.Put(ctx, b.key, b.data); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	if err := fs[4].Inject(zone.Rule{Ops: zone.OpRead, Corrupt: true}); err != nil {
		t.Fatal(err)
	}
	undo := busy(v, 0, 1)
	defer undo()
	for _, b := range bs {
		got, rep, err := v.Read(ctx, b.key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("read %x: wrong bytes", b.key[:8])
		}
		if len(rep.Damage) != 1 || rep.Damage[0].Slot != 4 || rep.Damage[0].Kind != Corrupt || !rep.Reconstructed {
			t.Fatalf("read report %+v, want slot 4 corrupt", rep)
		}
	}
}

func TestBlockBadRange(t *testing.T) {
	b := BlockOf([]byte("0123456789"))
	var w bytes.Buffer
	for _, r := range [][2]int64{{-1, 2}, {0, 11}, {9, 2}, {3, -1}} {
		if _, err := b.WriteRange(&w, r[0], r[1]); err == nil {
			t.Errorf("range %d+%d of 10 bytes: no error", r[0], r[1])
		}
	}
	if _, err := b.WriteRange(&w, 10, 0); err != nil || w.Len() != 0 {
		t.Errorf("empty range at the end: %v, %d bytes", err, w.Len())
	}
	if got := string(b.Bytes()); got != "0123456789" {
		t.Errorf("Bytes %q", got)
	}
}

func TestDegradedMatchesStatus(t *testing.T) {
	v := memVolume(t)
	if v.Degraded() || v.Status().Degraded {
		t.Fatalf("new volume: Degraded %v, Status %v", v.Degraded(), v.Status().Degraded)
	}
	if err := v.MarkLost(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	if !v.Degraded() || !v.Status().Degraded {
		t.Fatalf("slot lost: Degraded %v, Status %v", v.Degraded(), v.Status().Degraded)
	}
}

// TestReadGuessesSteadySize: after a run of same-sized reads the volume
// guesses the fragment size (one I/O per fragment); a block of another
// size still reads right and ends the run.
func TestReadGuessesSteadySize(t *testing.T) {
	ctx := context.Background()
	v := memVolume(t)
	rng := rand.New(rand.NewPCG(65, 66))
	big := randBlock(rng, 1<<20)
	small := randBlock(rng, 5000)
	for _, b := range []block{big, small} {
		if _, err := v.Put(ctx, b.key, b.data); err != nil {
			t.Fatal(err)
		}
	}
	for range steadyReads {
		if got, err := v.Get(ctx, big.key); err != nil || !bytes.Equal(got, big.data) {
			t.Fatalf("read: %v", err)
		}
	}
	if g := v.guess(); g != engine.ReadBufSize(v.fragSize(len(big.data))) {
		t.Fatalf("guess after %d reads of one size: %d", steadyReads, g)
	}
	if got, err := v.Get(ctx, small.key); err != nil || !bytes.Equal(got, small.data) {
		t.Fatalf("small block after the guess: %v", err)
	}
	if g := v.guess(); g != 0 {
		t.Fatalf("guess after a read of another size: %d, want 0", g)
	}
}
