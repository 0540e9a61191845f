package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

func putN(t *testing.T, e *Engine, rng *rand.Rand, n, size int) ([]ID, map[ID][]byte) {
	t.Helper()
	var ids []ID
	data := map[ID][]byte{}
	for i := 0; i < n; i++ {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		id := BlockID(b)
		if err := e.Put(context.Background(), id, b); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		ids = append(ids, id)
		data[id] = b
	}
	return ids, data
}

// A failed write (the drive dies half-way through it) makes the engine
// refuse writes but keep serving reads; reopening recovers every
// acknowledged block and writes work again.
func TestWriteErrorStopsWrites(t *testing.T) {
	for _, op := range []zone.Op{zone.OpWrite, zone.OpFlush} {
		t.Run(op.String(), func(t *testing.T) {
			ctx := context.Background()
			mem := newMem(t, zone.KindFile, 0)
			rule := zone.Rule{Ops: op, After: 25, Count: 1, Partial: op == zone.OpWrite}
			f, err := zone.NewFaulty(mem, 1, rule)
			if err != nil {
				t.Fatal(err)
			}
			e := mustOpen(t, f, testOptions(nil))
			rng := rand.New(rand.NewPCG(4, 4))
			live := map[ID][]byte{}
			var failed error
			var last []byte
			for i := 0; i < 100 && failed == nil; i++ {
				last = randomBlock(rng, 30<<10)
				if failed = e.Put(ctx, BlockID(last), last); failed == nil {
					live[BlockID(last)] = last
				}
			}
			if !errors.Is(failed, zone.ErrInjected) {
				t.Fatalf("first failed put: %v, want the injected fault", failed)
			}
			b := []byte("after the fault")
			if err := e.Put(ctx, BlockID(b), b); err == nil {
				t.Fatal("a put after a failed write must fail")
			}
			checkState(t, e, live, nil) // reads still work
			e.Close()
			e = mustOpen(t, mem, testOptions(nil))
			defer e.Close()
			// The put that failed may or may not have reached the disk.
			if ok, _ := e.Has(ctx, BlockID(last)); ok {
				live[BlockID(last)] = last
			}
			checkState(t, e, live, nil)
			if err := e.Put(ctx, BlockID(b), b); err != nil {
				t.Fatalf("put after reopening: %v", err)
			}
		})
	}
}

// A record whose bytes rot is not copied by compaction: it is dropped
// from the index (the volume layer restores it), every other block moves.
func TestCompactionDropsCorruptRecord(t *testing.T) {
	ctx := context.Background()
	mem := newMem(t, zone.KindFile, 0)
	f, err := zone.NewFaulty(mem, 1)
	if err != nil {
		t.Fatal(err)
	}
	e := mustOpen(t, f, testOptions(nil))
	rng := rand.New(rand.NewPCG(5, 5))
	ids, data := putN(t, e, rng, 60, 20<<10) // extent 0 closed with 42 blocks
	for _, id := range ids[2:30] {
		if err := e.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		delete(data, id)
	}
	bad := ids[1]
	loc, _, err := e.find(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(loc) * record.BlockSize
	if err := f.Inject(zone.Rule{Ops: zone.OpRead, From: off + record.BlockSize, To: off + 2*record.BlockSize, Corrupt: true}); err != nil {
		t.Fatal(err)
	}
	var ce *CorruptionError
	if _, err := e.Get(ctx, bad); !errors.As(err, &ce) || ce.Offset != off {
		t.Fatalf("Get of the rotten block: %v", err)
	}
	if did, err := e.Compact(ctx, 0); err != nil || !did {
		t.Fatalf("Compact: %v, %v", did, err)
	}
	delete(data, bad)
	if ok, err := e.Has(ctx, bad); ok || err != nil {
		t.Fatalf("rotten block still indexed: %v, %v", ok, err)
	}
	checkState(t, e, data, nil)
	e.Close()
	e = mustOpen(t, mem, testOptions(nil))
	defer e.Close()
	checkState(t, e, data, nil)
}
