package label

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/stowage/stowage/hwmgr/lifecycle"

	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// bump increments the 8-byte counter in the label's payload n times
// through its own zone device and Area (as hwmgr and the OSD each do).
func bump(ctx context.Context, dev string, n int) error {
	d, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: 1 << 20})
	if err != nil {
		return err
	}
	defer d.Close()
	a, err := Open(ctx, d, Options{})
	if err != nil {
		return err
	}
	for range n {
		_, err := a.Update(ctx, func(r *Record) error {
			var c uint64
			if len(r.Payload) == 8 {
				c = binary.LittleEndian.Uint64(r.Payload)
			}
			r.State = lifecycle.Ready
			r.Payload = binary.LittleEndian.AppendUint64(nil, c+1)
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// TestCrossProcessHelper is the child of TestCrossProcessUpdates.
func TestCrossProcessHelper(t *testing.T) {
	dev := os.Getenv("STOWAGE_LABEL_BUMP_DEV")
	if dev == "" {
		return // not a child: nothing to do
	}
	if err := bump(context.Background(), dev, 60); err != nil {
		t.Fatal(err)
	}
}

// TestCrossProcessUpdates: two processes (this test and a child) each
// open the same loop device's label area and each make 60
// read-modify-write updates at the same time. Every update must see the
// other's: the counter ends at 120, and a fresh open finds generation
// 120. (Before the area locked the device and re-read it before each
// update, each process appended after its own idea of the newest record,
// overwriting and losing the other's.)
func TestCrossProcessUpdates(t *testing.T) {
	dev := loopdev.Zero(t, 8<<20)
	ctx := context.Background()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrossProcessHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STOWAGE_LABEL_BUMP_DEV="+dev)
	out := make(chan error, 1)
	go func() {
		b, err := cmd.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, b)
		}
		out <- err
	}()
	if err := bump(ctx, dev, 60); err != nil {
		t.Fatal(err)
	}
	if err := <-out; err != nil {
		t.Fatalf("child: %v", err)
	}
	d, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := Open(ctx, d, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := a.Current()
	if !ok || len(r.Payload) != 8 {
		t.Fatalf("label %+v", r)
	}
	if c := binary.LittleEndian.Uint64(r.Payload); c != 120 || r.Generation != 120 {
		t.Fatalf("counter %d at generation %d, want 120 and 120: updates were lost", c, r.Generation)
	}
}
