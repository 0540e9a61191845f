//go:build vmtest

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/qemu"
)

const vmWarning = 0x04 // NVMe critical_warning bit 2: reliability degraded

// TestVMDaemon runs the whole daemon inside a guest with real drives: two
// NVMe controllers, a SATA disk on AHCI and a virtio-scsi disk, with the
// real smartctl. The host injects an NVMe critical warning through QMP;
// the daemon must judge that drive fail, move it to failed in its on-drive
// label, say so on the event stream and in the metrics, and a new daemon
// must read failed back from the drive. The SCSI disk has no SMART and
// must be reported as such, not as failing.
func TestVMDaemon(t *testing.T) {
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMe, ID: "nvok", Serial: "STW-NVME-OK"},
			{Kind: qemu.NVMe, ID: "nvcw", Serial: "STW-NVME-CW"},
			{Kind: qemu.SATA, ID: "sata", Serial: "STW-SATA-1", Model: "STOWAGE HDD"},
			{Kind: qemu.SCSI, ID: "vscsi", Serial: "STW-SCSI-1", Model: "STOWAGE VDISK"},
		},
		Binaries: []string{"smartctl"},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "inject-warning"); err != nil {
				return err
			}
			_, err := vm.QMP.Execute(ctx, "qom-set", map[string]any{
				"path": "/machine/peripheral/nvcw", "property": "smart_critical_warning", "value": vmWarning,
			})
			return err
		},
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		if err := loopbackUp(); err != nil {
			t.Fatalf("bringing up lo in the guest: %v", err)
		}
		for _, s := range []string{"STW-NVME-OK", "STW-NVME-CW", "STW-SATA-1", "STW-SCSI-1"} {
			if _, err := g.Device(s); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		guestOpts := func(o *options) { o.IncludeLoop, o.LoopBackingDir, o.KmsgPath = false, "", "/dev/kmsg" }
		td := startDaemon(t, t.TempDir(), guestOpts)
		td.d.node.PollSMART(ctx) // ready comes after the scan, before the first poll ends
		drive := func(serial string) node.Drive {
			t.Helper()
			d, ok := td.d.node.Drive(serial)
			if !ok {
				t.Fatalf("no drive with serial %s in %+v", serial, td.d.node.Inventory().Drives)
			}
			return d
		}
		for serial, transport := range map[string]string{"STW-NVME-OK": "nvme", "STW-NVME-CW": "nvme", "STW-SATA-1": "sata", "STW-SCSI-1": "scsi"} {
			d := drive(serial)
			t.Logf("%s: %s %s state %s verdict %s smart %+v", serial, d.Identity.DevPath, d.Identity.Transport, d.Label.State, d.Health.Verdict, d.SMART)
			if d.Identity.Transport != transport || d.Label.State != node.StateNew {
				t.Errorf("%s: transport %q state %q (label error %q)", serial, d.Identity.Transport, d.Label.State, d.LabelError)
			}
		}
		if d := drive("STW-NVME-OK"); d.SMART == nil || d.SMART.NVMe == nil || d.SMART.Passed == nil || !*d.SMART.Passed || d.Health.Verdict != node.VerdictOK {
			t.Errorf("healthy NVMe: smart %+v verdict %s %+v", d.SMART, d.Health.Verdict, d.Health.Reasons)
		}
		if d := drive("STW-SATA-1"); d.SMART == nil || len(d.SMART.ATA) == 0 || d.SMART.Protocol != "ATA" {
			t.Errorf("SATA: smart %+v", d.SMART)
		}
		if d := drive("STW-SCSI-1"); d.SMART == nil || !d.SMART.Unsupported || d.Health.Verdict == node.VerdictFail {
			t.Errorf("virtio-scsi: smart %+v verdict %s", d.SMART, d.Health.Verdict)
		}

		evs := td.events(t)
		g.Mark("inject-warning")
		for {
			td.d.node.PollSMART(ctx)
			if d := drive("STW-NVME-CW"); d.SMART != nil && d.SMART.NVMe != nil && d.SMART.NVMe.CriticalWarning != 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("critical warning never showed: %v", ctx.Err())
			case <-time.After(500 * time.Millisecond):
			}
		}
		cw := drive("STW-NVME-CW")
		if cw.Health.Verdict != node.VerdictFail || cw.Label.State != node.StateFailed {
			t.Fatalf("NVMe with critical warning: verdict %s state %s reasons %+v", cw.Health.Verdict, cw.Label.State, cw.Health.Reasons)
		}
		waitEvent(t, evs, "lifecycle.transition to failed", func(ev node.Event) bool {
			var ld node.LifecycleData
			_ = json.Unmarshal(ev.Data, &ld)
			return ev.Type == node.EventLifecycle && ev.Drive == cw.ID && ld.To == node.StateFailed && ld.Actor == "health-policy"
		})
		status, body := td.request(t, nil, "GET", "/metrics", tRead, "")
		if status != 200 {
			t.Fatalf("metrics: %d", status)
		}
		for _, want := range []string{
			fmt.Sprintf(`stowage_smart_nvme_critical_warning{device="%s",drive="%s"} %d`, cw.Identity.Name, cw.ID, vmWarning),
			fmt.Sprintf(`stowage_drive_lifecycle_state{device="%s",drive="%s",state="failed"} 1`, cw.Identity.Name, cw.ID),
			fmt.Sprintf(`stowage_drive_health_verdict{device="%s",drive="%s",verdict="fail"} 1`, cw.Identity.Name, cw.ID),
		} {
			if !bytes.Contains(body, []byte(want+"\n")) {
				t.Errorf("metrics lack %s", want)
			}
		}

		// The state lives on the drive: a new daemon reads failed back,
		// and an operator marks the drive repaired through the API.
		td.stop(t)
		td2 := startDaemon(t, t.TempDir(), func(o *options) { guestOpts(o); o.DontFail = true })
		if d, ok := td2.d.node.Drive("STW-NVME-CW"); !ok || d.Label.State != node.StateFailed || len(d.Label.History) == 0 {
			t.Fatalf("after restart: %+v", d.Label)
		}
		status, body = td2.request(t, openAPI(t), "POST", "/v1/drives/STW-NVME-CW/actions/mark-repaired", tAdmin, `{"reason":"reseated"}`)
		if status != 200 {
			t.Fatalf("mark-repaired: %d %s", status, body)
		}
		if d, _ := td2.d.node.Drive("STW-NVME-CW"); d.Label.State != node.StateNew {
			t.Fatalf("after mark-repaired: %s", d.Label.State)
		}
	})
}

// loopbackUp sets lo up: the guest's init leaves networking down, and the
// API is served on 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ioctl(SIOCGIFFLAGS, lo): %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ioctl(SIOCSIFFLAGS, lo): %w", err)
	}
	return nil
}
