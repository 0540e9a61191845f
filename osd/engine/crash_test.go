package engine

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/stowage/stowage/osd/zone"
)

var (
	crashIters = flag.Int("crash.iters", 300, "iterations of each crash test")
	crashSeed  = flag.Int64("crash.seed", -1, "replay only this seed")
	crashFirst = flag.Int64("crash.first", 0, "first seed of the run")
)

// oracle is what the workload was told: acknowledged puts and deletes, and
// IDs whose last operation failed (either outcome is allowed).
type oracle struct {
	mu        sync.Mutex
	live      map[ID][]byte
	gone      map[ID]bool
	uncertain map[ID][]byte
	data      map[ID][]byte // every block ever put
}

func newOracle() *oracle {
	return &oracle{live: map[ID][]byte{}, gone: map[ID]bool{}, uncertain: map[ID][]byte{}, data: map[ID][]byte{}}
}

func (o *oracle) put(id ID, b []byte, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.data[id] = b
	if err != nil {
		o.uncertain[id] = b
		return
	}
	o.live[id] = b
	delete(o.gone, id)
	delete(o.uncertain, id)
}

func (o *oracle) del(id ID, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			o.uncertain[id] = o.data[id]
		}
		return
	}
	delete(o.live, id)
	delete(o.uncertain, id)
	o.gone[id] = true
}

// check asserts the recovered engine against the oracle: every
// acknowledged block intact, no acknowledged delete undone, nothing that
// was never put; uncertain IDs may be either way but intact if present.
// It then settles the uncertain IDs to what the engine holds.
func (o *oracle) check(e *Engine) error {
	ctx := context.Background()
	for id, want := range o.live {
		if _, u := o.uncertain[id]; u {
			continue
		}
		got, err := e.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("acknowledged %v: %w", id, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("acknowledged %v: bytes differ", id)
		}
	}
	for id := range o.gone {
		if _, u := o.uncertain[id]; u {
			continue
		}
		if ok, err := e.Has(ctx, id); err != nil || ok {
			return fmt.Errorf("deleted %v came back (has=%v, err=%v)", id, ok, err)
		}
	}
	for id, want := range o.uncertain {
		got, err := e.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			delete(o.live, id)
			o.gone[id] = true
		case err != nil:
			return fmt.Errorf("uncertain %v: %w", id, err)
		case !bytes.Equal(got, want):
			return fmt.Errorf("uncertain %v: bytes differ", id)
		default:
			o.live[id] = want
			delete(o.gone, id)
		}
		delete(o.uncertain, id)
	}
	n := 0
	err := e.Scan(ctx, func(id ID, _ Info) error {
		if _, ok := o.live[id]; !ok {
			return fmt.Errorf("scan: %v is not live", id)
		}
		n++
		return nil
	})
	if err != nil {
		return err
	}
	if n != len(o.live) {
		return fmt.Errorf("scan saw %d blocks, want %d", n, len(o.live))
	}
	return nil
}

// workload runs ops operations: puts (new blocks and re-puts of deleted
// ones), deletes and compactions. It stops at the first error and reports
// it (a power cut shows up that way).
func workload(e *Engine, rng *rand.Rand, o *oracle, ops int) error {
	ctx := context.Background()
	var ids []ID
	for id := range o.live {
		ids = append(ids, id)
	}
	sortIDs(ids)
	for i := 0; i < ops; i++ {
		switch p := rng.IntN(100); {
		case p < 55 || len(ids) == 0:
			b := randomBlock(rng, 48<<10)
			id := BlockID(b)
			err := e.Put(ctx, id, b)
			o.put(id, b, err)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		case p < 85:
			k := rng.IntN(len(ids))
			id := ids[k]
			err := e.Delete(ctx, id)
			o.del(id, err)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
		case p < 92:
			id := ids[rng.IntN(len(ids))]
			err := e.Put(ctx, id, o.data[id])
			o.put(id, o.data[id], err)
			if err != nil {
				return err
			}
		default:
			if _, err := e.Compact(ctx, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortIDs(ids []ID) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && bytes.Compare(ids[j].Key[:], ids[j-1].Key[:]) < 0; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

// crashOnce runs one seeded iteration: a workload cut by a power failure
// after a random number of device operations, a crash that keeps a random
// prefix of the unflushed changes and tears the next, recovery, the
// oracle check, then more work and a second clean reopen.
func crashOnce(seed int64, kind zone.Kind) (cut bool, err error) {
	var logs bytes.Buffer
	defer func() {
		if err != nil && os.Getenv("STOWAGE_CRASH_LOG") != "" {
			os.Stderr.Write(logs.Bytes())
		}
	}()
	rng := rand.New(rand.NewPCG(uint64(seed), uint64(kind)))
	o := zone.MemOptions{Kind: kind, ZoneSize: testZoneSize, NumZones: 48}
	if kind == zone.KindZoned {
		o.MaxOpen, o.MaxActive = 1, 1 // the engine keeps one zone active at a time
		if rng.IntN(2) == 0 {
			o.ZoneCapacity = testZoneSize - 12<<10
		}
		o.Flavor = zone.Flavor(rng.IntN(3)) // null_blk, ZBC or ZNS corner cases
		o.ConvZones = rng.IntN(2)           // a conventional zone 0, as on null_blk and SMR drives
	}
	dev, err := zone.NewMem(o)
	if err != nil {
		return false, err
	}
	opts := testOptions(rng)
	opts.serial = true
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := Open(context.Background(), dev, opts)
	if err != nil {
		return cut, fmt.Errorf("first open: %w", err)
	}
	or := newOracle()
	if err := workload(e, rng, or, 40+rng.IntN(40)); err != nil {
		return cut, fmt.Errorf("warm-up: %w", err)
	}
	dev.CutPowerAfter(rng.Int64N(600))
	werr := workload(e, rng, or, 200)
	cut = werr != nil
	crashed := dev.Crash(rng)
	e.Close()
	if werr != nil && !errors.Is(werr, zone.ErrPowerCut) {
		return cut, fmt.Errorf("workload: %w", werr)
	}
	e, err = Open(context.Background(), crashed, opts)
	if err != nil {
		return cut, fmt.Errorf("open after the crash: %w", err)
	}
	if err := or.check(e); err != nil {
		e.Close()
		return cut, fmt.Errorf("after the crash: %w", err)
	}
	// Appends after recovery must be readable after the next restart.
	if err := workload(e, rng, or, 60); err != nil {
		e.Close()
		return cut, fmt.Errorf("after recovery: %w", err)
	}
	e.Close()
	e, err = Open(context.Background(), crashed, opts)
	if err != nil {
		return cut, fmt.Errorf("second reopen: %w", err)
	}
	defer e.Close()
	if err := or.check(e); err != nil {
		return cut, fmt.Errorf("second reopen: %w", err)
	}
	return cut, nil
}

func runCrash(t *testing.T, kind zone.Kind) {
	seeds := []int64{}
	if *crashSeed >= 0 {
		seeds = append(seeds, *crashSeed)
	} else {
		n := *crashIters
		if raceEnabled {
			n /= 5
		}
		if testing.Short() {
			n /= 10
		}
		if s := os.Getenv("STOWAGE_CRASH_ITERS"); s != "" {
			if v, err := strconv.Atoi(s); err == nil {
				n = v
			}
		}
		for i := 0; i < n; i++ {
			seeds = append(seeds, *crashFirst+int64(i))
		}
	}
	cuts := 0
	for _, s := range seeds {
		cut, err := crashOnce(s, kind)
		if cut {
			cuts++
		}
		if err != nil {
			t.Fatalf("seed %d: %v\nreplay: go test ./osd/engine -run '%s$' -crash.seed %d", s, err, t.Name(), s)
		}
	}
	t.Logf("%d crash iterations passed, %d of them cut the power mid-workload", len(seeds), cuts)
}

func TestCrashFile(t *testing.T)  { runCrash(t, zone.KindFile) }
func TestCrashZoned(t *testing.T) { runCrash(t, zone.KindZoned) }

// crashConcurrent is crashOnce with 8 goroutines putting and deleting
// (each its own blocks) and one compacting, so that group commits hold
// many records when the power goes. Goroutine scheduling makes a seed
// replay only approximately; the oracle is the same.
func crashConcurrent(seed int64, kind zone.Kind) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	o := zone.MemOptions{Kind: kind, ZoneSize: testZoneSize, NumZones: 48}
	if kind == zone.KindZoned {
		o.MaxOpen, o.MaxActive = 1, 1 // the engine keeps one zone active at a time
	}
	dev, err := zone.NewMem(o)
	if err != nil {
		return err
	}
	var incMu sync.Mutex
	opts := testOptions(nil)
	opts.Incarnation = func() uint64 { incMu.Lock(); defer incMu.Unlock(); return rng.Uint64() | 1 }
	e, err := Open(context.Background(), dev, opts)
	if err != nil {
		return err
	}
	or := newOracle()
	dev.CutPowerAfter(50 + rng.Int64N(1500))
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		wr := rand.New(rand.NewPCG(uint64(seed), uint64(w)))
		go func() {
			defer wg.Done()
			ctx := context.Background()
			var mine []ID
			for i := 0; i < 100; i++ {
				if len(mine) > 0 && wr.IntN(3) == 0 {
					id := mine[wr.IntN(len(mine))]
					err := e.Delete(ctx, id)
					or.del(id, err)
					if err != nil && !errors.Is(err, ErrNotFound) {
						return
					}
					continue
				}
				b := randomBlock(wr, 24<<10)
				id := BlockID(b)
				err := e.Put(ctx, id, b)
				or.put(id, b, err)
				if err != nil {
					return
				}
				mine = append(mine, id)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if _, err := e.Compact(context.Background(), 0); err != nil {
				return
			}
		}
	}()
	wg.Wait()
	crashed := dev.Crash(rng)
	e.Close()
	e, err = Open(context.Background(), crashed, opts)
	if err != nil {
		return fmt.Errorf("open after the crash: %w", err)
	}
	defer e.Close()
	return or.check(e)
}

func TestCrashConcurrent(t *testing.T) {
	n := *crashIters / 3
	if raceEnabled {
		n /= 5
	}
	for s := 0; s < n; s++ {
		kind := zone.KindFile
		if s%2 == 1 {
			kind = zone.KindZoned
		}
		if err := crashConcurrent(int64(s), kind); err != nil {
			t.Fatalf("seed %d (%v): %v", s, kind, err)
		}
	}
	t.Logf("%d concurrent crash iterations passed", n)
}
