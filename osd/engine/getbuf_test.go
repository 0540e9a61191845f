package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// TestGetMetaBufGuess: GetMetaBuf returns the same bytes whatever the
// guess (none, right, too small, too large, past the open extent's
// end); a right guess takes fewer device reads than none; a damaged
// record is a CorruptionError with a guess too.
func TestGetMetaBufGuess(t *testing.T) {
	for _, kind := range []zone.Kind{zone.KindFile, zone.KindZoned} {
		t.Run(kind.String(), func(t *testing.T) {
			ctx := context.Background()
			f, err := zone.NewFaulty(newMem(t, kind, testZoneSize-16<<10), 1)
			if err != nil {
				t.Fatal(err)
			}
			e := mustOpen(t, f, testOptions(nil))
			defer e.Close()
			rng := rand.New(rand.NewPCG(7, 8))
			key := BlockID([]byte("guess")).Key
			var frags [][]byte
			for i, n := range []int{1, 100, 4000, 5000, 20000, 70000, 150000, 9000} {
				b := make([]byte, n)
				for j := range b {
					b[j] = byte(rng.Uint32())
				}
				if err := e.PutMeta(ctx, ID{key, uint16(i + 1)}, uint32(n), b); err != nil {
					t.Fatal(err)
				}
				frags = append(frags, b)
			}
			buf := zone.AlignedBlock(ReadBufSize(200000))
			for i, want := range frags {
				id := ID{key, uint16(i + 1)}
				exact := ReadBufSize(len(want))
				ops := map[int]int64{}
				for _, guess := range []int{0, exact, 2 * record.BlockSize, exact + 64<<10, len(buf)} {
					guess = min(guess, len(buf))
					o0 := f.Ops()
					got, meta, err := e.GetMetaBuf(ctx, id, buf, guess)
					ops[guess] = f.Ops() - o0
					if err != nil || meta != uint32(len(want)) || !bytes.Equal(got, want) {
						t.Fatalf("fragment %d (%d bytes), guess %d: %d bytes, meta %d, %v", i+1, len(want), guess, len(got), meta, err)
					}
				}
				if exact > record.BlockSize && ops[exact] >= ops[0] {
					t.Errorf("fragment %d (%d bytes): %d reads with the right guess, %d without", i+1, len(want), ops[exact], ops[0])
				}
			}
			// Damage the payload of fragment 6: a right guess still
			// reports it.
			loc, _, err := e.find(ctx, ID{key, 6})
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Inject(zone.Rule{Ops: zone.OpRead, Corrupt: true, From: int64(loc)*record.BlockSize + 2*record.BlockSize, To: int64(loc)*record.BlockSize + 3*record.BlockSize}); err != nil {
				t.Fatal(err)
			}
			_, _, err = e.GetMetaBuf(ctx, ID{key, 6}, buf, ReadBufSize(len(frags[5])))
			var ce *CorruptionError
			if !errors.As(err, &ce) || ce.Offset != int64(loc)*record.BlockSize {
				t.Fatalf("damaged fragment with a right guess: %v, want a CorruptionError", err)
			}
		})
	}
}
