//go:build vmtest

package qemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu"
)

// smartJSON is the little of `smartctl --json -a` this test reads;
// hwmgr/smart owns the full parser.
type smartJSON struct {
	Smartctl struct {
		ExitStatus int `json:"exit_status"`
	} `json:"smartctl"`
	Device struct {
		Protocol string `json:"protocol"`
	} `json:"device"`
	ModelName    string `json:"model_name"`
	SerialNumber string `json:"serial_number"`
	SmartStatus  *struct {
		Passed bool `json:"passed"`
	} `json:"smart_status"`
}

// runSmartctl runs real smartctl --json -a on dev. smartctl's exit status
// is a bit mask; bits 0 and 1 (bad command line, device open failed) are
// failures, the others describe the drive and are left to the caller.
func runSmartctl(t *testing.T, dev string) smartJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "smartctl", "--json", "-a", dev).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("smartctl %s: %v", dev, err)
	}
	var s smartJSON
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("smartctl %s: bad JSON: %v\n%s", dev, err, out)
	}
	if s.Smartctl.ExitStatus&3 != 0 {
		t.Fatalf("smartctl %s: exit status %#x\n%s", dev, s.Smartctl.ExitStatus, out)
	}
	return s
}

// TestVMSmartctl runs the real smartctl against the emulated NVMe
// controller and a SATA disk on AHCI and checks that model, serial and
// health come back, the serials being the ones given to QEMU.
func TestVMSmartctl(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMe, Serial: "SMART-NVME-7"},
			{Kind: qemu.SATA, Serial: "SMART-SATA-9", Model: "STOWAGE HDD"},
		},
		Binaries: []string{"smartctl"},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		nvme, err := g.Device("SMART-NVME-7")
		if err != nil {
			t.Fatal(err)
		}
		if nvme.Controller == "" {
			t.Fatalf("%s: no NVMe controller found in sysfs", nvme.Path)
		}
		for _, dev := range []string{nvme.Controller, nvme.Path} {
			s := runSmartctl(t, dev)
			t.Logf("%s: protocol %s model %q serial %q exit %#x", dev, s.Device.Protocol, s.ModelName, s.SerialNumber, s.Smartctl.ExitStatus)
			if s.Device.Protocol != "NVMe" || s.SerialNumber != "SMART-NVME-7" || s.ModelName != "QEMU NVMe Ctrl" {
				t.Errorf("%s: protocol %q serial %q model %q, want NVMe, SMART-NVME-7, QEMU NVMe Ctrl", dev, s.Device.Protocol, s.SerialNumber, s.ModelName)
			}
			if s.SmartStatus == nil || !s.SmartStatus.Passed {
				t.Errorf("%s: smart_status %+v, want passed", dev, s.SmartStatus)
			}
		}

		sata, err := g.Device("SMART-SATA-9")
		if err != nil {
			t.Fatal(err)
		}
		s := runSmartctl(t, sata.Path)
		t.Logf("%s: protocol %s model %q serial %q exit %#x", sata.Path, s.Device.Protocol, s.ModelName, s.SerialNumber, s.Smartctl.ExitStatus)
		if s.Device.Protocol != "ATA" || s.SerialNumber != "SMART-SATA-9" || s.ModelName != "STOWAGE HDD" {
			t.Errorf("%s: protocol %q serial %q model %q, want ATA, SMART-SATA-9, STOWAGE HDD", sata.Path, s.Device.Protocol, s.SerialNumber, s.ModelName)
		}
		if s.SmartStatus == nil || !s.SmartStatus.Passed {
			t.Errorf("%s: smart_status %+v, want passed", sata.Path, s.SmartStatus)
		}
	})
}
