//go:build vmtest

package label

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// TestVMPowerCut writes label records on a conventional NVMe drive in a
// guest without pause, kills QEMU (SIGKILL) once at least 300 have been
// acknowledged, and boots again on the same image: the newest record must
// be one of those written (its payload matches its generation), at least
// the 300th, and the label must take new writes.
func TestVMPowerCut(t *testing.T) {
	drive := qemu.Drive{Kind: qemu.NVMe, ID: "cut", Serial: "LABELCUT", Size: 64 << 20,
		Image: filepath.Join(t.TempDir(), "cut.img")}
	const acked = 300
	payload := func(gen uint64) []byte { return bytes.Repeat([]byte(fmt.Sprintf("g%d.", gen)), 1+int(gen%700)) }
	ctx := context.Background()
	open := func(t *testing.T, g *qemu.Guest) *Area {
		dev, err := g.Device("LABELCUT")
		if err != nil {
			t.Fatal(err)
		}
		d, err := zone.Open(dev.Path, zone.Options{ZoneSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		a, err := Open(ctx, d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}

	qemu.RunTest(t, qemu.Options{
		Boot:   "before",
		Drives: []qemu.Drive{drive},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "acked"); err != nil {
				return err
			}
			vm.Kill()
			return nil
		},
	}, func(t *testing.T, g *qemu.Guest) {
		a := open(t, g)
		for {
			_, err := a.Update(ctx, func(r *Record) error {
				r.State, r.Serial = lifecycle.InService, "LABELCUT"
				r.Payload = payload(r.Generation + 1)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if cur, _ := a.Current(); cur.Generation == acked {
				g.Mark("acked") // the host cuts the power; keep writing until then
			}
		}
	})
	if t.Failed() {
		return
	}

	qemu.RunTest(t, qemu.Options{Boot: "after", Drives: []qemu.Drive{drive}}, func(t *testing.T, g *qemu.Guest) {
		a := open(t, g)
		cur, ok := a.Current()
		if !ok || cur.Generation < acked {
			t.Fatalf("after the power cut: generation %d (ok %v), %d were acknowledged", cur.Generation, ok, acked)
		}
		if !bytes.Equal(cur.Payload, payload(cur.Generation)) || cur.Serial != "LABELCUT" {
			t.Fatalf("generation %d holds another record's payload", cur.Generation)
		}
		w, err := a.Write(ctx, Record{State: lifecycle.Draining, Serial: "LABELCUT"})
		if err != nil || w.Generation <= cur.Generation {
			t.Fatalf("write after the cut: generation %d, %v", w.Generation, err)
		}
		t.Logf("after the power cut: newest generation %d (%d acknowledged before the mark), %d damaged records seen",
			cur.Generation, acked, len(a.Corruptions()))
	})
}
