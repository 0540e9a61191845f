package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stowage/stowage/osd/zone"
)

// recorder is a zone.Device wrapper that logs every completed write and
// every flush in one order, with marks the test adds after a call
// returns: the host-side twin of dm-log-writes. A flush is logged when it
// starts, so the writes logged before it are exactly those it covers.
type recorder struct {
	zone.Device
	mu  sync.Mutex
	log []recEntry
}

type recEntry struct {
	off   int64
	data  []byte // a write
	flush bool
	mark  string
}

func (r *recorder) WriteAt(p []byte, off int64) (int, error) {
	n, err := r.Device.WriteAt(p, off)
	if err == nil {
		r.mu.Lock()
		r.log = append(r.log, recEntry{off: off, data: append([]byte(nil), p...)})
		r.mu.Unlock()
	}
	return n, err
}

func (r *recorder) Reset(ctx context.Context, i int) error {
	if err := r.Device.Reset(ctx, i); err != nil {
		return err
	}
	// An emulated reset is a write of one zero block.
	r.mu.Lock()
	r.log = append(r.log, recEntry{off: r.Info().ZoneStart(i), data: make([]byte, r.Info().BlockSize)})
	r.mu.Unlock()
	return nil
}

func (r *recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	r.log = append(r.log, recEntry{flush: true})
	r.mu.Unlock()
	return r.Device.Flush(ctx)
}

func (r *recorder) mark(s string) {
	r.mu.Lock()
	r.log = append(r.log, recEntry{mark: s})
	r.mu.Unlock()
}

// TestFlushReplay runs a concurrent workload (4 writers putting and
// deleting, a compactor) on a recorded device, then replays the record
// onto a fresh Mem and checks recovery at every flush and at a random
// cut of the writes before each flush: every put or delete marked before
// the point holds. It is the host-side form of TestVMEngineLogWrites.
func TestFlushReplay(t *testing.T) {
	n := 6
	if raceEnabled || testing.Short() {
		n = 2
	}
	for seed := 0; seed < n; seed++ {
		if err := flushReplay(uint64(seed)); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func flushReplay(seed uint64) error {
	ctx := context.Background()
	mo := zone.MemOptions{ZoneSize: testZoneSize, NumZones: 24}
	base, err := zone.NewMem(mo)
	if err != nil {
		return err
	}
	rec := &recorder{Device: base}
	opts := testOptions(nil)
	e, err := Open(ctx, rec, opts)
	if err != nil {
		return err
	}
	blocks := make([][]byte, 120)
	ids := make([]ID, len(blocks))
	for i := range blocks {
		blocks[i] = randomBlock(rand.New(rand.NewPCG(seed, uint64(i))), 40<<10)
		ids[i] = BlockID(blocks[i])
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(blocks); i += 4 {
				if err := e.Put(ctx, ids[i], blocks[i]); err != nil {
					errs <- err
					return
				}
				rec.mark(fmt.Sprintf("put %d", i))
				if i%3 == 0 {
					if err := e.Delete(ctx, ids[i]); err != nil {
						errs <- err
						return
					}
					rec.mark(fmt.Sprintf("del %d", i))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 10; i++ {
			if _, err := e.Compact(ctx, 0); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	e.Close()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}

	mem, err := zone.NewMem(mo)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(seed, 3))
	acked, deleted := map[int]bool{}, map[int]bool{}
	check := func(d *zone.Mem, what string) error {
		e, err := Open(ctx, d, opts)
		if err != nil {
			return fmt.Errorf("%s: open: %w", what, err)
		}
		defer e.Close()
		for i := range acked {
			if deleted[i] || i%3 == 0 {
				continue
			}
			got, err := e.Get(ctx, ids[i])
			if err != nil || string(got) != string(blocks[i]) {
				return fmt.Errorf("%s: block %d, acknowledged before it: %v", what, i, err)
			}
		}
		for i := range deleted {
			if ok, err := e.Has(ctx, ids[i]); ok || err != nil {
				return fmt.Errorf("%s: block %d, deleted before it, is back (%v)", what, i, err)
			}
		}
		return nil
	}
	flushes := 0
	for k, en := range rec.log {
		switch {
		case en.mark != "":
			var op string
			var i int
			if _, err := fmt.Sscanf(en.mark, "%s %d", &op, &i); err != nil {
				return err
			}
			if op == "put" {
				acked[i] = true
			} else {
				deleted[i] = true
			}
		case en.flush:
			if err := check(mem.Crash(rng), fmt.Sprintf("entry %d, crash before flush %d", k, flushes)); err != nil {
				return err
			}
			if err := mem.Flush(ctx); err != nil {
				return err
			}
			flushes++
			if err := check(mem.CrashAt(zone.CrashPoint{}), fmt.Sprintf("entry %d, flush %d", k, flushes)); err != nil {
				return err
			}
		default:
			if _, err := mem.WriteAt(en.data, en.off); err != nil {
				return err
			}
		}
	}
	return nil
}
