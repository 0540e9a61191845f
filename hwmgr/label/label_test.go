package label

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/lifecycle"
)

var t0 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sampleRecord(gen uint64, payload int) Record {
	r := Record{
		Generation: gen, Time: t0.Add(time.Duration(gen) * time.Second), State: lifecycle.Ready,
		WWN: "0x5000c500a1b2c3d4", Serial: "ZA1234XY", Model: "ST16000NM001G", Owner: "osd",
		Payload: bytes.Repeat([]byte{byte(gen)}, payload),
		Task:    Task{Kind: "burnin", Step: "write-pass-1", Done: 1 << 30, Total: 16 << 40, Started: t0, Updated: t0.Add(time.Minute)},
	}
	r.AddEntry(Entry{Time: t0, Kind: KindTransition, Action: "burnin", From: lifecycle.New, To: lifecycle.BurnIn, Actor: "api:admin"})
	r.AddEntry(Entry{Time: t0.Add(time.Hour), Kind: KindBurnIn, Result: ResultPass, Detail: "4 passes, 212 MB/s"})
	return r
}

func TestEncodeDecode(t *testing.T) {
	for _, payload := range []int{0, 1, 3000, 5000, MaxPayload} {
		r := sampleRecord(7, payload)
		b, err := Encode(&r)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%BlockSize != 0 || len(b) > MaxRecordSize {
			t.Fatalf("payload %d: record of %d bytes", payload, len(b))
		}
		got, n, err := DecodeRecord(append(b, make([]byte, 100)...))
		if err != nil || n != len(b) {
			t.Fatalf("payload %d: decode: n=%d err=%v", payload, n, err)
		}
		b2, err := Encode(&got)
		if err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("payload %d: re-encode differs (err %v)", payload, err)
		}
		if got.Serial != r.Serial || got.State != r.State || !bytes.Equal(got.Payload, r.Payload) ||
			len(got.History) != 2 || got.History[1].Detail != "4 passes, 212 MB/s" || !got.Time.Equal(r.Time) ||
			got.Task.Step != "write-pass-1" || got.Task.Total != 16<<40 || !got.Task.Updated.Equal(t0.Add(time.Minute)) {
			t.Fatalf("payload %d: decoded %+v", payload, got)
		}
	}
}

// TestLargestRecordFits fills every field to its limit: the record must
// still fit in MaxRecordSize, so no valid Record is ever unwritable.
func TestLargestRecordFits(t *testing.T) {
	s := func(n int) string { return strings.Repeat("x", n) }
	r := Record{Generation: 1, State: lifecycle.InService, WWN: s(MaxIDLen), Serial: s(MaxIDLen), Model: s(MaxIDLen),
		Owner: s(MaxOwnerLen), Payload: make([]byte, MaxPayload),
		Task: Task{Kind: s(MaxTaskKind), Step: s(MaxTaskStep), Done: 1, Total: 2, Started: t0, Updated: t0}}
	for range MaxHistory + 10 {
		r.AddEntry(Entry{Time: t0, Kind: s(100), Action: s(100), From: lifecycle.InService, To: lifecycle.InService,
			Result: s(100), Actor: s(100), Detail: s(1000)})
	}
	b, err := Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("largest record: %d bytes", len(b))
}

func TestEncodeRefuses(t *testing.T) {
	ok := sampleRecord(1, 10)
	for name, mut := range map[string]func(*Record){
		"generation 0":  func(r *Record) { r.Generation = 0 },
		"unknown state": func(r *Record) { r.State = "online" },
		"long serial":   func(r *Record) { r.Serial = strings.Repeat("s", MaxIDLen+1) },
		"big payload":   func(r *Record) { r.Payload = make([]byte, MaxPayload+1) },
		"long history":  func(r *Record) { r.History = make([]Entry, MaxHistory+1) },
		"history state": func(r *Record) { r.History[0].To = "bogus" },
		"long detail":   func(r *Record) { r.History[0].Detail = strings.Repeat("d", MaxDetailLen+1) },
		"task no kind":  func(r *Record) { r.Task.Kind = "" },
		"long step":     func(r *Record) { r.Task.Step = strings.Repeat("s", MaxTaskStep+1) },
	} {
		r := cloneRecord(ok)
		mut(&r)
		if _, err := Encode(&r); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

func TestAddEntryTrims(t *testing.T) {
	var r Record
	for i := range MaxHistory + 10 {
		e := Entry{Time: t0.Add(time.Duration(i) * time.Minute), Kind: KindTransition}
		switch i % 3 {
		case 1:
			e = Entry{Time: e.Time, Kind: KindBurnIn, Result: ResultFail}
		case 2:
			e = Entry{Time: e.Time, Kind: KindErase, Result: ResultPass}
		}
		r.AddEntry(e)
	}
	if len(r.History) != MaxHistory {
		t.Fatalf("%d entries kept", len(r.History))
	}
	s := r.Summary
	want := Summary{Trimmed: 10, Since: t0, Until: t0.Add(9 * time.Minute), Transitions: 4, BurnInFail: 3, ErasePass: 3}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	if !r.History[0].Time.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("oldest kept entry at %v", r.History[0].Time)
	}
	var c Record
	c.AddEntry(Entry{Kind: KindNote, Detail: strings.Repeat("é", MaxDetailLen)})
	if d := c.History[0].Detail; len(d) > MaxDetailLen || !strings.HasPrefix(strings.Repeat("é", MaxDetailLen), d) || len(d)%2 != 0 {
		t.Errorf("detail clamped to %d bytes, not at a rune boundary", len(d))
	}
}

func TestEntryFromEvent(t *testing.T) {
	e := EntryFromEvent(lifecycle.Event{Serial: "S", From: lifecycle.Ready, To: lifecycle.InService, Action: lifecycle.ActClaim,
		Actor: "osd", Reason: "volume v1 slot 3", Time: t0})
	want := Entry{Time: t0, Kind: KindTransition, Action: "claim", From: lifecycle.Ready, To: lifecycle.InService, Actor: "osd", Detail: "volume v1 slot 3"}
	if e != want {
		t.Errorf("got %+v", e)
	}
}

type devKind struct {
	name string
	new  func() *memDev
	open func(*memDev) (*Area, error)
}

var devKinds = []devKind{
	{"conventional", func() *memDev { return newMemDev(2<<20, 1<<20, false) },
		func(d *memDev) (*Area, error) { return OpenConventional(context.Background(), d, Options{}) }},
	{"zoned-1MiB", func() *memDev { return newMemDev(2<<20, 1<<20, true) },
		func(d *memDev) (*Area, error) { return OpenZoned(context.Background(), d, Options{}) }},
	// Zones larger than RegionSize: the log uses the first RegionSize of
	// each and finishes a zone when it leaves it.
	{"zoned-4MiB", func() *memDev { return newMemDev(8<<20, 4<<20, true) },
		func(d *memDev) (*Area, error) { return OpenZoned(context.Background(), d, Options{}) }},
}

func mustOpen(t *testing.T, k devKind, d *memDev) *Area {
	t.Helper()
	a, err := k.open(d)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return a
}

// write appends a record with a payload of the given size and state.
func write(t *testing.T, a *Area, payload int) Record {
	t.Helper()
	r, err := a.Update(context.Background(), func(r *Record) error {
		r.State = lifecycle.Ready
		r.Serial = "SER1"
		r.Payload = bytes.Repeat([]byte{byte(r.Generation + 1)}, payload)
		r.AddEntry(Entry{Kind: KindNote, Detail: fmt.Sprintf("write %d", r.Generation+1)})
		return nil
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	return r
}

func sameRecord(t *testing.T, got Record, ok bool, want Record) {
	t.Helper()
	if !ok {
		t.Fatalf("no label, want generation %d", want.Generation)
	}
	gb, err1 := Encode(&got)
	wb, err2 := Encode(&want)
	if err1 != nil || err2 != nil || !bytes.Equal(gb, wb) {
		t.Fatalf("got generation %d, want generation %d (%v %v)", got.Generation, want.Generation, err1, err2)
	}
}

func TestBlank(t *testing.T) {
	for _, k := range devKinds {
		a := mustOpen(t, k, k.new())
		if _, ok := a.Current(); ok {
			t.Errorf("%s: blank device has a label", k.name)
		}
		if _, err := a.Require(); !errors.Is(err, ErrNoLabel) {
			t.Errorf("%s: Require on blank: %v", k.name, err)
		}
	}
}

// TestPingPong writes many records of varied sizes, reopening the device
// after each one: the record just written is always the one found, and the
// log alternates between the regions.
func TestPingPong(t *testing.T) {
	for _, k := range devKinds {
		t.Run(k.name, func(t *testing.T) {
			d := k.new()
			a := mustOpen(t, k, d)
			switches, last := 0, -1
			for i := range 700 {
				w := write(t, a, (i*977)%20000)
				if a.active != last {
					switches++
					last = a.active
				}
				if i%4 == 0 || a.wouldSwitch(BlockSize) || a.active != last {
					got, ok := mustOpen(t, k, d).Current()
					sameRecord(t, got, ok, w)
				}
				if w.Generation != uint64(i+1) {
					t.Fatalf("write %d got generation %d", i, w.Generation)
				}
			}
			if switches < 8 {
				t.Errorf("only %d region switches in 700 writes", switches)
			}
			if c := a.Corruptions(); len(c) != 0 {
				t.Errorf("corruptions after clean writes: %v", c[0])
			}
		})
	}
}

// TestTornLastRecord tears the next record at every sector boundary, for
// an append in place and for the first record after a ping-pong: the
// previous record must win, and the area must take new writes afterwards.
func TestTornLastRecord(t *testing.T) {
	for _, k := range devKinds {
		t.Run(k.name, func(t *testing.T) {
			for _, fill := range []string{"append", "after-switch"} {
				d := k.new()
				a := mustOpen(t, k, d)
				var prev Record
				for i := 0; i < 3 || (fill == "after-switch" && a.wouldSwitch(3*BlockSize) == false); i++ {
					prev = write(t, a, 9000) // 3 blocks each
				}
				// The torn write: 3 blocks = 24 sectors. Operation index of the
				// record write: 0 for an append, 1 after the reset/zeroing.
				op := 0
				if fill == "after-switch" {
					op = 1
				}
				for s := 0; s < 3*BlockSize/sector; s++ {
					c := d.clone()
					ca := mustOpen(t, k, c)
					c.arm(op, s)
					if _, err := ca.Update(context.Background(), func(r *Record) error {
						r.Payload = bytes.Repeat([]byte{0xee}, 9000)
						return nil
					}); err == nil {
						t.Fatalf("%s: torn write at sector %d succeeded", fill, s)
					}
					c = c.clone() // power back on
					ra := mustOpen(t, k, c)
					got, ok := ra.Current()
					tornOracle(t, k, got, ok, prev, s)
					next := write(t, ra, 5000)
					if next.Generation <= got.Generation {
						t.Fatalf("%s sector %d: next generation %d after %d", fill, s, next.Generation, prev.Generation)
					}
					got, ok = mustOpen(t, k, c).Current()
					sameRecord(t, got, ok, next)
				}
			}
		})
	}
}

// tornOracle checks the record found after a write was torn after s
// sectors: the previous record, or, on a conventional device only, the
// torn record itself if every byte that did not land was zero anyway (its
// padding), in which case it is complete and valid.
func tornOracle(t *testing.T, k devKind, got Record, ok bool, prev Record, s int) {
	t.Helper()
	if ok && got.Generation == prev.Generation {
		sameRecord(t, got, ok, prev)
		return
	}
	if !ok || got.Generation < prev.Generation {
		t.Fatalf("torn at sector %d: found generation %d (ok %v), previous was %d", s, got.Generation, ok, prev.Generation)
	}
	b, err := Encode(&got)
	if err != nil {
		t.Fatal(err)
	}
	if k.name != "conventional" || !bytes.Equal(b[min(s*sector, len(b)):], make([]byte, len(b)-min(s*sector, len(b)))) {
		t.Fatalf("%s, torn at sector %d: a partial record won (generation %d over %d)", k.name, s, got.Generation, prev.Generation)
	}
}

// wouldSwitch reports whether a record of n bytes would go to the other
// region.
func (a *Area) wouldSwitch(n int64) bool {
	_, ok := a.appendOffset(a.active, n)
	return !ok
}

// TestCrashBetweenResetAndWrite cuts the power right after the other
// region was reset (zone reset, or zeroing of a fixed region), and in the
// middle of zeroing it, before the record lands there.
func TestCrashBetweenResetAndWrite(t *testing.T) {
	for _, k := range devKinds {
		t.Run(k.name, func(t *testing.T) {
			d := k.new()
			a := mustOpen(t, k, d)
			var prev Record
			for !a.wouldSwitch(BlockSize) {
				prev = write(t, a, 100)
			}
			// The region we will switch to must hold something older, so
			// that a reset really destroys records: run once round.
			for a.active == 0 || !a.wouldSwitch(BlockSize) {
				prev = write(t, a, 100)
			}
			cases := []struct {
				name   string
				op, at int
			}{
				{"after reset, record not started", 1, 0},
				{"after reset, record half written", 1, 4},
				{"reset torn", 0, 100}, // a fixed region's zeroing stops after 100 sectors
			}
			for _, c := range cases {
				cd := d.clone()
				ca := mustOpen(t, k, cd)
				cd.arm(c.op, c.at)
				if _, err := ca.Write(context.Background(), Record{State: lifecycle.Drained}); err == nil {
					t.Fatalf("%s: write across the cut succeeded", c.name)
				}
				cd = cd.clone()
				got, ok := mustOpen(t, k, cd).Current()
				tornOracle(t, k, got, ok, prev, c.at)
				// The next write completes the switch.
				w := write(t, mustOpen(t, k, cd), 100)
				got, ok = mustOpen(t, k, cd).Current()
				sameRecord(t, got, ok, w)
			}
		})
	}
}

// TestCorruption overwrites bytes of chosen records on a conventional
// device (prometheus wlog style) and states which generation must win.
func TestCorruption(t *testing.T) {
	type recs []int64 // device offsets of the records, by generation-1
	cases := []struct {
		name    string
		writes  int
		corrupt func(d *memDev, at recs)
		want    uint64
	}{
		{"intact", 5, func(*memDev, recs) {}, 5},
		{"newest body byte flipped", 5, func(d *memDev, at recs) { d.data[at[4]+200] ^= 1 }, 4},
		{"newest magic zeroed", 5, func(d *memDev, at recs) { clear(d.data[at[4] : at[4]+8]) }, 4},
		{"newest crc field flipped", 5, func(d *memDev, at recs) { d.data[at[4]+offCRC] ^= 0x80 }, 4},
		{"newest padding byte set", 5, func(d *memDev, at recs) { d.data[at[4]+BlockSize-1] = 1 }, 4},
		{"newest generation raised", 5, func(d *memDev, at recs) {
			binary.LittleEndian.PutUint64(d.data[at[4]+offGen:], 1000)
		}, 4},
		{"middle record damaged, later ones survive", 5, func(d *memDev, at recs) { d.data[at[2]+100] ^= 0xff }, 5},
		{"middle record length huge, resync finds later", 5, func(d *memDev, at recs) {
			binary.LittleEndian.PutUint32(d.data[at[1]+offRecLen:], 60<<10)
		}, 5},
		{"three newest damaged", 5, func(d *memDev, at recs) {
			for _, g := range []int{2, 3, 4} {
				d.data[at[g]+300] ^= 0x55
			}
		}, 2},
		{"all damaged", 3, func(d *memDev, at recs) {
			for _, o := range at {
				d.data[o+70] ^= 1
			}
		}, 0},
		{"garbage after newest", 5, func(d *memDev, at recs) {
			copy(d.data[at[4]+BlockSize:], bytes.Repeat([]byte("STOWLABL junk "), 500))
		}, 5},
		{"newest region wiped, older region wins", 300, func(d *memDev, at recs) {
			// 300 one-block records: 1..256 filled region 0, 257..300 sit in
			// region 1. Zero region 1: generation 256 in region 0 wins.
			clear(d.data[RegionSize : 2*RegionSize])
		}, 256},
		{"newest region damaged record by record", 300, func(d *memDev, at recs) {
			for g := 256; g < 300; g++ {
				d.data[at[g]+offGen] ^= 1
			}
		}, 256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newMemDev(4<<20, 1<<20, false)
			a, err := OpenConventional(context.Background(), d, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var at recs
			for range c.writes {
				write(t, a, 10)
				rg := a.regions[a.active]
				at = append(at, rg.start+rg.end-BlockSize)
			}
			c.corrupt(d, at)
			b, err := OpenConventional(context.Background(), d, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := b.Current()
			if c.want == 0 {
				if ok {
					t.Fatalf("found generation %d, want none", got.Generation)
				}
				return
			}
			if !ok || got.Generation != c.want {
				t.Fatalf("found generation %d (ok %v), want %d; corruptions %v", got.Generation, ok, c.want, b.Corruptions())
			}
			// The area keeps working: the next write is newest.
			w := write(t, b, 10)
			c2, _ := OpenConventional(context.Background(), d, Options{})
			got, ok = c2.Current()
			sameRecord(t, got, ok, w)
		})
	}
}

func TestUpdateErrorWritesNothing(t *testing.T) {
	d := newMemDev(4<<20, 1<<20, false)
	a, _ := OpenConventional(context.Background(), d, Options{})
	write(t, a, 10)
	before := d.nWrites
	boom := errors.New("boom")
	if _, err := a.Update(context.Background(), func(*Record) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := a.Update(context.Background(), func(r *Record) error { r.Serial = strings.Repeat("x", 100); return nil }); err == nil {
		t.Fatal("oversize serial written")
	}
	if d.nWrites != before {
		t.Errorf("%d writes for refused updates", d.nWrites-before)
	}
	// Update stamps the new record with the clock, not the old record's time.
	clock := t0
	b, _ := OpenConventional(context.Background(), d, Options{Now: func() time.Time { clock = clock.Add(time.Hour); return clock }})
	r1, _ := b.Update(context.Background(), func(*Record) error { return nil })
	r2, _ := b.Update(context.Background(), func(*Record) error { return nil })
	if !r1.Time.Equal(t0.Add(time.Hour)) || !r2.Time.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("update times %v, %v", r1.Time, r2.Time)
	}
}

func TestZonedSmallZoneRefused(t *testing.T) {
	d := newMemDev(256<<10, 32<<10, true)
	if _, err := OpenZoned(context.Background(), d, Options{}); err == nil {
		t.Fatal("32 KiB zones accepted")
	}
}

// TestZonedUnalignedWP: a crash on a 512e zoned drive can leave a write
// pointer between blocks. The zone then counts as full and the next write
// goes to the other zone.
func TestZonedUnalignedWP(t *testing.T) {
	k := devKinds[1]
	d := k.new()
	a := mustOpen(t, k, d)
	prev := write(t, a, 100)
	d.arm(0, 3)
	if _, err := a.Write(context.Background(), Record{State: lifecycle.Ready}); err == nil {
		t.Fatal("torn write succeeded")
	}
	d = d.clone()
	if d.wp[0]%BlockSize == 0 {
		t.Fatalf("write pointer %d is aligned; the test needs a torn sector", d.wp[0])
	}
	b := mustOpen(t, k, d)
	got, ok := b.Current()
	sameRecord(t, got, ok, prev)
	w := write(t, b, 100)
	if b.active != 1 {
		t.Errorf("write after unaligned wp went to region %d", b.active)
	}
	got, ok = mustOpen(t, k, d).Current()
	sameRecord(t, got, ok, w)
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	d := newMemDev(2<<20, 1<<20, false)
	clock := t0
	a, err := OpenConventional(ctx, d, Options{Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	drive := lifecycle.Drive{Serial: "S9", WWN: "0x5000", Model: "M", State: lifecycle.New}
	for _, act := range []lifecycle.Action{lifecycle.ActBurnIn, lifecycle.ActBurnInPass, lifecycle.ActClaim} {
		ev, err := lifecycle.Transition(drive, lifecycle.Request{Action: act, Actor: "test"}, clock)
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Apply(ctx, ev)
		if err != nil {
			t.Fatalf("%s: %v", act, err)
		}
		drive.State = r.State
	}
	b, _ := OpenConventional(ctx, d, Options{})
	r, _ := b.Current()
	if r.State != lifecycle.InService || r.Serial != "S9" || r.WWN != "0x5000" || len(r.History) != 3 ||
		r.History[2].Action != "claim" || r.History[0].From != lifecycle.New || !r.Time.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("record after three transitions: %+v", r)
	}
	// A stale event (the drive moved on) is refused and writes nothing.
	stale := lifecycle.Event{Serial: "S9", From: lifecycle.Ready, To: lifecycle.InService, Action: lifecycle.ActClaim}
	if _, err := a.Apply(ctx, stale); !errors.Is(err, ErrStateChanged) {
		t.Fatalf("stale event: %v", err)
	}
	if g, _ := a.Current(); g.Generation != 3 {
		t.Errorf("generation %d after a refused event", g.Generation)
	}
	// Adopting a foreign (blank-labelled) drive.
	f, _ := OpenConventional(ctx, newMemDev(2<<20, 1<<20, false), Options{})
	if r, err := f.Apply(ctx, lifecycle.Event{Serial: "F1", From: lifecycle.Foreign, To: lifecycle.New, Action: lifecycle.ActAdopt}); err != nil || r.State != lifecycle.New {
		t.Fatalf("adopt: %v %+v", err, r)
	}
}

func TestErrorsSayWhere(t *testing.T) {
	d := newMemDev(2<<20, 1<<20, false)
	a, err := OpenConventional(context.Background(), d, Options{Name: "/dev/sdz"})
	if err != nil {
		t.Fatal(err)
	}
	d.arm(0, 0)
	_, err = a.Write(context.Background(), Record{State: lifecycle.New})
	if !errors.Is(err, errCut) || !strings.Contains(err.Error(), "/dev/sdz") || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("write error %q does not say where", err)
	}
}
