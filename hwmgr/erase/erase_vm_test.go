//go:build vmtest

package erase_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/erase"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/hwmgr/nvme"
	"github.com/stowage/stowage/hwmgr/scsi"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu"
)

const vmZone = 16 << 20 // emulated zones of the conventional drives

// TestVMEraseStrongest boots one guest with QEMU's NVMe controller, a SATA
// disk on AHCI, a virtio-scsi disk and a scsi_debug disk, and erases each
// with the strongest-first chain erase.Methods gives: on every drive a
// label is written first and must read back after; the report lists every
// method tried; an independent scan of the whole device finds no marker
// block left. It asserts what QEMU 7.2 and the kernel implement: NVMe
// Format NVM (user data erase) through the admin ioctl, no sanitize (a
// clean refusal, then the fallback to the format); no ATA security feature
// set on the AHCI disk (detected, fallback); SCSI sanitize/format support
// as the devices report it.
func TestVMEraseStrongest(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMe, ID: "nv", Serial: "STW-ER-NVME", Size: 128 << 20},
			{Kind: qemu.SATA, ID: "sata", Serial: "STW-ER-SATA", Model: "STOWAGE HDD", Size: 128 << 20},
			{Kind: qemu.SCSI, ID: "vscsi", Serial: "STW-ER-SCSI", Model: "STOWAGE VDISK", Size: 128 << 20},
		},
		Modules: []qemu.Module{{Name: "scsi_debug", Params: "dev_size_mb=64"}},
		Timeout: 5 * time.Minute,
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()

		// NVMe: what the controller says it supports.
		nv, err := g.Device("STW-ER-NVME")
		if err != nil {
			t.Fatal(err)
		}
		d, err := nvme.Open(nv.Path)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.IdentifyController(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nsid, err := d.NSID()
		if err != nil {
			t.Fatal(err)
		}
		ns, err := d.IdentifyNamespace(ctx, nsid)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := d.ActiveNamespaces(ctx)
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("NVMe %s: model %q serial %q OACS %#04x SANICAP %#08x FNA %#02x NN %d; nsid %d of %v, %d blocks of %d bytes",
			nv.Path, c.Model, c.Serial, c.OACS, c.SANICAP, c.FNA, c.NN, nsid, ids, ns.Size, ns.BlockSize())
		if c.Serial != "STW-ER-NVME" || !c.FormatSupported() || ns.BlockSize() != 512 || ns.Size != 128<<20/512 {
			t.Fatalf("identify: %+v %+v", c, ns)
		}
		if len(c.SanitizeActions()) == 0 {
			// QEMU 7.2 does not implement Sanitize: Supports says so from
			// SANICAP, and the command itself is refused cleanly.
			dev := openDev(t, nv.Path)
			if err := (erase.NVMeSanitize{Action: nvme.SanitizeBlockErase}).Supports(ctx, dev); !errors.Is(err, erase.ErrUnsupported) {
				t.Errorf("sanitize with SANICAP 0: %v", err)
			}
			dev.Close()
			err := erase.ForceSanitize(ctx, nv.Path, nvme.SanitizeBlockErase)
			t.Logf("sanitize forced on a controller without SANICAP: %v", err)
			if !errors.Is(err, erase.ErrUnsupported) || !nvme.IsUnsupported(err) {
				t.Errorf("forced sanitize: %v, want the controller's invalid-opcode refusal", err)
			}
		}
		rep := eraseDrive(t, ctx, nv.Path, "STW-ER-NVME")
		want := "nvme-format-user-data"
		if c.CryptoFormatSupported() {
			want = "nvme-format-crypto"
		}
		if len(c.SanitizeActions()) > 0 {
			want = "nvme-sanitize"
		}
		if !strings.HasPrefix(rep.Method, want) {
			t.Errorf("NVMe erased by %s, want %s", rep.Method, want)
		}
		if got := chain(rep); got != wantNVMe {
			t.Errorf("NVMe tried %s\nwant %s", got, wantNVMe)
		}

		// SATA on AHCI: IDENTIFY DEVICE through ATA PASS-THROUGH(16).
		sata, err := g.Device("STW-ER-SATA")
		if err != nil {
			t.Fatal(err)
		}
		sd, err := scsi.Open(sata.Path)
		if err != nil {
			t.Fatal(err)
		}
		id, err := sd.ATAIdentifyDevice(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if id.SecuritySupported {
			sd.Close()
		} else {
			// A security command sent anyway (PIO data-out through the
			// pass-through): QEMU aborts it (ATA ABRT), which libata
			// reports as ABORTED COMMAND.
			err := sd.ATASecuritySetPassword(ctx, erase.TempPassword)
			sd.Close()
			var se *scsi.Error
			t.Logf("SECURITY SET PASSWORD on a drive without the feature set: %v", err)
			if !errors.As(err, &se) || se.Sense.Key != scsi.KeyAbortedCommand {
				t.Errorf("SET PASSWORD on QEMU's ide-hd: %v, want ABORTED COMMAND", err)
			}
		}
		secErr := scsi.CheckSecurityErase(id)
		t.Logf("SATA %s: model %q serial %q security supported %v word128 %+v: %v", sata.Path, id.Model, id.Serial, id.SecuritySupported, id.Security, secErr)
		if id.Serial != "STW-ER-SATA" || id.Model != "STOWAGE HDD" {
			t.Errorf("identify: %+v", id)
		}
		rep = eraseDrive(t, ctx, sata.Path, "STW-ER-SATA")
		if errors.Is(secErr, scsi.ErrSecurityUnsupported) {
			a := rep.Attempts[0]
			if a.Method != "ata-security-erase" || a.Outcome != erase.OutcomeUnsupported || !strings.Contains(a.Detail, "not supported") {
				t.Errorf("ATA attempt %+v", a)
			}
		} else if rep.Method != "ata-security-erase" {
			t.Errorf("security erase supported, but erased by %s", rep.Method)
		}
		if got := chain(rep); got != wantSATA {
			t.Errorf("SATA tried %s\nwant %s", got, wantSATA)
		}

		// virtio-scsi and scsi_debug: what REPORT SUPPORTED OPERATION
		// CODES says decides sanitize or format unit.
		vs, err := g.Device("STW-ER-SCSI")
		if err != nil {
			t.Fatal(err)
		}
		rep = checkSCSI(t, ctx, vs.Path, "STW-ER-SCSI")
		if got := chain(rep); got != wantVirtioSCSI || !strings.Contains(rep.Attempts[4].Detail, "survived the erase") {
			t.Errorf("virtio-scsi tried %s (%q)\nwant %s", got, rep.Attempts[4].Detail, wantVirtioSCSI)
		}
		sdbg, err := g.WaitModel("scsi_debug")
		if err != nil {
			t.Fatal(err)
		}
		rep = checkSCSI(t, ctx, sdbg.Path, "STW-ER-SDBG")
		if got := chain(rep); got != wantSCSIDebug {
			t.Errorf("scsi_debug tried %s\nwant %s", got, wantSCSIDebug)
		}
	})
}

// checkSCSI erases a SCSI disk and checks the chain against the device's
// own opcode report.
func checkSCSI(t *testing.T, ctx context.Context, path, serial string) *erase.Report {
	d, err := scsi.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ops, opErr := d.ReportSupportedOpcodes(ctx)
	d.Close()
	t.Logf("%s: %d supported opcodes (sanitize block %v, format unit %v): %v", path, len(ops),
		ops.Has(scsi.OpSanitize, scsi.SanitizeBlockErase), ops.Has(scsi.OpFormatUnit, 0), opErr)
	if opErr != nil && !scsi.IsUnsupported(opErr) {
		t.Fatalf("%s: REPORT SUPPORTED OPERATION CODES: %v", path, opErr)
	}
	rep := eraseDrive(t, ctx, path, serial)
	// A SANITIZE the device lists is used; one it does not list is not.
	for _, a := range rep.Attempts {
		var sa uint16
		switch a.Method {
		case "scsi-sanitize-crypto":
			sa = scsi.SanitizeCrypto
		case "scsi-sanitize-block":
			sa = scsi.SanitizeBlockErase
		case "scsi-sanitize-overwrite":
			sa = scsi.SanitizeOverwrite
		default:
			continue
		}
		if listed := ops.Has(scsi.OpSanitize, sa); listed == (a.Outcome == erase.OutcomeUnsupported) {
			t.Errorf("%s: %s listed %v, outcome %s", path, a.Method, listed, a.Outcome)
		}
	}
	return rep
}

func openDev(t *testing.T, path string) zone.Device {
	t.Helper()
	dev, err := zone.Open(path, zone.Options{ZoneSize: vmZone})
	if err != nil {
		t.Fatal(err)
	}
	return dev
}

// eraseDrive writes a label (drained), erases path with the strongest-first
// chain, and checks the report, the label and the whole device.
func eraseDrive(t *testing.T, ctx context.Context, path, serial string) *erase.Report {
	t.Helper()
	dev := openDev(t, path)
	a, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(ctx, label.Record{State: lifecycle.Drained, Serial: serial}); err != nil {
		t.Fatal(err)
	}
	dev.Close()

	drive := target.Drive{Path: path, Serial: serial}
	dev, _, err = target.Open(ctx, drive, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, vmZone)
	if err != nil {
		t.Fatal(err)
	}
	ms := erase.Methods(dev.Info())
	t0 := time.Now()
	rep, err := erase.Run(ctx, dev, drive, erase.Config{Method: ms[0], Fallback: ms[1:], Seed: 7, VerifyShare: 0.05})
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var tries []string
	for _, a := range rep.Attempts {
		tries = append(tries, a.Method+":"+a.Outcome)
		t.Logf("%s: %s %s: %s", path, a.Method, a.Outcome, a.Detail)
	}
	t.Logf("%s: erased by %s in %v: pass %v, %d markers, %d found, %d bytes verified; tried %s",
		path, rep.Method, time.Since(t0).Round(time.Millisecond), rep.Pass, rep.Markers, rep.MarkersFound, rep.BytesVerified, strings.Join(tries, " "))
	if !rep.Pass || rep.Markers < 50 || rep.MarkersFound != 0 || rep.BytesVerified < 2<<20 || len(rep.Attempts) != len(ms)-countAfter(ms, rep.Method) {
		t.Fatalf("%s: %+v", path, rep)
	}
	// The label survives (written back after a whole-device command).
	a, err = label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok := a.Current(); !ok || rec.Serial != serial || rec.State != lifecycle.Drained {
		t.Fatalf("%s: label after erase: %+v %v", path, rec, ok)
	}
	if _, err := erase.UpdateLabel(ctx, a, rep); err != nil {
		t.Fatal(err)
	}
	dev.Close()
	if n := scanMarkers(t, path); n != 0 {
		t.Fatalf("%s: %d marker blocks left on the device", path, n)
	}
	return rep
}

// chain is the attempts as "method:outcome ...".
func chain(rep *erase.Report) string {
	var s []string
	for _, a := range rep.Attempts {
		s = append(s, a.Method+":"+a.Outcome)
	}
	return strings.Join(s, " ")
}

// What QEMU 7.2 on Debian's 6.1 kernel does with each drive.
const (
	// QEMU's NVMe controller: no sanitize (SANICAP 0), no crypto erase
	// (FNA 0), Format NVM with SES 1.
	wantNVMe = "nvme-sanitize-crypto:unsupported nvme-sanitize-block:unsupported nvme-sanitize-overwrite:unsupported " +
		"nvme-format-crypto:unsupported nvme-format-user-data:pass"
	// ide-hd on AHCI: no security feature set; libata lists no SANITIZE
	// or FORMAT UNIT.
	wantSATA = "ata-security-erase:unsupported scsi-sanitize-crypto:unsupported scsi-sanitize-block:unsupported " +
		"scsi-sanitize-overwrite:unsupported scsi-format-unit:unsupported overwrite-zeros:pass"
	// scsi-hd on virtio-scsi: no REPORT SUPPORTED OPERATION CODES, so
	// FORMAT UNIT is tried: QEMU completes it without erasing anything,
	// the markers survive, and the overwrite follows.
	wantVirtioSCSI = "ata-security-erase:unsupported scsi-sanitize-crypto:unsupported scsi-sanitize-block:unsupported " +
		"scsi-sanitize-overwrite:unsupported scsi-format-unit:failed overwrite-zeros:pass"
	// scsi_debug: lists 52 opcodes, neither SANITIZE nor FORMAT UNIT.
	wantSCSIDebug = wantSATA
)

// countAfter is how many methods of ms follow name (not tried once it passed).
func countAfter(ms []erase.Method, name string) int {
	for i, m := range ms {
		if m.Name() == name {
			return len(ms) - 1 - i
		}
	}
	return len(ms)
}

// scanMarkers reads the whole device (after dropping its cached pages) and
// counts 4 KiB blocks that start with the marker magic.
func scanMarkers(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<20)
	n := 0
	for off := int64(0); ; {
		k, err := f.ReadAt(b, off)
		for i := 0; i+8 <= k; i += erase.BlockSize {
			if bytes.Equal(b[i:i+8], []byte("STOWMARK")) {
				n++
			}
		}
		off += int64(k)
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
