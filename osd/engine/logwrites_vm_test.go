//go:build vmtest

package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// TestVMEngineLogWrites proves the flush ordering on a real kernel, the
// way xfstests generic/482 does: inside a guest the engine writes through
// dm-log-writes (4 writers putting and deleting, a compactor), and after
// every Put or Delete returns the test drops a mark into the log.
// dm-log-writes logs writes in the order the device made them durable: the
// writes completed before a flush, then the flush. The log is replayed
// onto an in-memory device; at every flush the state must recover with
// every block whose put was marked earlier in the log and none whose
// delete was; and before each flush the writes it covers are also cut at a
// random point (kept prefix, torn write) and checked the same way.
func TestVMEngineLogWrites(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.VirtioBlk, ID: "data", Serial: "LWDATA", Size: 256 << 20},
			{Kind: qemu.VirtioBlk, ID: "log", Serial: "LWLOG", Size: 1 << 30},
		},
		Modules:  []qemu.Module{{Name: "dm-log-writes"}},
		Binaries: []string{"dmsetup"},
		Timeout:  25 * time.Minute, // TCG: hundreds of recoveries
	}
	if dir := os.Getenv("STOWAGE_LW_KEEP"); dir != "" && os.Getenv("STOWAGE_VMTEST_GUEST") == "" {
		// Keep the images (to replay the log on the host while debugging).
		for i := range opts.Drives {
			opts.Drives[i].Image = dir + "/" + opts.Drives[i].ID + ".img"
			os.Remove(opts.Drives[i].Image)
		}
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		data, err := g.Device("LWDATA")
		if err != nil {
			t.Fatal(err)
		}
		logDev, err := g.Device("LWLOG")
		if err != nil {
			t.Fatal(err)
		}
		vmLogWrites(t, data.Path, logDev.Path)
	})
}

const lwZone = 512 << 10 // 1 MiB extents: several close, compaction has work

// lwBlocks are the test's blocks, small (TCG is slow), computed once.
var lwBlocks = func() (bs [][]byte) {
	for i := 0; i < 160; i++ {
		bs = append(bs, randomBlock(rand.New(rand.NewPCG(uint64(i), 78)), 32<<10))
	}
	return bs
}()

var lwIDs = func() (ids []ID) {
	for _, b := range lwBlocks {
		ids = append(ids, BlockID(b))
	}
	return ids
}()

func dmsetup(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("dmsetup", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func vmLogWrites(t *testing.T, dataPath, logPath string) {
	ctx := context.Background()
	const size = 256 << 20
	// The replay starts from what the data device holds now (nothing, on
	// a fresh image): only non-zero blocks are kept.
	before := nonZeroBlocks(t, dataPath, size)
	dmsetup(t, "create", "lw", "--noudevsync", "--table", fmt.Sprintf("0 %d log-writes %s %s", size/512, dataPath, logPath))
	path := "/dev/mapper/lw"
	if _, err := os.Stat(path); err != nil {
		path = "/dev/dm-0"
	}
	dev, err := zone.OpenEmulated(path, zone.EmulatedOptions{ZoneSize: lwZone})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{FirstZone: 1, ZonesPerExtent: 2, Logger: quietLogger()}
	e := mustOpen(t, dev, opts)
	var markMu sync.Mutex
	mark := func(s string) {
		markMu.Lock()
		defer markMu.Unlock()
		dmsetup(t, "message", "lw", "0", "mark", s)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 160; i += 4 {
				b := lwBlocks[i]
				if err := e.Put(ctx, lwIDs[i], b); err != nil {
					t.Errorf("put %d: %v", i, err)
					return
				}
				mark("put-" + strconv.Itoa(i))
				if i%3 == 0 {
					if err := e.Delete(ctx, lwIDs[i]); err != nil {
						t.Errorf("delete %d: %v", i, err)
						return
					}
					mark("del-" + strconv.Itoa(i))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 6; i++ {
			if _, err := e.Compact(ctx, 0); err != nil {
				t.Errorf("compact: %v", err)
				return
			}
		}
	}()
	wg.Wait()
	e.Close()
	dev.Close()
	dmsetup(t, "remove", "lw")
	if t.Failed() {
		return
	}
	replayLog(t, logPath, size, opts, before)
}

// nonZeroBlocks returns the non-zero 4 KiB blocks of the first size bytes
// of the device at path, by offset.
func nonZeroBlocks(t *testing.T, path string, size int64) map[int64][]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int64][]byte{}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := io.ReadFull(f, buf); err != nil {
			t.Fatal(err)
		}
		for b := 0; b < len(buf); b += 4096 {
			if !allZero(buf[b : b+4096]) {
				out[off+int64(b)] = append([]byte(nil), buf[b:b+4096]...)
			}
		}
	}
	return out
}

// dm-log-writes on-disk log (drivers/md/dm-log-writes.c).
const (
	lwMagic   = 0x6a736677736872
	lwFlush   = 1 << 0
	lwFUA     = 1 << 1
	lwDiscard = 1 << 2
	lwMark    = 1 << 3
)

type lwEntry struct {
	sector, nrSectors, flags, dataLen uint64
	data                              []byte // the written bytes, or the mark
}

// lwReader reads a dm-log-writes log: a super block in sector 0, then per
// entry one block holding the entry (and a mark's text) followed by the
// written data.
type lwReader struct {
	r          *bufio.Reader
	sectorSize int
	entries    uint64
	read       uint64
}

func newLWReader(f io.Reader) (*lwReader, error) {
	br := bufio.NewReaderSize(f, 1<<20)
	sb := make([]byte, 512)
	if _, err := io.ReadFull(br, sb); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if m := le.Uint64(sb); m != lwMagic {
		return nil, fmt.Errorf("log-writes: magic %#x", m)
	}
	ss := int(le.Uint32(sb[24:]))
	if ss < 512 || ss > 1<<16 || ss&(ss-1) != 0 {
		return nil, fmt.Errorf("log-writes: sector size %d", ss)
	}
	if _, err := io.CopyN(io.Discard, br, int64(ss-512)); err != nil {
		return nil, err
	}
	return &lwReader{r: br, sectorSize: ss, entries: le.Uint64(sb[16:])}, nil
}

func (l *lwReader) next() (*lwEntry, error) {
	if l.read == l.entries {
		return nil, io.EOF
	}
	l.read++
	hb := make([]byte, l.sectorSize)
	if _, err := io.ReadFull(l.r, hb); err != nil {
		return nil, fmt.Errorf("log-writes entry %d: %w", l.read, err)
	}
	le := binary.LittleEndian
	en := &lwEntry{sector: le.Uint64(hb), nrSectors: le.Uint64(hb[8:]), flags: le.Uint64(hb[16:]), dataLen: le.Uint64(hb[24:])}
	switch {
	case en.flags&lwMark != 0:
		if en.dataLen > uint64(l.sectorSize-32) {
			return nil, fmt.Errorf("log-writes entry %d: mark of %d bytes", l.read, en.dataLen)
		}
		en.data = hb[32 : 32+en.dataLen]
	case en.flags&lwDiscard == 0 && en.nrSectors > 0:
		if en.nrSectors > 1<<20 {
			return nil, fmt.Errorf("log-writes entry %d: %d sectors", l.read, en.nrSectors)
		}
		en.data = make([]byte, en.nrSectors*uint64(l.sectorSize))
		if _, err := io.ReadFull(l.r, en.data); err != nil {
			return nil, fmt.Errorf("log-writes entry %d data: %w", l.read, err)
		}
	}
	return en, nil
}

// replayLog applies the log to a Mem device and checks recovery at every
// flush.
func replayLog(t *testing.T, logPath string, size int64, opts Options, before map[int64][]byte) {
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr, err := newLWReader(f)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := zone.NewMem(zone.MemOptions{ZoneSize: lwZone, NumZones: int(size / lwZone)})
	if err != nil {
		t.Fatal(err)
	}
	for off, b := range before {
		applyWrite(t, mem, off, b)
	}
	if err := mem.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 7))
	acked, deleted := map[int]bool{}, map[int]bool{}
	flushes, writes := 0, 0
	check := func(d *zone.Mem, what string) {
		e, err := Open(context.Background(), d, opts)
		if err != nil {
			t.Fatalf("%s: open: %v", what, err)
		}
		defer e.Close()
		ctx := context.Background()
		for i := range acked {
			if deleted[i] || i%3 == 0 {
				continue // a delete may be in flight
			}
			got, err := e.Get(ctx, lwIDs[i])
			if err != nil || string(got) != string(lwBlocks[i]) {
				t.Fatalf("%s: block %d, acknowledged before it: %v", what, i, err)
			}
		}
		for i := range deleted {
			if ok, err := e.Has(ctx, lwIDs[i]); ok || err != nil {
				t.Fatalf("%s: block %d, deleted before it, is back (%v)", what, i, err)
			}
		}
	}
	for {
		en, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if en.flags&lwMark != 0 {
			if string(en.data) == "dm-log-writes-end" { // the target's own last mark
				continue
			}
			op, n, ok := strings.Cut(string(en.data), "-")
			i, aerr := strconv.Atoi(n)
			if !ok || aerr != nil || i < 0 || i >= len(lwBlocks) {
				t.Fatalf("bad mark %q", en.data)
			}
			// A mark is logged after the call returned, so after the
			// flush that made it durable: every state from here on
			// must hold it.
			if op == "put" {
				acked[i] = true
			} else {
				deleted[i] = true
			}
			continue
		}
		if en.flags&lwFlush != 0 {
			// Everything logged so far is durable: crash somewhere in
			// what was not yet flushed, then at the flush itself.
			check(mem.Crash(rng), fmt.Sprintf("crash before flush %d", flushes))
			if err := mem.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			flushes++
			check(mem.CrashAt(zone.CrashPoint{}), fmt.Sprintf("flush %d", flushes))
		}
		if en.data != nil {
			applyWrite(t, mem, int64(en.sector)*int64(lr.sectorSize), en.data)
			writes++
		}
		if en.flags&lwFUA != 0 && en.data != nil {
			if err := mem.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if flushes < 20 || len(acked) < 100 {
		t.Fatalf("replayed %d flushes, %d acknowledged puts: too few to mean anything", flushes, len(acked))
	}
	t.Logf("replayed %d log entries: %d writes, %d flushes checked (and as many random crashes), %d puts and %d deletes acknowledged", lr.entries, writes, flushes, len(acked), len(deleted))
}

// applyWrite writes p at off on m, reading and patching the blocks at the
// edges when the logged write is not block-aligned.
func applyWrite(t *testing.T, m *zone.Mem, off int64, p []byte) {
	bs := m.Info().BlockSize
	start := off &^ (bs - 1)
	end := (off + int64(len(p)) + bs - 1) &^ (bs - 1)
	buf := zone.AlignedBlock(int(end - start))
	if start != off || end != off+int64(len(p)) {
		if _, err := m.ReadAt(buf, start); err != nil {
			t.Fatal(err)
		}
	}
	copy(buf[off-start:], p)
	if _, err := m.WriteAt(buf, start); err != nil {
		t.Fatal(err)
	}
}
