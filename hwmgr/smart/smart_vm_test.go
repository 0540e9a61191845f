//go:build vmtest

package smart_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/kmsg"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/qemu"
)

// The critical warning injected into the second NVMe controller while the
// guest runs: bit 1 (temperature, warn) and bit 2 (reliability degraded,
// fail).
const injectedWarning = 0x06

// scsi_debug with opts=2 fails reads of sectors 0x1234.. with a medium
// error: a real kernel I/O error for hwmgr/kmsg to find.
const mediumErrorSector = 0x1234

// captureEnv, set to 1, logs every raw smartctl output with a CAPTURE
// prefix, to refresh testdata/captured from the guest.
const captureEnv = "STOWAGE_SMART_CAPTURE"

// TestVMSmart boots one guest with two NVMe controllers, a SATA disk on
// AHCI, a virtio-scsi disk and a scsi_debug disk that fails reads, and runs
// the real smartctl through Runner against each, judging the records with
// the health policy. The host injects an NVMe critical warning through QMP
// (qom-set smart_critical_warning) halfway, and later hot-plugs QEMU's
// MegaRAID SAS controller (megasas) with a disk behind it, read through
// smartctl's MegaRAID pass-through (-d megaraid,0).
func TestVMSmart(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMe, ID: "nvok", Serial: "STW-NVME-OK"},
			{Kind: qemu.NVMe, ID: "nvcw", Serial: "STW-NVME-CW"},
			{Kind: qemu.SATA, ID: "sata", Serial: "STW-SATA-1", Model: "STOWAGE HDD"},
			{Kind: qemu.SCSI, ID: "vscsi", Serial: "STW-SCSI-1", Model: "STOWAGE VDISK"},
		},
		Modules:  []qemu.Module{{Name: "scsi_debug", Params: "dev_size_mb=16 opts=2"}, {Name: "megaraid_sas"}},
		Binaries: []string{"smartctl"},
		Env:      []string{captureEnv + "=" + os.Getenv(captureEnv)},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "inject-warning"); err != nil {
				return err
			}
			if _, err := vm.QMP.Execute(ctx, "qom-set", map[string]any{
				"path": "/machine/peripheral/nvcw", "property": "smart_critical_warning", "value": injectedWarning,
			}); err != nil {
				return err
			}
			if err := vm.WaitMark(ctx, "plug-megasas"); err != nil {
				return err
			}
			return plugMegaRAID(ctx, vm, filepath.Join(t.TempDir(), "mr.img"))
		},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		run := func(name, dev, typ string) *smart.Output {
			t.Helper()
			out, err := smart.Runner{Timeout: time.Minute}.Run(ctx, dev, typ)
			if err != nil {
				t.Fatalf("%s: %v\n%s", dev, err, out.Raw)
			}
			if os.Getenv(captureEnv) == "1" {
				t.Logf("CAPTURE %s %s", name, out.Raw)
			}
			t.Logf("%s (%s): status %s exit %v", name, dev, out.Record.Status, out.ExitStatus)
			return out
		}
		judge := func(r *smart.Record) health.Result {
			return health.Config{}.Evaluate(health.Sample{SMART: r}, nil)
		}

		// A healthy emulated NVMe controller.
		nvok, err := g.Device("STW-NVME-OK")
		if err != nil {
			t.Fatal(err)
		}
		out := run("qemu-nvme", nvok.Controller, "")
		r := out.Record
		if r.Status != smart.StatusOK || r.Device.Protocol != smart.ProtocolNVMe || r.NVMe == nil {
			t.Fatalf("NVMe: status %q protocol %q nvme %v", r.Status, r.Device.Protocol, r.NVMe)
		}
		if r.Identity.Serial != "STW-NVME-OK" || r.Identity.Model != "QEMU NVMe Ctrl" {
			t.Errorf("NVMe identity %+v", r.Identity)
		}
		if r.Passed == nil || !*r.Passed || r.NVMe.CriticalWarning != 0 {
			t.Errorf("NVMe passed %v critical_warning %d", r.Passed, r.NVMe.CriticalWarning)
		}
		if res := judge(r); res.Verdict != health.OK {
			t.Errorf("healthy NVMe judged %s: %+v", res.Verdict, res.Reasons)
		}

		// The second controller, after the host sets smart_critical_warning.
		nvcw, err := g.Device("STW-NVME-CW")
		if err != nil {
			t.Fatal(err)
		}
		if r := run("qemu-nvme-before", nvcw.Controller, "").Record; r.NVMe == nil || r.NVMe.CriticalWarning != 0 {
			t.Fatalf("critical warning before injection: %+v", r.NVMe)
		}
		g.Mark("inject-warning")
		for r = nil; ; {
			r = run("qemu-nvme-critical-warning", nvcw.Controller, "").Record
			if r.NVMe != nil && r.NVMe.CriticalWarning != 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("critical warning never showed: %v", ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		if r.NVMe.CriticalWarning != injectedWarning || !r.NVMe.Warnings.Temperature || !r.NVMe.Warnings.ReliabilityDegraded {
			t.Errorf("critical_warning %#x %+v, want %#x", r.NVMe.CriticalWarning, r.NVMe.Warnings, injectedWarning)
		}
		res := judge(r)
		var rules []string
		for _, x := range res.Reasons {
			rules = append(rules, string(x.Verdict)+" "+x.Rule+" "+x.Attribute)
		}
		t.Logf("critical warning verdict %s: %q", res.Verdict, rules)
		if res.Verdict != health.Fail ||
			!slices.Contains(rules, "fail nvme-critical-warning critical_warning.reliability_degraded") ||
			!slices.Contains(rules, "warn nvme-critical-warning critical_warning.temperature") {
			t.Errorf("critical warning judged %s: %q", res.Verdict, rules)
		}

		// A SATA disk on AHCI: an ATA attribute table.
		sata, err := g.Device("STW-SATA-1")
		if err != nil {
			t.Fatal(err)
		}
		r = run("qemu-sata", sata.Path, "").Record
		if r.Status != smart.StatusOK || r.Device.Protocol != smart.ProtocolATA || r.ATA == nil || len(r.ATA.Attributes) == 0 {
			t.Fatalf("SATA: status %q protocol %q ata %+v", r.Status, r.Device.Protocol, r.ATA)
		}
		if r.Identity.Serial != "STW-SATA-1" || r.Identity.Model != "STOWAGE HDD" {
			t.Errorf("SATA identity %+v", r.Identity)
		}
		if a, ok := r.ATA.Attribute(5); !ok || a.Count() != 0 {
			t.Errorf("SATA attribute 5: %+v %v", a, ok)
		}
		if res := judge(r); res.Verdict != health.OK {
			t.Errorf("healthy SATA judged %s: %+v", res.Verdict, res.Reasons)
		}
		// A short self-test, then its entry in the self-test log.
		if b, err := exec.CommandContext(ctx, "smartctl", "-t", "short", sata.Path).CombinedOutput(); err != nil {
			t.Fatalf("smartctl -t short: %v\n%s", err, b)
		}
		r = run("qemu-sata-selftest", sata.Path, "").Record
		if latest, ok := r.SelfTests.Latest(); !ok || latest.Type != "Short offline" || latest.Failed || latest.InProgress {
			t.Errorf("SATA self-test log after -t short: %+v", r.SelfTests)
		}

		// A virtio-scsi disk has no SMART: unsupported, not a failure.
		vs, err := g.Device("STW-SCSI-1")
		if err != nil {
			t.Fatal(err)
		}
		out = run("qemu-virtio-scsi", vs.Path, "")
		if out.Record.Status != smart.StatusUnsupported {
			t.Errorf("virtio-scsi: status %q, want unsupported (exit %v, messages %+v)", out.Record.Status, out.ExitStatus, out.Record.Messages)
		}
		if res := judge(out.Record); res.Verdict != health.OK || res.SMART != smart.StatusUnsupported {
			t.Errorf("virtio-scsi judged %s (%s): %+v", res.Verdict, res.SMART, res.Reasons)
		}

		// A real kernel I/O error, found in /dev/kmsg and judged.
		sd, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		run("scsi-debug", sd.Path, "")
		klog, err := kmsg.Open("", true)
		if err != nil {
			t.Fatal(err)
		}
		defer klog.Close()
		// A medium error comes back as ENODATA (BLK_STS_MEDIUM), others as EIO.
		if err := readSector(sd.Path, mediumErrorSector); !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EIO) {
			t.Fatalf("read of the medium-error sector: %v, want ENODATA or EIO", err)
		}
		var ioErr kmsg.IOError
		var seen []kmsg.Record
		for {
			rec, err := klog.Next(ctx)
			if err != nil {
				t.Fatalf("no I/O error in the kernel log (%v); saw %+v", err, seen)
			}
			seen = append(seen, rec)
			if e, ok := kmsg.ParseIOError(rec); ok {
				ioErr = e
				break
			}
		}
		t.Logf("kernel: %+v", ioErr)
		if ioErr.Device != sd.Name || ioErr.Sector != mediumErrorSector {
			t.Errorf("I/O error %+v, want dev %s sector %d", ioErr, sd.Name, mediumErrorSector)
		}
		n := kmsg.CountIOErrors(seen)[sd.Name]
		if res := (health.Config{}).Evaluate(health.Sample{KernelIOErrors: n}, nil); res.Verdict != health.Warn {
			t.Errorf("%d kernel I/O errors judged %s", n, res.Verdict)
		}

		// A disk behind a MegaRAID HBA. Linux shows it as a logical drive,
		// on which plain smartctl fails to open (exit 2: error, not a
		// failure); through -d megaraid,0 smartctl reaches the physical
		// disk, which has no SMART (QEMU's scsi-hd).
		g.Mark("plug-megasas")
		ld, err := g.WaitModel("QEMU HARDDISK")
		if err != nil {
			t.Fatal(err)
		}
		out = run("megasas-ld-scsi", ld.Path, "")
		if out.Record.Status != smart.StatusError || !out.ExitStatus.Has(smart.ExitDeviceOpen) {
			t.Errorf("MegaRAID logical drive: status %q exit %v", out.Record.Status, out.ExitStatus)
		}
		out = run("megasas-megaraid0", ld.Path, "megaraid,0")
		r = out.Record
		if r.Device.Type != "megaraid,0" || r.Identity.Serial != "STW-MR-1" || r.Status != smart.StatusUnsupported {
			t.Errorf("MegaRAID pass-through: type %q serial %q status %q", r.Device.Type, r.Identity.Serial, r.Status)
		}
		if res := judge(r); res.Verdict != health.OK {
			t.Errorf("MegaRAID disk judged %s: %+v", res.Verdict, res.Reasons)
		}
	})
}

// plugMegaRAID hot-plugs a megasas controller with one 64 MiB SCSI disk
// (serial STW-MR-1) at SCSI id 0 behind it.
func plugMegaRAID(ctx context.Context, vm *qemu.VM, img string) error {
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return err
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		return err
	}
	for _, c := range []struct {
		cmd  string
		args map[string]any
	}{
		{"blockdev-add", map[string]any{"driver": "raw", "node-name": "mrdisk",
			"file": map[string]any{"driver": "file", "filename": img}}},
		{"device_add", map[string]any{"driver": "megasas", "id": "mr0"}},
		{"device_add", map[string]any{"driver": "scsi-hd", "id": "mrd0", "bus": "mr0.0", "drive": "mrdisk",
			"serial": "STW-MR-1", "scsi-id": 0, "lun": 0}},
	} {
		if _, err := vm.QMP.Execute(ctx, c.cmd, c.args); err != nil {
			return fmt.Errorf("qmp %s: %w", c.cmd, err)
		}
	}
	return nil
}

// readSector reads one 512-byte sector with O_DIRECT.
func readSector(dev string, sector int64) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	_, err = f.ReadAt(buf[:512], sector*512)
	return err
}
