package volume

import (
	"bytes"
	"context"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/zone"
)

// gatedDevice counts a device's flushes and, once armed, holds the first
// write until the gate opens.
type gatedDevice struct {
	zone.Device
	armed   atomic.Bool
	once    sync.Once
	gate    chan struct{}
	flushes atomic.Int64
}

func (g *gatedDevice) WriteAt(p []byte, off int64) (int, error) {
	if g.armed.Load() {
		g.once.Do(func() { <-g.gate })
	}
	return g.Device.WriteAt(p, off)
}

func (g *gatedDevice) Flush(ctx context.Context) error {
	g.flushes.Add(1)
	return g.Device.Flush(ctx)
}

// parkedInEngine counts goroutines waiting in engine.(*Engine).submit
// for their write to be durable: a request is queued (or being written)
// once its goroutine parks there.
func parkedInEngine() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		lines := strings.SplitN(g, "\n", 3)
		if len(lines) >= 2 && strings.Contains(lines[0], "[chan receive") &&
			strings.Contains(lines[1], "osd/engine.(*Engine).submit(") {
			count++
		}
	}
	return count
}

// TestGroupCommitAcrossPuts shows group commit at the volume level on 6
// loop devices: 16 concurrent Puts share the engines' flushes. Every
// device holds its first write until each of the 16 Puts has its
// fragment queued on every engine (all 6 × 16 PutMeta calls parked
// waiting for durability, seen in the goroutine dump, no timing); then
// the first batch finishes and the 15 queued fragments of each engine go
// out as one batch with one flush. Each device flushes fewer times than
// there were Puts; every block reads back.
func TestGroupCommitAcrossPuts(t *testing.T) {
	ctx := context.Background()
	gate := make(chan struct{})
	var devs []zone.Device
	var gs []*gatedDevice
	for _, d := range openPaths(t, loopPaths(t, 6)) {
		g := &gatedDevice{Device: d, gate: gate}
		gs = append(gs, g)
		devs = append(devs, g)
	}
	v, err := Create(ctx, devs, testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	const puts = 16
	rng := rand.New(rand.NewPCG(91, 92))
	var bs []block
	seen := map[byte]bool{} // distinct key[0]: no two Puts share a volume key lock
	for len(bs) < puts {
		b := randBlock(rng, 1+rng.IntN(64<<10))
		if !seen[b.key[0]] {
			seen[b.key[0]] = true
			bs = append(bs, b)
		}
	}
	for _, g := range gs {
		g.flushes.Store(0)
		g.armed.Store(true)
	}
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(func() {
			if stored, err := v.Put(ctx, b.key, b.data); err != nil || !stored {
				t.Errorf("put %x: stored=%v %v", b.key[:8], stored, err)
			}
		})
	}
	want := puts * len(devs)
	deadline := time.Now().Add(90 * time.Second)
	for parkedInEngine() < want {
		if time.Now().After(deadline) {
			close(gate)
			wg.Wait()
			t.Fatalf("timed out waiting for %d queued fragments (%d)", want, parkedInEngine())
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i, g := range gs {
		f := g.flushes.Load()
		t.Logf("device %d: %d flushes for %d puts", i, f, puts)
		if f >= puts || f < 1 {
			t.Errorf("device %d: %d flushes for %d concurrent puts, want 1..%d", i, f, puts, puts-1)
		}
	}
	for _, b := range bs {
		got, err := v.Get(ctx, b.key)
		if err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("get %x: %v", b.key[:8], err)
		}
	}
}
