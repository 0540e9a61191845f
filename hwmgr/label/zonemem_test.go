package label

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// TestCrashMem runs seeded random label writes on osd/zone's crashable
// Mem (volatile cache: writes, zone resets and finishes since the last
// flush may be lost or torn at a sector), cutting the power at random
// operations. The oracle after every crash: the record found is the last
// acknowledged one or the one whose write was cut (if it all survived),
// never an older one, never a mix.
func TestCrashMem(t *testing.T) {
	kinds := []zone.MemOptions{
		{Kind: zone.KindFile, ZoneSize: 1 << 20, NumZones: 3},
		{Kind: zone.KindZoned, ZoneSize: 1 << 20, NumZones: 3},
		{Kind: zone.KindZoned, ZoneSize: 2 << 20, NumZones: 3, ZoneCapacity: 1<<20 + 512<<10, MaxOpen: 1, MaxActive: 2},
		{Kind: zone.KindZoned, ZoneSize: 1 << 20, NumZones: 3, ConvZones: 1},
	}
	ctx := context.Background()
	for ki, opts := range kinds {
		t.Run(fmt.Sprintf("%s-%d", opts.Kind, ki), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(ki), 42))
			dev, err := zone.NewMem(opts)
			if err != nil {
				t.Fatal(err)
			}
			var acked Record
			crashes := 0
			for i := range 400 {
				a, err := Open(ctx, dev, Options{})
				if err != nil {
					t.Fatalf("step %d: open: %v", i, err)
				}
				cur, ok := a.Current()
				if acked.Generation > 0 {
					sameRecord(t, cur, ok, acked)
				}
				payload := bytes.Repeat([]byte{byte(i)}, rng.IntN(12000))
				cut := rng.IntN(6) == 0
				if cut {
					dev.CutPowerAfter(int64(rng.IntN(4)))
				}
				w, err := a.Write(ctx, Record{State: lifecycle.InService, Serial: "MEM1", Owner: "osd", Payload: payload})
				if !cut {
					if err != nil {
						t.Fatalf("step %d: write: %v", i, err)
					}
					acked = w
					continue
				}
				crashes++
				attempt := w
				if err == nil {
					acked = w
				} else {
					attempt = Record{} // unknown generation: check content
				}
				dev = dev.Crash(rng)
				b, err := Open(ctx, dev, Options{})
				if err != nil {
					t.Fatalf("step %d: open after crash: %v", i, err)
				}
				got, ok := b.Current()
				switch {
				case acked.Generation > 0 && ok && got.Generation == acked.Generation:
					sameRecord(t, got, ok, acked)
				case ok && got.Generation > acked.Generation && bytes.Equal(got.Payload, payload) && got.Serial == "MEM1":
					acked = got // the cut write survived whole: it is the newest now
				case acked.Generation == 0 && !ok:
				default:
					t.Fatalf("step %d: after crash found generation %d (ok %v), acked %d, attempted %d",
						i, got.Generation, ok, acked.Generation, attempt.Generation)
				}
			}
			if crashes < 40 {
				t.Errorf("only %d crashes", crashes)
			}
		})
	}
}
