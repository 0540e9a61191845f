package label

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// TestLoopDevice writes a label on a real loop device through osd/zone's
// O_DIRECT emulated device, ping-pongs it twice, tears one record by hand
// with a raw write of its first block, and reads it all back through a
// fresh open of the device.
func TestLoopDevice(t *testing.T) {
	dev := loopdev.Zero(t, 8<<20)
	ctx := context.Background()
	open := func() (*zone.Emulated, *Area) {
		d, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		a, err := Open(ctx, d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return d, a
	}
	d, a := open()
	if _, ok := a.Current(); ok {
		t.Fatal("fresh loop device has a label")
	}
	var last Record
	start := time.Now()
	for i := range 600 {
		last = write(t, a, i%3000)
	}
	t.Logf("600 label writes (O_DIRECT + flush, ping-pong included): %v each", time.Since(start)/600)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	d, a = open()
	t.Logf("open + scan of both regions: %v", time.Since(start))
	got, ok := a.Current()
	sameRecord(t, got, ok, last)

	// Tear: only the first block of a two-block record reaches the disk.
	rec := Record{Generation: last.Generation + 1, State: lifecycle.Failed, Payload: bytes.Repeat([]byte{7}, 6000)}
	b, err := Encode(&rec)
	if err != nil || len(b) != 2*BlockSize {
		t.Fatalf("encode: %d bytes, %v", len(b), err)
	}
	rg := a.regions[a.active]
	buf := zone.AlignedBlock(BlockSize)
	copy(buf, b)
	if _, err := d.WriteAt(buf, rg.start+rg.end); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d, a = open()
	defer d.Close()
	got, ok = a.Current()
	sameRecord(t, got, ok, last)
	if len(a.Corruptions()) == 0 {
		t.Error("torn record not reported")
	}
	next := write(t, a, 10)
	if next.Generation <= rec.Generation {
		t.Errorf("generation %d reused after a torn %d", next.Generation, rec.Generation)
	}

	// The bytes are really on the device: a plain buffered read of the
	// active region's start sees the magic.
	raw, err := os.ReadFile(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !HasMagic(raw[a.regions[a.active].start:]) {
		t.Error("no label magic at the active region's start on the device")
	}
}
