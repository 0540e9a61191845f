//go:build vmtest

package burnin_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin"
	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/erase"
	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

// The critical warning the host injects into the NVMe controller between
// the burn-in's write and verify passes: bit 2, reliability degraded.
const criticalWarning = 0x04

const vmZone = 8 << 20 // emulated zones of the conventional drives

// TestVMBurnIn boots one guest and burns in, each with the library as the
// daemon calls it (target.Open, then burnin.Run):
//   - an NVMe ZNS namespace and a scsi_debug host-managed SMR disk, zone by
//     zone at the write pointer: they pass, every burned zone is empty
//     afterwards, and a zone-reset erase of the ZNS drive finds its
//     markers gone;
//   - a virtio-blk disk under dm-flakey error_writes (refused by the guard
//     rails as a virtual device, so burned in through zone.Open): fails with
//     io-error at the first data offset (2 MiB, past the label area);
//   - a virtio-blk disk under dm-flakey drop_writes: fails with a mismatch
//     (a lost write) at that offset;
//   - an NVMe controller whose smart_critical_warning the host sets over QMP
//     between the write and the verify pass: the SMART after-sample fails
//     the drive (hwmgr/health's nvme-critical-warning rule).
func TestVMBurnIn(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMeZNS, ID: "zns", Serial: "STW-BI-ZNS", Size: 128 << 20, ZoneSize: 8 << 20},
			{Kind: qemu.VirtioBlk, ID: "fe", Serial: "STW-BI-FLKE", Size: 48 << 20},
			{Kind: qemu.VirtioBlk, ID: "fd", Serial: "STW-BI-FLKD", Size: 48 << 20},
			{Kind: qemu.NVMe, ID: "nvcw", Serial: "STW-BI-NVCW", Size: 48 << 20},
		},
		Modules:  []qemu.Module{{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=64 zone_size_mb=8"}, {Name: "dm-flakey"}},
		Binaries: []string{"dmsetup", "smartctl"},
		Timeout:  5 * time.Minute,
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "inject-warning"); err != nil {
				return err
			}
			if _, err := vm.QMP.Execute(ctx, "qom-set", map[string]any{
				"path": "/machine/peripheral/nvcw", "property": "smart_critical_warning", "value": criticalWarning,
			}); err != nil {
				return err
			}
			return vm.Signal(ctx, "injected")
		},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()

		// Zoned drives, zone by zone.
		zns, err := g.Device("STW-BI-ZNS")
		if err != nil {
			t.Fatal(err)
		}
		dev, rep := burn(t, ctx, zns.Path, "STW-BI-ZNS", burnin.Config{Share: 0.5, Seed: 1})
		checkZonedPass(t, ctx, dev, rep)
		ms := erase.Methods(dev.Info())
		erep, err := erase.Run(ctx, dev, target.Drive{Path: zns.Path}, erase.Config{Method: ms[0], Fallback: ms[1:], Seed: 2})
		if err != nil || !erep.Pass || erep.Method != "zone-reset" || erep.Markers < 10 || erep.MarkersFound != 0 {
			t.Fatalf("ZNS zone-reset erase: %+v %v", erep, err)
		}
		t.Logf("ZNS erased by %s: %d markers gone", erep.Method, erep.Markers)
		dev.Close()

		smr, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		dev, rep = burn(t, ctx, smr.Path, "STW-BI-SMR", burnin.Config{Seed: 3})
		checkZonedPass(t, ctx, dev, rep)
		dev.Close()

		// dm-flakey: writes fail, then writes are dropped.
		for _, c := range []struct{ serial, name, feature, rule string }{
			{"STW-BI-FLKE", "flakey-err", "error_writes", burnin.RuleIOError},
			{"STW-BI-FLKD", "flakey-drop", "drop_writes", burnin.RuleMismatch},
		} {
			vd, err := g.Device(c.serial)
			if err != nil {
				t.Fatal(err)
			}
			path := flakey(t, c.name, vd.Path, vd.Size, c.feature)
			// The guard rails refuse a device-mapper device (not a drive);
			// the burn-in engine itself runs on it, as on a drive that
			// fails or drops writes.
			d := target.Drive{Path: path, Serial: c.serial}
			if _, err := target.Check(ctx, d, target.SkipList{}, target.Request{Action: lifecycle.ActBurnIn}); !errors.Is(err, target.ErrVirtual) {
				t.Fatalf("%s: guard rails: %v, want ErrVirtual", path, err)
			}
			dev, err := zone.Open(path, zone.Options{ZoneSize: vmZone})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := burnin.Run(ctx, dev, d, burnin.Config{Seed: 4})
			dev.Close()
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if rep.Pass || len(rep.Reasons) == 0 || rep.Reasons[0].Rule != c.rule {
				t.Fatalf("%s under %s: %+v", path, c.feature, rep)
			}
			t.Logf("%s under dm-flakey %s: %s", path, c.feature, rep.Reasons[0].Message)
			switch c.rule {
			case burnin.RuleIOError:
				if !strings.Contains(rep.Reasons[0].Message, "at offset 2097152:") || rep.BytesRead != 0 {
					t.Errorf("error_writes: %q, read %d", rep.Reasons[0].Message, rep.BytesRead)
				}
			case burnin.RuleMismatch:
				if rep.Mismatches[0].Offset != 2<<20 || rep.Mismatches[0].Kind != burnin.KindMissing || rep.MismatchCount != int(rep.BytesRead/burnin.BlockSize) {
					t.Errorf("drop_writes: first %+v, %d of %d blocks", rep.Mismatches[0], rep.MismatchCount, rep.BytesRead/burnin.BlockSize)
				}
			}
		}

		// NVMe critical warning during the burn-in.
		cw, err := g.Device("STW-BI-NVCW")
		if err != nil {
			t.Fatal(err)
		}
		cfg := burnin.Config{Share: 0.5, Seed: 5, SMART: smart.Runner{Timeout: time.Minute}, SMARTDevice: cw.Controller,
			AfterWrite: func(ctx context.Context, pass int) error {
				g.Mark("inject-warning")
				return g.WaitHost("injected", time.Minute)
			}}
		dev, rep = burn(t, ctx, cw.Path, "STW-BI-NVCW", cfg)
		dev.Close()
		var rules []string
		for _, r := range rep.Reasons {
			rules = append(rules, r.Rule)
		}
		if rep.Pass || !slices.Contains(rules, burnin.RuleSMART) || rep.SMART == nil || rep.SMART.Verdict != health.Fail || rep.MismatchCount != 0 {
			t.Fatalf("critical warning: pass %v rules %q smart %+v", rep.Pass, rules, rep.SMART)
		}
		var cwRule bool
		for _, r := range rep.SMART.Reasons {
			cwRule = cwRule || (r.Rule == "nvme-critical-warning" && r.Verdict == health.Fail)
		}
		if !cwRule {
			t.Errorf("SMART reasons %+v, want nvme-critical-warning fail", rep.SMART.Reasons)
		}
		t.Logf("critical warning: %s", rep.Reasons[0].Message)
	})
}

// burn runs a burn-in of path behind the guard rails and returns the open
// device and the report.
func burn(t *testing.T, ctx context.Context, path, serial string, cfg burnin.Config) (zone.Device, *burnin.Report) {
	t.Helper()
	d := target.Drive{Path: path, Serial: serial, Model: "vm"}
	dev, _, err := target.Open(ctx, d, target.SkipList{}, target.Request{Action: lifecycle.ActBurnIn}, vmZone)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rep, err := burnin.Run(ctx, dev, d, cfg)
	if err != nil {
		dev.Close()
		t.Fatalf("%s: %v", path, err)
	}
	t.Logf("%s (%s): pass %v in %v, %d regions, wrote %d read %d at %.1f/%.1f MB/s",
		path, dev.Info().Kind, rep.Pass, time.Since(t0).Round(time.Millisecond), len(rep.Regions), rep.BytesWritten, rep.BytesRead, rep.WriteBps/1e6, rep.ReadBps/1e6)
	return dev, rep
}

// checkZonedPass: a zoned burn-in passed, burned only data zones, zone by
// zone, and left every burned zone empty.
func checkZonedPass(t *testing.T, ctx context.Context, dev zone.Device, rep *burnin.Report) {
	t.Helper()
	info := dev.Info()
	if info.Kind != zone.KindZoned || !rep.Pass || len(rep.Regions) == 0 {
		t.Fatalf("%s (%s): %+v", info.Path, info.Kind, rep)
	}
	var sum int64
	for _, r := range rep.Regions {
		if r.Zone < 2 || r.Offset != int64(r.Zone)*info.ZoneSize || r.WriteBps <= 0 || r.ReadBps <= 0 {
			t.Errorf("%s: region %+v (zone size %d)", info.Path, r, info.ZoneSize)
		}
		sum += r.Len
	}
	if rep.BytesWritten != sum || rep.BytesRead != sum {
		t.Errorf("%s: wrote %d read %d of %d", info.Path, rep.BytesWritten, rep.BytesRead, sum)
	}
	zs, err := dev.ReportZones(ctx, 0, info.NumZones)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Regions {
		if z := zs[r.Zone]; z.Cond != zone.CondEmpty || z.WP != z.Start {
			t.Errorf("%s: zone %d after burn-in: %s wp %d", info.Path, r.Zone, z.Cond, z.WP)
		}
	}
}

// flakey puts dm-flakey with feature on dev (always in its down interval:
// up 0 s, down 1 s) and returns the dm block device.
func flakey(t *testing.T, name, dev string, size int64, feature string) string {
	t.Helper()
	table := fmt.Sprintf("0 %d flakey %s 0 0 1 1 %s", size/512, dev, feature)
	cmd := exec.Command("dmsetup", "create", "--noudevsync", name, "--table", table)
	cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dmsetup create %s %q: %v\n%s", name, table, err, out)
	}
	ents, err := filepath.Glob("/sys/block/dm-*/dm/name")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if b, err := os.ReadFile(e); err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(e)))
		}
	}
	t.Fatalf("dm device %s not in sysfs", name)
	return ""
}
