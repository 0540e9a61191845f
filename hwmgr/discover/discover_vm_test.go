//go:build vmtest

package discover_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/discover"
	"github.com/stowage/stowage/qemu"
)

// TestVMDiscovery boots one guest with an NVMe ZNS namespace, a
// conventional NVMe, a SATA disk on AHCI, a virtio-blk and a virtio-scsi
// disk, and checks each is found with its transport, serial and geometry
// (no udev in the guest: stable ids are derived), plus a host-managed SMR
// SCSI disk from scsi_debug (zbc=managed), the kernel's own ZBC code path
// that real SMR drives take. Then the host pulls the
// virtio-blk disk and plugs a new one; the netlink watcher in the guest
// reports both and the next scan agrees.
func TestVMDiscovery(t *testing.T) {
	const zoneSize, zns = 64 << 20, 1 << 30
	opts := qemu.Options{
		Drives: []qemu.Drive{
			{Kind: qemu.NVMeZNS, ID: "zns", Serial: "DISC-ZNS", Size: zns, ZoneSize: zoneSize, MaxOpen: 14, MaxActive: 15},
			{Kind: qemu.NVMe, ID: "nvme", Serial: "DISC-NVME", Size: 256 << 20},
			{Kind: qemu.SATA, ID: "sata", Serial: "DISC-SATA", Model: "STOWAGE SATA HDD", Size: 256 << 20},
			{Kind: qemu.VirtioBlk, ID: "vblk", Serial: "DISC-VBLK", Size: 128 << 20},
			{Kind: qemu.SCSI, ID: "vscsi", Serial: "DISC-VSCSI", Model: "STOWAGE SCSI", Size: 128 << 20},
		},
		Modules: []qemu.Module{{Name: "scsi_debug", Params: "zbc=managed dev_size_mb=512 zone_size_mb=64 zone_nr_conv=1"}},
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "watching"); err != nil {
				return err
			}
			if os.Getenv(updateEnv) != "" {
				if err := writeCapture(vm.Console(), guestFixture); err != nil {
					return fmt.Errorf("sysfs capture: %w", err)
				}
			}
			if err := vm.Unplug(ctx, "vblk"); err != nil {
				return err
			}
			if err := vm.WaitMark(ctx, "removed"); err != nil {
				return err
			}
			return vm.Plug(ctx, qemu.Drive{Kind: qemu.VirtioBlk, ID: "vnew", Serial: "DISC-VNEW", Size: 64 << 20})
		},
	}
	if os.Getenv(updateEnv) != "" {
		opts.Env = append(opts.Env, captureEnv+"=1")
	}
	qemu.RunTest(t, opts, func(t *testing.T, g *qemu.Guest) {
		for _, sn := range []string{"DISC-ZNS", "DISC-NVME", "DISC-SATA", "DISC-VBLK", "DISC-VSCSI"} {
			if _, err := g.Device(sn); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := g.WaitModel("scsi_debug"); err != nil {
			t.Fatal(err)
		}
		s := discover.NewScanner(discover.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		updates := make(chan discover.Update, 16)
		done := make(chan error, 1)
		go func() {
			done <- s.Watch(ctx, discover.WatchConfig{Interval: time.Hour}, func(u discover.Update) { updates <- u })
		}()
		first := next(t, updates)
		bySerial := map[string]discover.Drive{}
		for _, d := range first.Drives {
			bySerial[d.Serial] = d
			t.Logf("%s: %s %s serial %q model %q fw %q wwn %q size %d zoned %s ids %v (%s)", d.Name, d.Transport,
				d.HostDriver, d.Serial, d.Model, d.Firmware, d.WWN, d.SizeBytes, d.Zoned, d.StableIDs, d.IDSource)
		}
		for sn, w := range map[string]struct {
			transport discover.Transport
			driver    string
			size      uint64
			zoned     discover.Zoned
		}{
			"DISC-ZNS":   {discover.TransportNVMe, "nvme", zns, discover.ZonedHostManaged},
			"DISC-NVME":  {discover.TransportNVMe, "nvme", 256 << 20, discover.ZonedNone},
			"DISC-SATA":  {discover.TransportSATA, "ahci", 256 << 20, discover.ZonedNone},
			"DISC-VBLK":  {discover.TransportVirtio, "virtio_blk", 128 << 20, discover.ZonedNone},
			"DISC-VSCSI": {discover.TransportSCSI, "virtio_scsi", 128 << 20, discover.ZonedNone},
		} {
			d, ok := bySerial[sn]
			if !ok {
				t.Errorf("%s not discovered", sn)
				continue
			}
			if d.Transport != w.transport || d.HostDriver != w.driver || d.SizeBytes != w.size || d.Zoned != w.zoned {
				t.Errorf("%s: transport %s driver %s size %d zoned %s; want %s %s %d %s",
					sn, d.Transport, d.HostDriver, d.SizeBytes, d.Zoned, w.transport, w.driver, w.size, w.zoned)
			}
			if d.IDSource != discover.IDsDerived || len(d.StableIDs) == 0 {
				t.Errorf("%s: ids %v from %s, want derived ones", sn, d.StableIDs, d.IDSource)
			}
		}
		z := bySerial["DISC-ZNS"]
		if z.ZoneSizeBytes != zoneSize || z.ZoneCount != zns/zoneSize || z.MaxOpenZones != 14 || z.MaxActiveZones != 15 || z.NVMe == nil || z.NVMe.NSID != 1 {
			t.Errorf("ZNS geometry: zone %d × %d, open %d, active %d, ns %+v", z.ZoneSizeBytes, z.ZoneCount, z.MaxOpenZones, z.MaxActiveZones, z.NVMe)
		}
		if m := bySerial["DISC-SATA"].Model; m != "STOWAGE SATA HDD" {
			t.Errorf("SATA model %q", m)
		}
		var smr *discover.Drive
		for i, d := range first.Drives {
			if d.Model == "scsi_debug" {
				smr = &first.Drives[i]
			}
		}
		if smr == nil {
			t.Errorf("scsi_debug SMR disk not discovered")
		} else if smr.Transport != discover.TransportSCSI || smr.HostDriver != "scsi_debug" || smr.Zoned != discover.ZonedHostManaged ||
			smr.ZoneSizeBytes != 64<<20 || smr.ZoneCount != 8 || smr.SizeBytes != 512<<20 || smr.Serial == "" {
			t.Errorf("scsi_debug SMR disk: %+v", *smr)
		}
		if len(first.Drives) != 6 {
			t.Errorf("%d drives, want 6", len(first.Drives))
		}

		if os.Getenv(captureEnv) != "" {
			captureSysfs(t)
		}
		g.Mark("watching")
		u := next(t, updates)
		if u.Reason != "uevent" || len(u.Diff.Removed) != 1 || u.Diff.Removed[0].Serial != "DISC-VBLK" || len(u.Drives) != 5 {
			t.Fatalf("after unplug: %s removed %v, %d drives", u.Reason, u.Diff.Removed, len(u.Drives))
		}
		g.Mark("removed")
		u = next(t, updates)
		if u.Reason != "uevent" || len(u.Diff.Added) != 1 || u.Diff.Added[0].Serial != "DISC-VNEW" || u.Diff.Added[0].SizeBytes != 64<<20 {
			t.Fatalf("after plug: %s added %v", u.Reason, u.Diff.Added)
		}
		again, err := s.Scan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := discover.Compare(u.Drives, again); !d.Empty() {
			t.Errorf("a fresh scan disagrees with the watcher: %+v", d)
		}
		cancel()
		<-done
	})
}

func next(t *testing.T, ch <-chan discover.Update) discover.Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(2 * time.Minute):
		t.Fatal("no discovery update within 2 minutes")
	}
	return discover.Update{}
}
