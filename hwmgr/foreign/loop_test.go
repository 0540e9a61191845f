package foreign

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const loopSize = 64 << 20

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not installed (make deps)", name)
		}
		t.Fatalf("%s not installed (make deps)", name)
	}
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func detectPath(t *testing.T, path string) Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Detect(f, size, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// blkidKinds runs libblkid (through wipefs --no-act) on the device: an
// independent oracle for what real tools wrote there, mapped to our kinds.
func blkidKinds(t *testing.T, dev string) []string {
	t.Helper()
	out := run(t, "wipefs", "--no-act", "--json", dev)
	if strings.TrimSpace(out) == "" {
		return nil
	}
	var v struct {
		Signatures []struct {
			Offset string `json:"offset"`
			Type   string `json:"type"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("wipefs output: %v: %s", err, out)
	}
	names := map[string]string{"PMBR": KindPMBR, "dos": KindMBR, "gpt": KindGPT, "ext2": KindExt2, "ext3": KindExt3,
		"ext4": KindExt4, "swap": KindSwap, "xfs": KindXFS, "btrfs": KindBtrfs, "LVM2_member": KindLVM2,
		"linux_raid_member": KindMD, "zfs_member": KindZFS, "crypto_LUKS": KindLUKS, "vfat": KindFAT,
		"exfat": KindExFAT, "ntfs": KindNTFS, "iso9660": KindISO9660, "bcache": KindBcache, "cramfs": KindCramFS}
	var ks []string
	for _, s := range v.Signatures {
		k, ok := names[s.Type]
		if !ok {
			t.Fatalf("wipefs reports %q at %s, which this test does not map", s.Type, s.Offset)
		}
		if !slices.Contains(ks, k) {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

type at struct {
	kind string
	off  int64
}

func findingsAt(r Report) []at {
	var got []at
	for _, f := range r.Findings {
		got = append(got, at{f.Kind, f.Offset})
	}
	return got
}

// TestRealTools writes real signatures with real tools on loop devices
// and checks Detect against the expected places and against libblkid.
func TestRealTools(t *testing.T) {
	end := int64(loopSize)
	cases := []struct {
		name    string
		prepare func(t *testing.T, dev string)
		want    []at
		foreign bool
	}{
		{"blank", func(*testing.T, string) {}, nil, false},
		{"sgdisk gpt", func(t *testing.T, dev string) {
			run(t, "sgdisk", "-n", "1:2048:+8M", "-n", "2:0:0", dev)
		}, []at{{KindPMBR, 0}, {KindGPT, 512}, {KindGPT, end - 512}}, true},
		{"sgdisk gpt converted to mbr", func(t *testing.T, dev string) {
			run(t, "sgdisk", "-n", "1:2048:+8M", "-n", "2:0:0", dev)
			run(t, "sgdisk", "--gpttombr=1:2", dev)
		}, []at{{KindMBR, 0}}, true},
		{"gpt with the primary zapped, backup left", func(t *testing.T, dev string) {
			run(t, "sgdisk", "-n", "1:2048:0", dev)
			run(t, "dd", "if=/dev/zero", "of="+dev, "bs=512", "count=34", "oflag=direct", "status=none")
		}, []at{{KindGPT, end - 512}}, true},
		{"mkfs.ext4", func(t *testing.T, dev string) { run(t, "mkfs.ext4", "-q", "-F", dev) }, []at{{KindExt4, 1024}}, true},
		{"mkfs.ext3", func(t *testing.T, dev string) { run(t, "mkfs.ext3", "-q", "-F", dev) }, []at{{KindExt3, 1024}}, true},
		{"mkfs.ext2", func(t *testing.T, dev string) { run(t, "mkfs.ext2", "-q", "-F", dev) }, []at{{KindExt2, 1024}}, true},
		{"mkfs.cramfs", func(t *testing.T, dev string) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, "mkfs.cramfs", dir, dev)
		}, []at{{KindCramFS, 0}}, true},
		{"mkswap", func(t *testing.T, dev string) { run(t, "mkswap", dev) }, []at{{KindSwap, 0}}, true},
		{"our label", func(t *testing.T, dev string) { writeLabel(t, dev, 1) }, []at{{KindLabel, 0}}, false},
		{"our label in both regions", func(t *testing.T, dev string) { writeLabel(t, dev, 300) },
			[]at{{KindLabel, 255 * 4096}, {KindLabel, label.RegionSize + 43*4096}}, false},
		{"sgdisk over our label, region 1 intact: foreign", func(t *testing.T, dev string) {
			writeLabel(t, dev, 300)
			run(t, "sgdisk", "-n", "1:2048:0", dev)
		}, []at{{KindPMBR, 0}, {KindGPT, 512}, {KindLabel, 255 * 4096}, {KindLabel, label.RegionSize + 43*4096}, {KindGPT, end - 512}}, true},
		{"ext4 made over our label", func(t *testing.T, dev string) {
			writeLabel(t, dev, 1)
			run(t, "mkfs.ext4", "-q", "-F", dev)
		}, []at{{KindExt4, 1024}}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dev := loopdev.Zero(t, loopSize)
			c.prepare(t, dev)
			r := detectPath(t, dev)
			if got := findingsAt(r); !slices.Equal(got, c.want) {
				t.Fatalf("findings %v, want %v (%+v)", got, c.want, r.Findings)
			}
			if r.Foreign() != c.foreign {
				t.Errorf("Foreign() = %v, want %v", r.Foreign(), c.foreign)
			}
			ours := r.Kinds()
			slices.Sort(ours)
			if c.name != "our label" && c.name != "our label in both regions" {
				if lib := blkidKinds(t, dev); !slices.Equal(ours, lib) {
					t.Errorf("we find %v, libblkid finds %v", ours, lib)
				}
			}
			// Adopt's first step: zero what was found. Then neither we nor
			// libblkid may find anything foreign.
			wipe(t, dev, r.WipeRanges(4096))
			after := detectPath(t, dev)
			if after.Foreign() || len(after.Kinds()) != 0 {
				t.Errorf("after wiping %v: still %+v", r.WipeRanges(4096), after.Findings)
			}
			if lib := blkidKinds(t, dev); len(lib) != 0 {
				t.Errorf("after wiping %v: libblkid still finds %v", r.WipeRanges(4096), lib)
			}
		})
	}
}

// wipe zeroes the ranges with O_DIRECT writes.
func wipe(t *testing.T, dev string, rs []Range) {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, r := range rs {
		if _, err := f.WriteAt(zone.AlignedBlock(int(r.Len)), r.Off); err != nil {
			t.Fatalf("zero %d bytes at %d: %v", r.Len, r.Off, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// writeLabel writes n label records on dev through hwmgr/label.
func writeLabel(t *testing.T, dev string, n int) {
	t.Helper()
	d, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := label.Open(context.Background(), d, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := a.Write(context.Background(), label.Record{State: lifecycle.Ready, Serial: "LOOP" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
}
