package zone

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestReadGeometryFixtures reads fixture trees shaped like the sysfs of
// the drives Stowage meets. nullb0, sda (scsi_debug) and nvme0n1 (QEMU
// ZNS) hold the values TestVMZoned logged in its guest (Debian 6.1); the
// others are a loop device, a 20 TB host-aware drive, a partition and an
// old kernel without nr_zones and limits.
func TestReadGeometryFixtures(t *testing.T) {
	for _, tc := range []struct {
		dev  string
		want Geometry
	}{
		{"nullb0", Geometry{Model: ModelHostManaged, Size: 1 << 30, ZoneSize: 64 << 20, NumZones: 16, MaxOpen: 8, MaxActive: 8, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
		{"sda", Geometry{Model: ModelHostManaged, Size: 512 << 20, ZoneSize: 64 << 20, NumZones: 8, MaxOpen: 3, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
		{"nvme0n1", Geometry{Model: ModelHostManaged, Size: 1 << 30, ZoneSize: 64 << 20, NumZones: 16, MaxOpen: 4, MaxActive: 6, LogicalBlockSize: 4096, PhysicalBlockSize: 4096}},
		{"loop0", Geometry{Model: ModelNone, Size: 1 << 30, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
		{"sdb", Geometry{Model: ModelHostAware, Size: 39063650304 * 512, ZoneSize: 256 << 20, NumZones: 74508, LogicalBlockSize: 512, PhysicalBlockSize: 4096}},
		{"partition", Geometry{Model: ModelNone, Size: 1 << 20, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
		{"old-kernel", Geometry{Model: ModelHostManaged, Size: 1 << 30, ZoneSize: 64 << 20, NumZones: 16, LogicalBlockSize: 512, PhysicalBlockSize: 512}},
	} {
		g, err := ReadGeometry(filepath.Join("testdata", "sys", "block", tc.dev))
		if err != nil {
			t.Errorf("%s: %v", tc.dev, err)
			continue
		}
		if g != tc.want {
			t.Errorf("%s: geometry\n %+v, want\n %+v", tc.dev, g, tc.want)
		}
		if g.Zoned() != (tc.want.Model != ModelNone) {
			t.Errorf("%s: Zoned() = %v", tc.dev, g.Zoned())
		}
	}
}

func TestReadGeometryRejectsBadFixtures(t *testing.T) {
	for _, tc := range []struct{ dev, want string }{
		{"bad-model", `unknown zoned model "zonked"`},
		{"bad-chunk", "zero chunk_sectors"},
		{"bad-number", `chunk_sectors: bad number "12x"`},
		{"bad-block", "block size 1000"},
		{"bad-nrzones", "99 zones"},
		{"bad-limits", `max_open_zones: bad number "-1"`},
		{"no-size", "size: no such file"},
		{"absent", "no such file"},
	} {
		_, err := ReadGeometry(filepath.Join("testdata", "sys", "block", tc.dev))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.dev, err, tc.want)
		}
	}
}

func TestSysfsDirRefusesNonDevices(t *testing.T) {
	if _, err := SysfsDir("", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("a directory: err = %v", err)
	}
	if _, err := SysfsDir("", filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("an absent path resolved")
	}
}
