package node

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestCompaction (6 loops, 2 MiB extents): 112 blocks of 256 KiB fill
// a few extents of every drive, 4 of every 5 are deleted; Run's paced
// compaction reclaims the dead extents (free bytes up by at least two
// extents per drive); every kept block reads and the deleted ones stay
// deleted, also after a restart.
func TestCompaction(t *testing.T) {
	ctx := context.Background()
	paths := loops(t, 6)
	o := testOpts()
	o.ZonesPerExtent = 2
	o.ScrubDelay = time.Hour
	o.CompactInterval = 10 * time.Millisecond
	n, err := Open(ctx, open(t, paths), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rng := rand.New(rand.NewPCG(101, 102))
	var bs []block
	for range 112 {
		b := randBlock(rng, 256<<10)
		if _, err := n.Put(ctx, b.key, b.data); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	var kept, deleted []block
	for i, b := range bs {
		if i%5 == 0 {
			kept = append(kept, b)
			continue
		}
		if err := n.Delete(ctx, b.key); err != nil {
			t.Fatal(err)
		}
		deleted = append(deleted, b)
	}
	before := n.Status().Space.Free
	const extent = 2 * testZoneSize
	want := before + 2*extent*6

	rctx, cancel := context.WithCancel(ctx)
	var run sync.WaitGroup
	run.Go(func() { _ = n.Run(rctx) })
	st := waitFor(t, n, "compaction", func(s Status) bool { return s.Space.Free >= want })
	cancel()
	run.Wait()
	t.Logf("free %d -> %d bytes, %d extents compacted", before, st.Space.Free, st.Counter.Compacted)
	if st.Counter.Compacted < 2*6 {
		t.Errorf("%d extents compacted, want at least 2 per drive", st.Counter.Compacted)
	}
	check := func(n *Node) {
		t.Helper()
		readAll(t, n, kept)
		for _, b := range deleted {
			if _, err := n.Get(ctx, b.key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted %x: %v, want ErrNotFound", b.key[:8], err)
			}
		}
		keys, err := n.List(ctx, Key{}, 1000)
		if err != nil {
			t.Fatal(err)
		}
		var want []Key
		for _, b := range kept {
			want = append(want, b.key)
		}
		slices.SortFunc(want, func(a, b Key) int { return slices.Compare(a[:], b[:]) })
		if !slices.Equal(keys, want) {
			t.Fatalf("listed %d keys, want the %d kept", len(keys), len(want))
		}
	}
	check(n)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	o.CompactInterval = -1
	n2, err := Open(ctx, open(t, paths), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	check(n2)
	if free := n2.Status().Space.Free; free < want {
		t.Errorf("after a restart: %d free bytes, want ≥ %d", free, want)
	}
}
