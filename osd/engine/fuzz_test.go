package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// FuzzRecover damages a written drive at fuzzer-chosen places (each patch
// is an offset and the bytes to put there) and reopens it. The oracle:
// Open never panics; every Get either fails or returns exactly the bytes
// that were put under that ID (never other bytes); Scan lists only IDs
// that were put; and the engine still takes and keeps a new block.
func FuzzRecover(f *testing.F) {
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint32(nil, 1<<20+100)) // the second extent's header
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 300000), 0xff, 0xff, 0xff, 0xff))
	f.Add(append(binary.LittleEndian.AppendUint32(nil, 2<<20-4000), 1, 2, 3)) // a trailer candidate
	f.Fuzz(func(t *testing.T, patches []byte) {
		ctx := context.Background()
		dev, err := zone.NewMem(zone.MemOptions{ZoneSize: testZoneSize, NumZones: 16})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		e := mustOpen(t, dev, testOptions(rng))
		put := map[ID][]byte{}
		for i := 0; i < 70; i++ { // two closed extents and an open one
			b := randomBlock(rng, 30<<10)
			if err := e.Put(ctx, BlockID(b), b); err != nil {
				t.Fatal(err)
			}
			put[BlockID(b)] = b
			if i%4 == 0 {
				if err := e.Delete(ctx, BlockID(b)); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.Close()
		size := dev.Info().Size
		blk := zone.AlignedBlock(record.BlockSize)
		for len(patches) >= 5 {
			off := int64(binary.LittleEndian.Uint32(patches)) % size
			n := min(int(patches[4])%64+1, len(patches)-5)
			data := patches[5 : 5+n]
			patches = patches[5+n:]
			at := off &^ (record.BlockSize - 1)
			if _, err := dev.ReadAt(blk, at); err != nil {
				t.Fatal(err)
			}
			copy(blk[off-at:], data)
			if _, err := dev.WriteAt(blk, at); err != nil {
				t.Fatal(err)
			}
		}
		e, err = Open(ctx, dev, testOptions(nil))
		if err != nil {
			return // refusing a damaged drive is allowed; panicking is not
		}
		defer e.Close()
		for id, want := range put {
			got, err := e.Get(ctx, id)
			if err == nil && !bytes.Equal(got, want) {
				t.Fatalf("Get(%v) returned wrong bytes", id)
			}
		}
		err = e.Scan(ctx, func(id ID, _ Info) error {
			if _, ok := put[id]; !ok {
				t.Fatalf("Scan listed %v, never put", id)
			}
			return nil
		})
		if err != nil && !errors.Is(err, record.ErrCorrupt) {
			t.Logf("scan: %v", err)
		}
		b := []byte("after the damage")
		if err := e.Put(ctx, BlockID(b), b); err != nil {
			return // e.g. no free extent left: fine
		}
		if got, err := e.Get(ctx, BlockID(b)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("new block: %q, %v", got, err)
		}
	})
}
