package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const (
	testZoneSize = 1 << 20
	testDevSize  = 64 << 20
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOpts() Options {
	return Options{ZonesPerExtent: 4, Logger: quiet()}
}

// zeroFile creates a zero-filled file of size bytes (real zeros: O_DIRECT
// into unwritten extents is slow).
func zeroFile(t testing.TB, dir string, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(zero)) {
		if _, err := f.Write(zero[:min(int64(len(zero)), size-off)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func tempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "stowage-volume-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// filePaths makes n zero-filled backing files.
func filePaths(t testing.TB, n int) []string {
	dir := tempDir(t)
	var ps []string
	for i := range n {
		ps = append(ps, zeroFile(t, dir, "drive"+string(rune('a'+i)), testDevSize))
	}
	return ps
}

// loopPaths attaches n fresh zero-filled files as loop devices with
// direct I/O. Without root (or losetup) the test is skipped, unless CI is
// set: then it fails. The devices are detached when the test ends.
func loopPaths(t testing.TB, n int) []string {
	t.Helper()
	loopdev.NeedRoot(t)
	var devs []string
	for _, file := range filePaths(t, n) {
		devs = append(devs, loopdev.Attach(t, file))
	}
	return devs
}

// openPaths opens each path as an emulated-zone device (closed at the end
// of the test unless the test closes it first).
func openPaths(t testing.TB, paths []string) []zone.Device {
	t.Helper()
	var ds []zone.Device
	for _, p := range paths {
		d, err := zone.OpenEmulated(p, zone.EmulatedOptions{ZoneSize: testZoneSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds = append(ds, d)
	}
	return ds
}

func memDevs(t testing.TB, n int) []*zone.Mem { return memDevsOf(t, zone.KindFile, n) }

// memDevsOf makes n in-memory devices of kind (zoned ones with zone
// capacity below the zone size and open/active limits, as ZNS drives).
func memDevsOf(t testing.TB, kind zone.Kind, n int) []*zone.Mem {
	t.Helper()
	var ds []*zone.Mem
	for i := range n {
		o := zone.MemOptions{Kind: kind, ZoneSize: testZoneSize, NumZones: 32, Path: "mem" + string(rune('a'+i))}
		if kind == zone.KindZoned {
			o.NumZones, o.ZoneCapacity, o.MaxOpen, o.MaxActive = 48, 768<<10, 4, 6
		}
		m, err := zone.NewMem(o)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, m)
	}
	return ds
}

func asDevices[T zone.Device](ds []T) []zone.Device {
	out := make([]zone.Device, len(ds))
	for i, d := range ds {
		out[i] = d
	}
	return out
}

type block struct {
	key  Key
	data []byte
}

func randBlock(rng *rand.Rand, size int) block {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return block{sha256.Sum256(b), b}
}

// putBlocks stores n blocks of random sizes in [1, maxSize].
func putBlocks(t testing.TB, v *Volume, rng *rand.Rand, n, maxSize int) []block {
	t.Helper()
	var bs []block
	for range n {
		b := randBlock(rng, 1+rng.IntN(maxSize))
		stored, err := v.Put(context.Background(), b.key, b.data)
		if err != nil {
			t.Fatalf("put %x: %v", b.key[:8], err)
		}
		if !stored {
			t.Fatalf("put %x: reported as already stored", b.key[:8])
		}
		bs = append(bs, b)
	}
	return bs
}

// readAll reads every block back and compares; it returns how many reads
// needed parity.
func readAll(t testing.TB, v *Volume, bs []block) int {
	t.Helper()
	recon := 0
	for _, b := range bs {
		got, rep, err := v.Read(context.Background(), b.key)
		if err != nil {
			t.Fatalf("read %x: %v", b.key[:8], err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("read %x: %d bytes differ from the %d put", b.key[:8], len(got), len(b.data))
		}
		if rep.Reconstructed {
			recon++
		}
	}
	return recon
}
