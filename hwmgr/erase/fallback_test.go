package erase

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// The device commands (NVMe, ATA, SCSI) cannot exist on the build host;
// their ioctls are exercised in the QEMU lab (erase_vm_test.go). These
// stand-ins model the answers a drive can give, to test Run's fallback
// and label handling on a real loop device.

// wholeZeroer erases the whole device, label area included, as a device
// command does.
type wholeZeroer struct{ skipData bool }

func (wholeZeroer) Name() string                                { return "whole-device-zero" }
func (wholeZeroer) Supports(context.Context, zone.Device) error { return nil }
func (wholeZeroer) Expect() Expect                              { return Expect{} }
func (wholeZeroer) erasesWholeDevice()                          {}
func (w wholeZeroer) Erase(ctx context.Context, dev zone.Device, spans []Span, progress func(int64)) error {
	b := zone.AlignedBlock(1 << 20)
	end := int64(2 * label.RegionSize) // the label area: a device command wipes it too
	if !w.skipData {
		end = dev.Info().Size
	}
	for off := int64(0); off < end; off += int64(len(b)) {
		if _, err := dev.WriteAt(b[:min(int64(len(b)), end-off)], off); err != nil {
			return err
		}
	}
	progress(area(spans))
	return nil
}

// refuser is a device that answers the erase command "invalid opcode".
type refuser struct{}

func (refuser) Name() string                                { return "refused-command" }
func (refuser) Supports(context.Context, zone.Device) error { return nil }
func (refuser) Expect() Expect                              { return Expect{} }
func (refuser) Erase(context.Context, zone.Device, []Span, func(int64)) error {
	return deviceError(errors.New("invalid command operation code"), "refused-command") // not wrapped: a device I/O error
}

type unadvertised struct{}

func (unadvertised) Name() string { return "unadvertised" }
func (unadvertised) Supports(_ context.Context, dev zone.Device) error {
	return unsupported(dev, "capability bit clear")
}
func (unadvertised) Expect() Expect                                                { return Expect{} }
func (unadvertised) Erase(context.Context, zone.Device, []Span, func(int64)) error { return nil }

func openLoop(t *testing.T, size int64) (string, zone.Device) {
	t.Helper()
	path := loopdev.New(t, size)
	writeLabel(t, path, label.Record{State: lifecycle.Drained, Serial: "F1"})
	dev, _, err := target.Open(context.Background(), target.Drive{Path: path}, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, testZone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return path, dev
}

func readHead(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 2*label.RegionSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWholeDeviceMethodKeepsLabel: a method that wipes the label area too
// gets the label written back; the markers are gone.
func TestWholeDeviceMethodKeepsLabel(t *testing.T) {
	path, dev := openLoop(t, 48<<20)
	head := readHead(t, path)
	rep, err := Run(context.Background(), dev, target.Drive{Path: path}, Config{Method: wholeZeroer{}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || rep.Markers < 50 || rep.BytesVerified < 2<<20 || len(rep.Attempts) != 1 || rep.Attempts[0].Outcome != OutcomePass {
		t.Fatalf("%+v", rep)
	}
	if !bytes.Equal(readHead(t, path), head) {
		t.Fatal("label area not restored")
	}
	if _, err := label.Open(context.Background(), dev, label.Options{}); err != nil {
		t.Fatal(err)
	}
}

// TestFallbackChain: an unadvertised method, a refused command and a
// command that claims success but leaves the data (markers survive) each
// give way, in order, to the overwrite, which passes; every try is in the
// report.
func TestFallbackChain(t *testing.T) {
	path, dev := openLoop(t, 48<<20)
	head := readHead(t, path)
	cfg := Config{Method: unadvertised{}, Fallback: []Method{deviceRefuser{}, wholeZeroer{skipData: true}, Overwrite{}}, Seed: 9}
	rep, err := Run(context.Background(), dev, target.Drive{Path: path}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range rep.Attempts {
		got = append(got, a.Method+":"+a.Outcome)
	}
	want := "unadvertised:unsupported device-refused:unsupported whole-device-zero:failed overwrite-zeros:pass"
	if strings.Join(got, " ") != want || !rep.Pass || rep.Method != "overwrite-zeros" {
		t.Fatalf("attempts %q, want %q; %+v", got, want, rep)
	}
	if !strings.Contains(rep.Attempts[2].Detail, "survived the erase") {
		t.Errorf("survivor detail %q", rep.Attempts[2].Detail)
	}
	checkErased(t, path, head, []byte{0})

	// Without a fallback, the lying command fails the erase.
	rep, err = Run(context.Background(), dev, target.Drive{Path: path}, Config{Method: wholeZeroer{skipData: true}, Seed: 10})
	if err != nil || rep.Pass || rep.MarkersFound == 0 {
		t.Fatalf("lying command passed: %+v %v", rep, err)
	}
	// A device I/O error does not fall back: the drive is failing.
	rep, err = Run(context.Background(), dev, target.Drive{Path: path}, Config{Method: refuser{}, Fallback: []Method{Overwrite{}}, Seed: 11})
	if err != nil || rep.Pass || len(rep.Attempts) != 1 || rep.Method != "refused-command" {
		t.Fatalf("I/O error fell back: %+v %v", rep, err)
	}
}

// deviceRefuser is refused the way the NVMe/SCSI wrappers report it.
type deviceRefuser struct{ refuser }

func (deviceRefuser) Name() string { return "device-refused" }
func (deviceRefuser) Erase(_ context.Context, dev zone.Device, _ []Span, _ func(int64)) error {
	return unsupported(dev, "invalid command opcode")
}

// TestMethodsOrder: the strongest-first lists per device kind.
func TestMethodsOrder(t *testing.T) {
	names := func(ms []Method) string {
		var s []string
		for _, m := range ms {
			s = append(s, m.Name())
		}
		return strings.Join(s, " ")
	}
	for _, c := range []struct {
		info zone.Info
		want string
	}{
		{zone.Info{Path: "/dev/nvme0n1", Kind: zone.KindEmulated}, "nvme-sanitize-crypto nvme-sanitize-block nvme-sanitize-overwrite nvme-format-crypto nvme-format-user-data overwrite-zeros"},
		{zone.Info{Path: "/dev/sdb", Kind: zone.KindEmulated}, "ata-security-erase scsi-sanitize-crypto scsi-sanitize-block scsi-sanitize-overwrite scsi-format-unit overwrite-zeros"},
		{zone.Info{Path: "/dev/nvme1n1", Kind: zone.KindZoned}, "zone-reset overwrite-zeros"},
		{zone.Info{Path: "/dev/loop3", Kind: zone.KindEmulated}, "overwrite-zeros"},
	} {
		if got := names(Methods(c.info)); got != c.want {
			t.Errorf("%s: %s, want %s", c.info.Path, got, c.want)
		}
	}
}

func TestChoose(t *testing.T) {
	info := zone.Info{Path: "/dev/nvme0n1", Kind: zone.KindEmulated}
	m, fb, err := Choose(info, "auto")
	if err != nil || m.Name() != "nvme-sanitize-crypto" || len(fb) != 5 || fb[4].Name() != "overwrite-zeros" {
		t.Errorf("auto: %v %v %v", m, fb, err)
	}
	if m, fb, err := Choose(info, "nvme-format-user-data"); err != nil || m.Name() != "nvme-format-user-data" || fb != nil {
		t.Errorf("named: %v %v %v", m, fb, err)
	}
	if _, _, err := Choose(zone.Info{Path: "/dev/loop0"}, "nvme-format-crypto"); err == nil || !strings.Contains(err.Error(), "overwrite-zeros") {
		t.Errorf("unknown method: %v", err)
	}
}

// TestDeviceMethodsRefuseOtherDevices: on a loop device every device
// command says unsupported (no NVMe namespace, no SG_IO), so Methods'
// chain on it would fall through to the overwrite.
func TestDeviceMethodsRefuseOtherDevices(t *testing.T) {
	_, dev := openLoop(t, 16<<20)
	for _, m := range []Method{NVMeFormat{SES: 1}, NVMeSanitize{Action: 2}, ATASecurityErase{}, SCSISanitize{Action: 2}, SCSIFormat{}} {
		if err := m.Supports(context.Background(), dev); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s on a loop device: %v", m.Name(), err)
		}
	}
}
