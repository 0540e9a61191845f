package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const (
	testZoneSize = 1 << 20
	testDevSize  = 48 << 20
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testOpts() Options {
	return Options{ZonesPerExtent: 4, Logger: quiet(), ScrubBytesPerSecond: -1}
}

// loops attaches n blank loop devices (direct I/O).
func loops(t testing.TB, n int) []string {
	t.Helper()
	loopdev.NeedRoot(t)
	var ps []string
	for range n {
		ps = append(ps, loopdev.Zero(t, testDevSize))
	}
	// The node forms volumes from free drives in path order; sorted here,
	// paths[i] is the i-th drive the node considers whatever loop numbers
	// the kernel handed out (/dev/loop10 sorts before /dev/loop2, and
	// other packages' tests attach loops at the same time).
	slices.Sort(ps)
	return ps
}

// open opens each path as an emulated-zone device, closed when the test
// ends (Close twice is harmless for the test).
func open(t testing.TB, paths []string) []Drive {
	t.Helper()
	var ds []Drive
	for i, p := range paths {
		d, err := zone.OpenEmulated(p, zone.EmulatedOptions{ZoneSize: testZoneSize})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		ds = append(ds, Drive{Dev: d, Serial: "SER" + string(rune('A'+i))})
	}
	return ds
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
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

func putBlocks(t testing.TB, n *Node, rng *rand.Rand, count, maxSize int) []block {
	t.Helper()
	var bs []block
	for range count {
		b := randBlock(rng, 1+rng.IntN(maxSize))
		stored, err := n.Put(context.Background(), b.key, b.data)
		if err != nil {
			t.Fatalf("put %x: %v", b.key[:8], err)
		}
		if !stored {
			t.Fatalf("put %x: reported already stored", b.key[:8])
		}
		bs = append(bs, b)
	}
	return bs
}

func readAll(t testing.TB, n *Node, bs []block) {
	t.Helper()
	for _, b := range bs {
		got, err := n.Get(context.Background(), b.key)
		if err != nil {
			t.Fatalf("get %x: %v", b.key[:8], err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("get %x: wrong bytes", b.key[:8])
		}
	}
}

func role(st Status, path string) DriveStatus {
	for _, d := range st.Drives {
		if d.Path == path {
			return d
		}
	}
	return DriveStatus{}
}

// waitFor polls cond until it holds (bounded: a generous minute).
func waitFor(t testing.TB, n *Node, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := n.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findFragment returns the drive and device offset where pattern (the
// first 4 KiB of a data fragment) lies.
func findFragment(t testing.TB, ds []Drive, pattern []byte) (Drive, int64) {
	t.Helper()
	for _, d := range ds {
		in := d.Dev.Info()
		buf := zone.AlignedBlock(1 << 20)
		for off := int64(0); off < in.Size; off += int64(len(buf)) - 8192 {
			if off+int64(len(buf)) > in.Size {
				off = in.Size - int64(len(buf))
			}
			if _, err := d.Dev.ReadAt(buf, off); err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(buf, pattern); i >= 0 {
				return d, off + int64(i)
			}
			if off+int64(len(buf)) >= in.Size {
				break
			}
		}
	}
	t.Fatal("fragment not found on any drive")
	return Drive{}, 0
}

// flipByte flips one byte in place on the device.
func flipByte(t testing.TB, d Drive, off int64) {
	t.Helper()
	blk := off &^ 4095
	buf := zone.AlignedBlock(4096)
	if _, err := d.Dev.ReadAt(buf, blk); err != nil {
		t.Fatal(err)
	}
	buf[off-blk] ^= 0xff
	if _, err := d.Dev.WriteAt(buf, blk); err != nil {
		t.Fatal(err)
	}
	if err := d.Dev.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// fakeClock advances on Sleep; a long sleep (the pause between scrub
// passes) waits for the context instead.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
	hook  func()
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if d >= time.Hour {
		<-ctx.Done()
		return ctx.Err()
	}
	c.mu.Lock()
	c.slept += d
	c.now = c.now.Add(d)
	h := c.hook
	c.mu.Unlock()
	if h != nil {
		h()
	}
	return ctx.Err()
}

// faulty puts a fault injector in front of every drive.
func faulty(t testing.TB, ds []Drive) ([]Drive, []*zone.Faulty) {
	t.Helper()
	fs := make([]*zone.Faulty, len(ds))
	for i := range ds {
		f, err := zone.NewFaulty(ds[i].Dev, uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		fs[i] = f
		ds[i].Dev, ds[i].Path = f, f.Info().Path
	}
	return ds, fs
}
