package volume

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/engine"
	"github.com/stowage/stowage/osd/zone"
)

func TestPutGetDeleteList(t *testing.T) {
	ctx := context.Background()
	var damage []Damage
	var dmu sync.Mutex
	o := testOpts()
	o.OnDamage = func(d Damage) { dmu.Lock(); damage = append(damage, d); dmu.Unlock() }
	v, err := Create(ctx, asDevices(memDevs(t, 6)), o)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var bs []block
	for _, size := range []int{1, 3, 4, 5, 4095, 4096, 4*4096 + 1, 1 << 20, engine.MaxBlock} {
		b := randBlock(rng, size)
		stored, err := v.Put(ctx, b.key, b.data)
		if err != nil || !stored {
			t.Fatalf("put %d bytes: stored=%v err=%v", size, stored, err)
		}
		bs = append(bs, b)
		bi, err := v.Stat(ctx, b.key)
		if err != nil || bi.Size != size || bi.Fragments != 6 || bi.FragmentSize != (size+3)/4 {
			t.Fatalf("stat %d bytes: %+v %v", size, bi, err)
		}
	}
	if n := readAll(t, v, bs); n != 0 {
		t.Errorf("%d healthy reads needed parity", n)
	}
	// Idempotent: the same block again is not stored again.
	if stored, err := v.Put(ctx, bs[2].key, bs[2].data); err != nil || stored {
		t.Errorf("second put: stored=%v err=%v, want false, nil", stored, err)
	}
	// Bad input: nothing stored, typed errors.
	other := randBlock(rng, 100)
	if _, err := v.Put(ctx, other.key, append(bytes.Clone(other.data), 0)); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("mismatched key: %v", err)
	}
	if has, err := v.Has(ctx, other.key); err != nil || has {
		t.Errorf("after a refused put: has=%v err=%v", has, err)
	}
	if _, err := v.Put(ctx, sha256.Sum256(nil), nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty block: %v", err)
	}
	big := make([]byte, engine.MaxBlock+1)
	if _, err := v.Put(ctx, sha256.Sum256(big), big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize block: %v", err)
	}
	if _, err := v.Get(ctx, other.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a missing block: %v", err)
	}
	// Listing: sorted, paginated.
	var want []Key
	for _, b := range bs {
		want = append(want, b.key)
	}
	slices.SortFunc(want, compareKeys)
	var got []Key
	var after Key
	for {
		page, err := v.List(ctx, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) > 4 {
			t.Fatalf("page of %d keys, limit 4", len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Errorf("listing: %d keys, want %d sorted", len(got), len(want))
	}
	if _, err := v.List(ctx, Key{}, 0); err == nil {
		t.Error("list limit 0 accepted")
	}
	// Delete.
	if err := v.Delete(ctx, bs[0].key); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, bs[0].key); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after delete: %v", err)
	}
	if err := v.Delete(ctx, bs[0].key); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if has, _ := v.Has(ctx, bs[1].key); !has {
		t.Error("has: a stored block is not there")
	}
	if keys, _ := v.List(ctx, Key{}, 100); len(keys) != len(bs)-1 {
		t.Errorf("listing after delete: %d keys, want %d", len(keys), len(bs)-1)
	}
	if len(damage) != 0 {
		t.Errorf("damage reported on a healthy volume: %v", damage)
	}
}

func TestCreateRefuses(t *testing.T) {
	ctx := context.Background()
	devs := asDevices(memDevs(t, 7))
	if _, err := Create(ctx, devs[:5], testOpts()); err == nil {
		t.Error("5 devices for 4+2 accepted")
	}
	o := testOpts()
	o.K, o.M = 13, 2
	if _, err := Create(ctx, devs, o); err == nil {
		t.Error("k = 13 accepted")
	}
	if _, err := Create(ctx, []zone.Device{devs[0], devs[1], nil, devs[3], devs[4], devs[5]}, testOpts()); err == nil {
		t.Error("a nil device accepted")
	}
	if _, err := Open(ctx, []zone.Device{nil}, testOpts()); err == nil {
		t.Error("open of a nil device accepted")
	}
	v, err := Create(ctx, devs[:6], testOpts())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rebuild(ctx, 0, nil, RebuildOptions{}); err == nil {
		t.Error("rebuild onto nil accepted")
	}
	if _, err := v.Rebuild(ctx, 6, devs[6], RebuildOptions{}); err == nil {
		t.Error("rebuild of slot 6 of 4+2 accepted")
	}
	if err := v.MarkLost(ctx, -1); err == nil {
		t.Error("MarkLost(-1) accepted")
	}
	v.Close()
	if _, err := v.Get(ctx, Key{}); !errors.Is(err, ErrClosed) {
		t.Errorf("get after close: %v", err)
	}
	// A member of a volume is not free for another.
	if _, err := Create(ctx, devs[1:7], testOpts()); !errors.Is(err, ErrInUse) {
		t.Errorf("drives of a volume reused: %v", err)
	}
}

// TestConcurrent runs Put, Get and Delete from several goroutines on file
// devices (meant for -race): every block put and not deleted reads back.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	v, err := Create(ctx, openPaths(t, filePaths(t, 6)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	const workers, each = 6, 12
	kept := make([][]block, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers+16)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for i := range each {
				b := randBlock(rng, 1+rng.IntN(200<<10))
				if _, err := v.Put(ctx, b.key, b.data); err != nil {
					errs <- err
					return
				}
				got, err := v.Get(ctx, b.key)
				if err != nil || !bytes.Equal(got, b.data) {
					errs <- fmt.Errorf("get own block: %v", err)
					return
				}
				if i%3 == 0 {
					if err := v.Delete(ctx, b.key); err != nil {
						errs <- err
						return
					}
					continue
				}
				kept[w] = append(kept[w], b)
			}
		})
	}
	// Readers of a shared block at the same time.
	shared := randBlock(rand.New(rand.NewPCG(99, 9)), 300<<10)
	for range 3 {
		wg.Go(func() {
			if _, err := v.Put(ctx, shared.key, shared.data); err != nil {
				errs <- err
				return
			}
			for range 10 {
				got, err := v.Get(ctx, shared.key)
				if err != nil || !bytes.Equal(got, shared.data) {
					errs <- fmt.Errorf("shared block: %v", err)
					return
				}
			}
		})
	}
	// A scrub running alongside must find nothing wrong.
	done := make(chan struct{})
	scrubbed := make(chan ScrubReport, 1)
	go func() {
		var sum ScrubReport
		for {
			select {
			case <-done:
				scrubbed <- sum
				return
			default:
			}
			rep, err := v.Scrub(ctx, ScrubOptions{})
			if err != nil {
				sum.Unrecoverable = -1
				t.Errorf("scrub during the load: %v", err)
				<-done
				scrubbed <- sum
				return
			}
			sum.Keys += rep.Keys
			sum.Damaged += rep.Damaged
			sum.Unrecoverable += rep.Unrecoverable
		}
	}()
	wg.Wait()
	close(done)
	if sum := <-scrubbed; sum.Damaged != 0 || sum.Unrecoverable != 0 {
		t.Errorf("scrubs during the load found damage: %+v", sum)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var all []block
	for _, k := range kept {
		all = append(all, k...)
	}
	readAll(t, v, append(all, shared))
	keys, err := v.List(ctx, Key{}, 1000)
	if err != nil || len(keys) != len(all)+1 {
		t.Errorf("listing: %d keys (%v), want %d", len(keys), err, len(all)+1)
	}
}

// findFragment returns the device offset of slot's fragment of b, found
// by searching the raw device for its bytes.
func findFragment(t *testing.T, v *Volume, dev zone.Device, b block, slot int) int64 {
	t.Helper()
	shards, _, err := v.encode(b.data)
	if err != nil {
		t.Fatal(err)
	}
	needle := shards[slot]
	if len(needle) > 256 {
		needle = needle[:256]
	}
	const chunk = 4 << 20
	buf := zone.AlignedBlock(chunk)
	var prev []byte
	for off := int64(0); off < dev.Info().Size; off += chunk {
		n := min(chunk, dev.Info().Size-off)
		if _, err := dev.ReadAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
		hay := append(bytes.Clone(prev), buf[:n]...)
		if i := bytes.Index(hay, needle); i >= 0 {
			return off - int64(len(prev)) + int64(i)
		}
		prev = bytes.Clone(buf[n-int64(len(needle)) : n])
	}
	t.Fatalf("fragment %d of %x not found on %s", slot, b.key[:8], dev.Info().Path)
	return 0
}

// flipByte corrupts the byte at off in place on dev (read-modify-write of
// its block, then a flush).
func flipByte(t *testing.T, dev zone.Device, off int64) {
	t.Helper()
	bs := dev.Info().BlockSize
	base := off / bs * bs
	buf := zone.AlignedBlock(int(bs))
	if _, err := dev.ReadAt(buf, base); err != nil {
		t.Fatal(err)
	}
	buf[off-base] ^= 0x5a
	if _, err := dev.WriteAt(buf, base); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func testCorruptInPlace(t *testing.T, paths []string) {
	ctx := context.Background()
	devs := openPaths(t, paths)
	var damage []Damage
	var dmu sync.Mutex
	o := testOpts()
	o.OnDamage = func(d Damage) { dmu.Lock(); damage = append(damage, d); dmu.Unlock() }
	v, err := Create(ctx, devs, o)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	bs := putBlocks(t, v, rng, 12, 512<<10)
	victim := bs[5]
	const slot = 2
	off := findFragment(t, v, devs[slot], victim, slot)
	flipByte(t, devs[slot], off+17)

	got, rep, err := v.Read(ctx, victim.key)
	if err != nil || !bytes.Equal(got, victim.data) {
		t.Fatalf("read of the corrupted block: %v", err)
	}
	if !rep.Reconstructed || len(rep.Damage) != 1 || rep.Damage[0].Slot != slot || rep.Damage[0].Kind != Corrupt {
		t.Fatalf("read report %+v, want one corrupt fragment in slot %d", rep, slot)
	}
	var ce *engine.CorruptionError
	if !errors.As(rep.Damage[0].Err, &ce) {
		t.Errorf("damage error %v is not an engine.CorruptionError", rep.Damage[0].Err)
	}
	if len(damage) != 1 {
		t.Errorf("OnDamage called %d times, want 1", len(damage))
	}

	var last Progress
	sr, err := v.Scrub(ctx, ScrubOptions{Progress: func(p Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	if sr.Keys != len(bs) || sr.Corrupt != 1 || sr.Repaired != 1 || sr.Damaged != 1 || sr.Unrecoverable != 0 || sr.RepairFailed != 0 {
		t.Fatalf("scrub report %+v, want %d keys, 1 corrupt fragment repaired", sr, len(bs))
	}
	if last.Done != len(bs) || last.Total != len(bs) || last.Bytes != sr.Bytes {
		t.Errorf("last progress %+v, report %+v", last, sr)
	}
	got, rep, err = v.Read(ctx, victim.key)
	if err != nil || !bytes.Equal(got, victim.data) || rep.Reconstructed || len(rep.Damage) != 0 {
		t.Fatalf("read after scrub: err=%v report %+v, want the repaired fragment read directly", err, rep)
	}
	if n := readAll(t, v, bs); n != 0 {
		t.Errorf("%d reads needed parity after the scrub", n)
	}
	sr, err = v.Scrub(ctx, ScrubOptions{})
	if err != nil || sr.Damaged != 0 {
		t.Errorf("second scrub: %+v %v, want clean", sr, err)
	}
}

func TestCorruptInPlaceLoop(t *testing.T) { testCorruptInPlace(t, loopPaths(t, 6)) }
func TestCorruptInPlaceFile(t *testing.T) { testCorruptInPlace(t, filePaths(t, 6)) }

func TestRepairParityMismatchAndMissing(t *testing.T) {
	ctx := context.Background()
	v, err := Create(ctx, asDevices(memDevs(t, 6)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rng := rand.New(rand.NewPCG(5, 6))
	bs := putBlocks(t, v, rng, 3, 100<<10)
	b := bs[1]
	slots, _ := v.snapshot()
	// A parity fragment with a good CRC but wrong bytes (as a bug would
	// write it), and a data fragment gone.
	if err := slots[5].eng.Delete(ctx, fragID(b.key, 5)); err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, v.fragSize(len(b.data)))
	if err := slots[5].eng.PutMeta(ctx, fragID(b.key, 5), uint32(len(b.data)), wrong); err != nil {
		t.Fatal(err)
	}
	if err := slots[1].eng.Delete(ctx, fragID(b.key, 1)); err != nil {
		t.Fatal(err)
	}
	res, err := v.Repair(ctx, b.key)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[int]DamageKind{}
	for _, d := range res.Damage {
		kinds[d.Slot] = d.Kind
	}
	if len(kinds) != 2 || kinds[1] != Missing || kinds[5] != Mismatch || len(res.Repaired) != 2 {
		t.Fatalf("repair %+v, want slot 1 missing and slot 5 mismatched, both repaired", res)
	}
	res, err = v.Repair(ctx, b.key)
	if err != nil || len(res.Damage) != 0 {
		t.Errorf("second repair: %+v %v, want nothing to do", res, err)
	}
	if n := readAll(t, v, bs); n != 0 {
		t.Errorf("%d reads needed parity after repair", n)
	}
}

type fakeClock struct {
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time { return c.now }
func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.slept += d
	c.now = c.now.Add(d)
	return nil
}

func TestScrubRateLimit(t *testing.T) {
	ctx := context.Background()
	v, err := Create(ctx, asDevices(memDevs(t, 6)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	putBlocks(t, v, rand.New(rand.NewPCG(7, 8)), 10, 256<<10)
	c := &fakeClock{now: time.Unix(1000, 0)}
	const rate = 1 << 20
	rep, err := v.Scrub(ctx, ScrubOptions{BytesPerSecond: rate, Now: c.Now, Sleep: c.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(float64(rep.Bytes) / rate * float64(time.Second))
	if d := c.slept - want; d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("slept %v for %d bytes at %d B/s, want %v", c.slept, rep.Bytes, rate, want)
	}
	if rep.Keys != 10 || rep.Bytes == 0 {
		t.Errorf("report %+v", rep)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := v.Scrub(cctx, ScrubOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("scrub with a cancelled context: %v", err)
	}
}

// TestOrphans: a key with more than m fragments missing (deleted while a
// drive was away, or a Put that failed part way) is not found, not
// listed, and Scrub deletes its leftovers.
func TestOrphans(t *testing.T) {
	ctx := context.Background()
	v, err := Create(ctx, asDevices(memDevs(t, 6)), testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	bs := putBlocks(t, v, rand.New(rand.NewPCG(41, 42)), 4, 50<<10)
	b := bs[2]
	slots, _ := v.snapshot()
	for _, i := range []int{0, 3, 5} {
		if err := slots[i].eng.Delete(ctx, fragID(b.key, i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Get(ctx, b.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a key with 3 of 6 fragments: %v, want ErrNotFound", err)
	}
	if keys, _ := v.List(ctx, Key{}, 10); len(keys) != 3 || slices.Contains(keys, b.key) {
		t.Errorf("listing %d keys, want the 3 whole blocks", len(keys))
	}
	rep, err := v.Scrub(ctx, ScrubOptions{})
	if err != nil || rep.Keys != 3 || rep.Gone != 1 || rep.Orphans != 3 || rep.Damaged != 0 {
		t.Fatalf("scrub %+v %v, want 3 keys clean, 1 gone with 3 orphan fragments deleted", rep, err)
	}
	if _, err := v.Stat(ctx, b.key); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after the scrub: %v", err)
	}
	readAll(t, v, []block{bs[0], bs[1], bs[3]})
}

// TestLabels: Create writes the layout into every drive's label (owner
// "osd", in-service), keeping what hwmgr wrote there (serial, history);
// drives in a state the OSD may not take are refused.
func TestLabels(t *testing.T) {
	ctx := context.Background()
	ms := memDevs(t, 7)
	devs := asDevices(ms)
	a, err := label.Open(ctx, devs[2], label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(ctx, label.Record{State: lifecycle.Ready, Serial: "SER2", WWN: "wwn-2"}); err != nil {
		t.Fatal(err)
	}
	v, err := Create(ctx, devs[:6], testOpts())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st := v.Status()
	if st.Slots[2].Serial != "SER2" || st.Slots[2].WWN != "wwn-2" {
		t.Errorf("status slot 2: %+v, want the label's serial and WWN", st.Slots[2])
	}
	for i, d := range devs[:6] {
		f, err := ReadLayout(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := f.Area.Current()
		l := f.Layout
		if rec.Owner != Owner || rec.State != lifecycle.InService || l.Slot != i || l.Volume != st.ID ||
			l.K != 4 || l.M != 2 || l.FirstZone != 2 || l.ZoneSize != testZoneSize || l.ZonesPerExtent != 4 ||
			l.Members[i].Drive != st.Slots[i].Drive {
			t.Errorf("drive %d: label %s/%s layout %+v", i, rec.Owner, rec.State, l)
		}
	}
	if _, err := ReadLayout(ctx, devs[6]); err == nil {
		t.Error("a blank drive has a layout")
	}
	fa, err := label.Open(ctx, devs[6], label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fa.Write(ctx, label.Record{State: lifecycle.Failed}); err != nil {
		t.Fatal(err)
	}
	if err := v.MarkLost(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Rebuild(ctx, 0, devs[6], RebuildOptions{}); !errors.Is(err, ErrInUse) {
		t.Errorf("rebuild onto a failed drive: %v", err)
	}
}
