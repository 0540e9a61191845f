package engine

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stowage/stowage/osd/index"
	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// Test geometry: 256 KiB zones, 4 per extent (1 MiB extents), zone 0
// reserved for the label.
const (
	testZoneSize = 256 << 10
	testZones    = 64
)

// quietLogger discards logs, unless STOWAGE_ENGINE_LOG is set (then
// debug logs go to stderr, to follow a failing seed).
func quietLogger() *slog.Logger {
	if os.Getenv("STOWAGE_ENGINE_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testOptions(rng *rand.Rand) Options {
	o := Options{FirstZone: 1, ZonesPerExtent: 4, Logger: quietLogger(), VerifyKey: true}
	if rng != nil {
		o.Incarnation = func() uint64 { return rng.Uint64() | 1 }
	}
	return o
}

func newMem(t testing.TB, kind zone.Kind, capacity int64) *zone.Mem {
	t.Helper()
	o := zone.MemOptions{Kind: kind, ZoneSize: testZoneSize, NumZones: testZones}
	if kind == zone.KindZoned {
		o.MaxOpen, o.MaxActive = 1, 1 // the engine keeps one zone active at a time
		o.ZoneCapacity = capacity
	}
	m, err := zone.NewMem(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mustOpen(t testing.TB, dev zone.Device, o Options) *Engine {
	t.Helper()
	e, err := Open(context.Background(), dev, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return e
}

func randomBlock(rng *rand.Rand, maxLen int) []byte {
	n := 1 + rng.IntN(maxLen)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// checkState asserts that e holds exactly live (ID → data), by Get, Has
// and Scan.
func checkState(t testing.TB, e *Engine, live map[ID][]byte, gone map[ID]bool) {
	t.Helper()
	ctx := context.Background()
	for id, want := range live {
		got, err := e.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%v): %v", id, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Get(%v): %d bytes differ from the %d stored", id, len(got), len(want))
		}
	}
	for id := range gone {
		if ok, err := e.Has(ctx, id); err != nil || ok {
			t.Fatalf("Has(%v) = %v, %v after delete", id, ok, err)
		}
		if _, err := e.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%v) after delete: %v", id, err)
		}
	}
	seen := map[ID]bool{}
	if err := e.Scan(ctx, func(id ID, info Info) error {
		if seen[id] {
			t.Fatalf("Scan: %v twice", id)
		}
		seen[id] = true
		if want, ok := live[id]; !ok || info.Size != len(want) {
			t.Fatalf("Scan: %v (%d bytes) not in the live set", id, info.Size)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != len(live) || e.Stats().Blocks != len(live) {
		t.Fatalf("Scan saw %d, index holds %d, want %d", len(seen), e.Stats().Blocks, len(live))
	}
}

func TestPutGetDeleteReopenCompact(t *testing.T) {
	for _, kind := range []zone.Kind{zone.KindFile, zone.KindZoned} {
		t.Run(kind.String(), func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, uint64(kind)))
			dev := newMem(t, kind, testZoneSize-8192)
			e := mustOpen(t, dev, testOptions(rng))
			live := map[ID][]byte{}
			all := map[ID][]byte{}
			gone := map[ID]bool{}
			var ids []ID
			for i := 0; i < 300; i++ {
				b := randomBlock(rng, 40<<10)
				id := BlockID(b)
				if err := e.Put(ctx, id, b); err != nil {
					t.Fatalf("Put %d: %v", i, err)
				}
				live[id] = b
				all[id] = b
				ids = append(ids, id)
			}
			// Idempotent put; key check.
			if err := e.Put(ctx, ids[0], live[ids[0]]); err != nil {
				t.Fatal(err)
			}
			if err := e.Put(ctx, ids[0], []byte("not the block")); !errors.Is(err, ErrKeyMismatch) {
				t.Fatalf("wrong key: %v", err)
			}
			if err := e.Put(ctx, ID{}, nil); !errors.Is(err, ErrEmpty) {
				t.Fatalf("empty: %v", err)
			}
			if err := e.Put(ctx, ID{}, make([]byte, MaxBlock+1)); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("too large: %v", err)
			}
			for _, id := range ids[:200] {
				if err := e.Delete(ctx, id); err != nil {
					t.Fatalf("Delete: %v", err)
				}
				delete(live, id)
				gone[id] = true
			}
			if err := e.Delete(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			checkState(t, e, live, gone)
			e.Close()

			e = mustOpen(t, dev, testOptions(rng))
			checkState(t, e, live, gone)
			before := e.Stats()
			n := 0
			for {
				did, err := e.Compact(ctx, 512<<10)
				if err != nil {
					t.Fatal(err)
				}
				if !did {
					break
				}
				n++
			}
			after := e.Stats()
			if after.Capacity != before.Capacity || after.FreeBytes <= before.FreeBytes || after.LiveBytes > before.LiveBytes {
				t.Fatalf("space before %+v, after %+v compaction", before, after)
			}
			if n == 0 || after.FreeExtents <= before.FreeExtents {
				t.Fatalf("compaction: %d rounds, free extents %d → %d", n, before.FreeExtents, after.FreeExtents)
			}
			checkState(t, e, live, gone)
			// A deleted block put again is live again, also after reopen.
			if err := e.Put(ctx, ids[5], all[ids[5]]); err != nil {
				t.Fatal(err)
			}
			live[ids[5]] = all[ids[5]]
			delete(gone, ids[5])
			e.Close()
			e = mustOpen(t, dev, testOptions(rng))
			checkState(t, e, live, gone)
			e.Close()
		})
	}
}

// Fragments: same key, different fragment numbers, metadata kept.
func TestFragments(t *testing.T) {
	ctx := context.Background()
	dev := newMem(t, zone.KindFile, 0)
	e := mustOpen(t, dev, testOptions(nil))
	defer e.Close()
	key := BlockID([]byte("the block")).Key
	for f := uint16(1); f <= 6; f++ {
		if err := e.PutMeta(ctx, ID{key, f}, 1000+uint32(f), bytes.Repeat([]byte{byte(f)}, 100*int(f))); err != nil {
			t.Fatal(err)
		}
	}
	for f := uint16(1); f <= 6; f++ {
		data, meta, err := e.GetMeta(ctx, ID{key, f})
		if err != nil || meta != 1000+uint32(f) || !bytes.Equal(data, bytes.Repeat([]byte{byte(f)}, 100*int(f))) {
			t.Fatalf("fragment %d: %d bytes, meta %d, %v", f, len(data), meta, err)
		}
	}
	if _, err := e.Get(ctx, ID{key, 0}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fragment 0: %v", err)
	}
}

// Filling the device gives ErrFull, not corruption; deletes and
// compaction still work and free it.
func TestFullDevice(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 7))
	m, err := zone.NewMem(zone.MemOptions{ZoneSize: testZoneSize, NumZones: 9})
	if err != nil {
		t.Fatal(err)
	}
	e := mustOpen(t, m, testOptions(rng))
	defer e.Close()
	var ids []ID
	for {
		b := randomBlock(rng, 64<<10)
		err := e.Put(ctx, BlockID(b), b)
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, BlockID(b))
	}
	// One extent is kept in reserve: a full drive still deletes and
	// compacts, and then takes new blocks again.
	for _, id := range ids {
		if err := e.Delete(ctx, id); err != nil {
			t.Fatalf("delete on a full drive: %v", err)
		}
	}
	compacted := 0
	for {
		did, err := e.Compact(ctx, 256<<10)
		if err != nil {
			t.Fatalf("compact on a full drive: %v", err)
		}
		if !did {
			break
		}
		compacted++
	}
	if compacted == 0 {
		t.Fatal("nothing compacted")
	}
	b := randomBlock(rng, 64<<10)
	if err := e.Put(ctx, BlockID(b), b); err != nil {
		t.Fatalf("put after compaction: %v", err)
	}
}

// The engine on a real file through O_DIRECT (when the filesystem has it).
func TestEmulatedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drive")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(testZones * testZoneSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dev, err := zone.OpenEmulated(path, zone.EmulatedOptions{ZoneSize: testZoneSize})
	if err != nil {
		dev, err = zone.OpenEmulated(path, zone.EmulatedOptions{ZoneSize: testZoneSize, Buffered: true})
		if err != nil {
			t.Fatal(err)
		}
	}
	defer dev.Close()
	runSmallWorkload(t, dev)
}

func runSmallWorkload(t *testing.T, dev zone.Device) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	e := mustOpen(t, dev, testOptions(nil))
	live := map[ID][]byte{}
	gone := map[ID]bool{}
	for i := 0; i < 200; i++ {
		b := randomBlock(rng, 30<<10)
		if err := e.Put(ctx, BlockID(b), b); err != nil {
			t.Fatal(err)
		}
		live[BlockID(b)] = b
		if i%3 == 0 {
			if err := e.Delete(ctx, BlockID(b)); err != nil {
				t.Fatal(err)
			}
			delete(live, BlockID(b))
			gone[BlockID(b)] = true
		}
	}
	checkState(t, e, live, gone)
	if _, err := e.Compact(ctx, 0); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = mustOpen(t, dev, testOptions(nil))
	defer e.Close()
	checkState(t, e, live, gone)
}

// Get of a record whose bytes were damaged says where.
func TestCorruptionError(t *testing.T) {
	ctx := context.Background()
	dev := newMem(t, zone.KindFile, 0)
	e := mustOpen(t, dev, testOptions(nil))
	b := bytes.Repeat([]byte("x"), 10000)
	id := BlockID(b)
	if err := e.Put(ctx, id, b); err != nil {
		t.Fatal(err)
	}
	loc, _, err := e.find(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(loc)*record.BlockSize + record.BlockSize // second block: payload
	p := zone.AlignedBlock(record.BlockSize)
	if _, err := dev.ReadAt(p, off); err != nil {
		t.Fatal(err)
	}
	p[100] ^= 0xff
	if _, err := dev.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	_, err = e.Get(ctx, id)
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Offset != int64(loc)*record.BlockSize || ce.Device != "mem" || ce.ID != id {
		t.Fatalf("Get of a damaged record: %v, want a CorruptionError at %d", err, int64(loc)*record.BlockSize)
	}
	e.Close()
}

// Opening a drive with another extent geometry than it was written with
// is refused, not taken for an empty drive.
func TestGeometryMismatch(t *testing.T) {
	ctx := context.Background()
	dev := newMem(t, zone.KindFile, 0)
	e := mustOpen(t, dev, testOptions(nil))
	if err := e.Put(ctx, BlockID([]byte("x")), []byte("x")); err != nil {
		t.Fatal(err)
	}
	e.Close()
	o := testOptions(nil)
	o.ZonesPerExtent = 2
	if _, err := Open(ctx, dev, o); err == nil || !strings.Contains(err.Error(), "geometry") {
		t.Fatalf("Open with 2 zones per extent: %v, want a geometry error", err)
	}
}

// Keys that share their first 16 bytes share an index fingerprint: every
// lookup sees all of them as candidates and must pick the right one by
// the on-disk header, through deletes, compaction and recovery.
func TestFingerprintCollisions(t *testing.T) {
	ctx := context.Background()
	dev := newMem(t, zone.KindFile, 0)
	e := mustOpen(t, dev, testOptions(nil)) // VerifyKey is only for fragment 0
	live := map[ID][]byte{}
	gone := map[ID]bool{}
	for i := 0; i < 60; i++ {
		var id ID
		copy(id.Key[:], "sixteen-byte-pfx")
		id.Key[31] = byte(i)
		id.Frag = 1 + uint16(i%3)
		b := bytes.Repeat([]byte{byte(i)}, 1000+i)
		if err := e.Put(ctx, id, b); err != nil {
			t.Fatal(err)
		}
		live[id] = b
	}
	var k [32]byte
	copy(k[:], "sixteen-byte-pfx")
	if got := e.idx.Lookup(index.Fingerprint(&k, 1), nil); len(got) != 20 {
		t.Fatalf("%d candidates share the fingerprint, want 20 (all of fragment 1)", len(got))
	}
	n := 0
	for id := range live {
		if n++; n%2 == 0 {
			if err := e.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
			delete(live, id)
			gone[id] = true
		}
	}
	checkState(t, e, live, gone)
	if _, err := e.Compact(ctx, 0); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = mustOpen(t, dev, testOptions(nil))
	defer e.Close()
	checkState(t, e, live, gone)
}
