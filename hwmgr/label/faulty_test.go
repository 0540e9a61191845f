package label

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// TestFaulty injects device errors with osd/zone's Faulty wrapper: an
// unreadable region is reported and the other one still serves, both
// unreadable is an error naming the device, a failed write or flush is an
// error and the next write after the fault clears lands, a write that
// dies mid-way (Partial) never wins over the previous record.
func TestFaulty(t *testing.T) {
	ctx := context.Background()
	mem, err := zone.NewMem(zone.MemOptions{Path: "mem0", Kind: zone.KindFile, ZoneSize: 1 << 20, NumZones: 4})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, mem, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for range 300 { // region 0 full (256), 44 in region 1
		write(t, a, 10)
	}
	if a.active != 1 {
		t.Fatalf("active region %d", a.active)
	}
	open := func(rules ...zone.Rule) (*Area, error) {
		f, err := zone.NewFaulty(mem, 1, rules...)
		if err != nil {
			t.Fatal(err)
		}
		return Open(ctx, f, Options{})
	}

	// Region 1 unreadable: region 0's newest (256) serves, the error is noted.
	b, err := open(zone.Rule{Ops: zone.OpRead, From: RegionSize, To: 2 * RegionSize})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Current(); got.Generation != 256 {
		t.Errorf("region 1 unreadable: generation %d, want 256", got.Generation)
	}
	if c := b.Corruptions(); len(c) != 1 || c[0].Offset != RegionSize || !errors.Is(c[0].Err, zone.ErrInjected) {
		t.Errorf("corruptions %v", c)
	}
	// Both unreadable: an error that says which device.
	if _, err := open(zone.Rule{Ops: zone.OpRead, To: 2 * RegionSize}); err == nil || !errors.Is(err, zone.ErrInjected) {
		t.Errorf("both regions unreadable: %v", err)
	}
	// Bit flips in every block read from region 1: its records fail their
	// CRC and region 0's newest serves.
	b, err = open(zone.Rule{Ops: zone.OpRead, From: RegionSize, To: 2 * RegionSize, Corrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Current(); got.Generation != 256 || len(b.Corruptions()) != 44 {
		t.Errorf("region 1 corrupt: generation %d, %d corruptions", got.Generation, len(b.Corruptions()))
	}

	// Failed write, failed flush: errors; after the fault clears the
	// next write lands and is newest.
	f, _ := zone.NewFaulty(mem, 2, zone.Rule{Ops: zone.OpWrite, Count: 1}, zone.Rule{Ops: zone.OpFlush, After: 1, Count: 1})
	c, err := Open(ctx, f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, Record{State: lifecycle.Failed}); !errors.Is(err, zone.ErrInjected) {
		t.Fatalf("write fault: %v", err)
	}
	if _, err := c.Write(ctx, Record{State: lifecycle.Failed}); err != nil {
		t.Fatalf("second write (its flush passes): %v", err)
	}
	if _, err := c.Write(ctx, Record{State: lifecycle.Failed}); !errors.Is(err, zone.ErrInjected) {
		t.Fatalf("flush fault: %v", err)
	}
	w, err := c.Write(ctx, Record{State: lifecycle.Retired})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := Open(ctx, mem, Options{})
	got, ok := d.Current()
	sameRecord(t, got, ok, w)
	last := w

	// A write that dies after some of its blocks (a 3-block record).
	for seed := range uint64(8) {
		f, _ := zone.NewFaulty(mem, seed, zone.Rule{Ops: zone.OpWrite, Count: 1, Partial: true})
		e, err := Open(ctx, f, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Write(ctx, Record{State: lifecycle.Failed, Payload: bytes.Repeat([]byte{0xab}, 9000)}); err == nil {
			t.Fatal("partial write succeeded")
		}
		g, _ := Open(ctx, mem, Options{})
		got, ok := g.Current()
		sameRecord(t, got, ok, last)
	}
}
