package discover

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

const fixture = "testdata/server"

func fixtureScanner(t testing.TB, root string, f Filter) *Scanner {
	t.Helper()
	return NewScanner(Config{
		SysRoot: filepath.Join(root, "sys"),
		DevRoot: filepath.Join(root, "dev"),
		RunRoot: filepath.Join(root, "run"),
		Filter:  f,
	})
}

func scanByName(t *testing.T, s *Scanner) map[string]Drive {
	t.Helper()
	drives, err := s.Scan(context.Background())
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	out := map[string]Drive{}
	for _, d := range drives {
		out[d.Name] = d
	}
	return out
}

func names(m map[string]Drive) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// TestFixtureServer checks every field of every drive of the fixture
// server, and that nothing that must not count does.
func TestFixtureServer(t *testing.T) {
	got := scanByName(t, fixtureScanner(t, fixture, Filter{}))
	if want := []string{"nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "vda"}; !slices.Equal(names(got), want) {
		t.Fatalf("drives = %v, want %v (no loop, partition, dm, md, sr, zram, ram, hidden nvme path)", names(got), want)
	}
	type want struct {
		transport          Transport
		hostDriver         string
		wwn, serial        string
		vendor, model, fw  string
		size               uint64
		lbs, pbs           uint64
		rot                bool
		zoned              Zoned
		zoneSize, zones    uint64
		maxOpen, maxActive uint64
		ids                []string
	}
	cases := map[string]want{
		"sda": {TransportSATA, "ahci", "0x5000c500c1234567", "ZL2ABCDE", "ATA", "ST16000NM001G-2K", "SN03",
			31251759104 * 512, 512, 4096, true, ZonedNone, 0, 0, 0, 0,
			[]string{"ata-ST16000NM001G-2K_ZL2ABCDE", "wwn-0x5000c500c1234567"}},
		"sdb": {TransportSAS, "mpt3sas", "0x5000cca2a1b2c3d4", "9JG4ABCD", "HGST", "HSH721414AL52M0", "A21D",
			27344764928 * 512, 4096, 4096, true, ZonedHostManaged, 256 << 20, 52156, 128, 0,
			[]string{"scsi-35000cca2a1b2c3d4", "wwn-0x5000cca2a1b2c3d4"}},
		"nvme0n1": {TransportNVMe, "nvme", "", "ZNS0001", "", "QEMU NVMe Ctrl", "7.2.0",
			1 << 30, 4096, 4096, false, ZonedHostManaged, 64 << 20, 16, 14, 15,
			[]string{"nvme-QEMU_NVMe_Ctrl_ZNS0001"}},
		"nvme1n1": {TransportNVMe, "nvme", "eui.36344630528029720025385800000001", "S64HNE0R123456", "", "SAMSUNG MZQL23T8HCLS-00A07", "GDC5602Q",
			7501476528 * 512, 512, 4096, false, ZonedNone, 0, 0, 0, 0,
			[]string{"nvme-SAMSUNG_MZQL23T8HCLS-00A07_S64HNE0R123456", "nvme-eui.36344630528029720025385800000001"}},
		"vda": {TransportVirtio, "virtio_blk", "", "VIRTIO01", "", "", "",
			1 << 30, 512, 512, true, ZonedNone, 0, 0, 0, 0, []string{"virtio-VIRTIO01"}},
		"sdc": {TransportSCSI, "virtio_scsi", "", "VSCSI001", "QEMU", "QEMU HARDDISK", "2.5+",
			1 << 30, 512, 512, true, ZonedNone, 0, 0, 0, 0, []string{"scsi-0QEMU_QEMU_HARDDISK_VSCSI001"}},
		// SATA behind the SAS HBA: transport sata, host driver mpt3sas.
		"sdd": {TransportSATA, "mpt3sas", "0x5000cca2b0c0ffee", "2BKABCDE", "ATA", "WDC WUH721816AL", "W680",
			31251759104 * 512, 512, 4096, true, ZonedNone, 0, 0, 0, 0,
			[]string{"ata-WDC_WUH721816AL_2BKABCDE", "wwn-0x5000cca2b0c0ffee"}},
	}
	for name, w := range cases {
		d := got[name]
		g := want{d.Transport, d.HostDriver, d.WWN, d.Serial, d.Vendor, d.Model, d.Firmware,
			d.SizeBytes, d.LogicalSectorSize, d.PhysicalSectorSize, d.Rotational, d.Zoned,
			d.ZoneSizeBytes, d.ZoneCount, d.MaxOpenZones, d.MaxActiveZones, d.StableIDs}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, g, w)
		}
		if d.IDSource != IDsFromUdev || len(d.ByIDPaths) != len(w.ids) {
			t.Errorf("%s: id source %s, by-id paths %v", name, d.IDSource, d.ByIDPaths)
		}
		for _, p := range d.ByIDPaths {
			if target, err := filepath.EvalSymlinks(p); err != nil || filepath.Base(target) != name {
				t.Errorf("%s: by-id path %s resolves to %q (%v)", name, p, target, err)
			}
		}
		if d.DevPath != filepath.Join(filepath.Dir(d.ByIDPaths[0]), "..", "..", name) &&
			filepath.Base(d.DevPath) != name {
			t.Errorf("%s: dev path %s", name, d.DevPath)
		}
		if d.ReadOnly || d.Removable {
			t.Errorf("%s: read-only %v removable %v", name, d.ReadOnly, d.Removable)
		}
	}
	if ns := got["nvme0n1"].NVMe; ns == nil || *ns != (NVMeNamespace{Controller: "nvme0", NSID: 1, Transport: "pcie"}) {
		t.Errorf("nvme0n1 namespace = %+v", ns)
	}
	sdb := got["sdb"].Enclosure
	if sdb == nil || sdb.Enclosure != "1:0:1:0" || sdb.Bay != "Slot 07" || sdb.Slot != 7 {
		t.Fatalf("sdb enclosure = %+v", sdb)
	}
	if want := filepath.Join(fixture, "sys/class/enclosure/1:0:1:0/Slot 07/locate"); !strings.HasSuffix(sdb.LocatePath, want) {
		t.Errorf("locate path %s, want …%s", sdb.LocatePath, want)
	}
	if b, err := os.ReadFile(sdb.LocatePath); err != nil || string(b) != "0\n" {
		t.Errorf("locate file %s: %q %v", sdb.LocatePath, b, err)
	}
	if e := got["sdd"].Enclosure; e == nil || e.Slot != 8 || e.Bay != "Slot 08" {
		t.Errorf("sdd enclosure = %+v", e)
	}
	for _, n := range []string{"sda", "sdc", "vda", "nvme0n1"} {
		if got[n].Enclosure != nil {
			t.Errorf("%s: enclosure %+v, want none", n, got[n].Enclosure)
		}
	}
}

// TestFixtureWithoutUdev: the same server without udev (our initramfs):
// identity comes from sysfs alone, and the derived stable ids are exactly
// the names udev gives the same drives.
func TestFixtureWithoutUdev(t *testing.T) {
	empty := t.TempDir()
	withUdev := scanByName(t, fixtureScanner(t, fixture, Filter{}))
	bare := scanByName(t, NewScanner(Config{SysRoot: filepath.Join(fixture, "sys"), DevRoot: empty, RunRoot: empty}))
	if !slices.Equal(names(bare), names(withUdev)) {
		t.Fatalf("drives without udev %v, with %v", names(bare), names(withUdev))
	}
	for name, u := range withUdev {
		b := bare[name]
		if b.IDSource != IDsDerived || len(b.ByIDPaths) != 0 {
			t.Errorf("%s: id source %s, by-id %v", name, b.IDSource, b.ByIDPaths)
		}
		want := slices.Sorted(slices.Values(u.StableIDs))
		if got := slices.Sorted(slices.Values(b.StableIDs)); !slices.Equal(got, want) {
			t.Errorf("%s: derived ids %v, udev's %v", name, got, want)
		}
		if b.Serial != u.Serial || b.Model != u.Model || b.Firmware != u.Firmware || b.WWN != u.WWN {
			t.Errorf("%s: without udev %q/%q/%q/%q, with %q/%q/%q/%q", name,
				b.Serial, b.Model, b.Firmware, b.WWN, u.Serial, u.Model, u.Firmware, u.WWN)
		}
	}
}

func TestFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter Filter
		want   []string
	}{
		{"default", Filter{}, []string{"nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "vda"}},
		{"loop", Filter{Loop: true}, []string{"loop0", "nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "vda"}},
		{"loop below its dir", Filter{Loop: true, LoopBackingDir: "/var/tmp/stowage"}, []string{"loop0", "nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "vda"}},
		{"loop elsewhere", Filter{Loop: true, LoopBackingDir: "/var/tmp/stow"}, []string{"nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "sdd", "vda"}},
		{"names", Filter{Names: []string{"sdb", "sr0", "dm-0", "nvme1c1n1"}}, []string{"sdb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(scanByName(t, fixtureScanner(t, fixture, tc.filter))); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	loop := scanByName(t, fixtureScanner(t, fixture, Filter{Loop: true}))["loop0"]
	if loop.Transport != TransportLoop || loop.SizeBytes != 1<<20 || loop.BackingFile != "/var/tmp/stowage/disk0.img" {
		t.Errorf("loop0 = %+v", loop)
	}
}

func TestScanErrors(t *testing.T) {
	if _, err := NewScanner(Config{SysRoot: t.TempDir()}).Scan(context.Background()); err == nil {
		t.Error("Scan of a sysfs root without block/: no error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := fixtureScanner(t, fixture, Filter{}).Scan(ctx); err == nil {
		t.Error("Scan with a cancelled context: no error")
	}
}

func TestLessName(t *testing.T) {
	in := []string{"sdaa", "sdb", "nvme10n1", "sda", "nvme2n1", "sdz", "vda", "nvme1n1"}
	sort.Slice(in, func(i, j int) bool { return lessName(in[i], in[j]) })
	want := []string{"nvme1n1", "nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa", "vda"}
	if !slices.Equal(in, want) {
		t.Errorf("sorted %v, want %v", in, want)
	}
}

// copyFixture gives a test its own writable copy of the fixture server.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("cp", "-a", fixture, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	return dst
}

func TestCompare(t *testing.T) {
	root := copyFixture(t)
	s := fixtureScanner(t, root, Filter{})
	before, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := Compare(before, before); !d.Empty() {
		t.Fatalf("same scan compares unequal: %+v", d)
	}
	// Pull vda, grow sdc, turn nvme1n1 read-only.
	must(t, os.Remove(filepath.Join(root, "sys/block/vda")))
	sdc, _ := filepath.EvalSymlinks(filepath.Join(root, "sys/block/sdc"))
	must(t, os.WriteFile(filepath.Join(sdc, "size"), []byte("4194304\n"), 0o644))
	nv, _ := filepath.EvalSymlinks(filepath.Join(root, "sys/block/nvme1n1"))
	must(t, os.WriteFile(filepath.Join(nv, "ro"), []byte("1\n"), 0o644))
	after, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	d := Compare(before, after)
	if len(d.Added) != 0 || len(d.Removed) != 1 || d.Removed[0].Name != "vda" || len(d.Changed) != 2 {
		t.Fatalf("diff = added %d removed %+v changed %d", len(d.Added), d.Removed, len(d.Changed))
	}
	changed := map[string][]string{}
	for _, c := range d.Changed {
		changed[c.New.Name] = c.Fields
	}
	if !slices.Equal(changed["sdc"], []string{"size_bytes"}) || !slices.Equal(changed["nvme1n1"], []string{"read_only"}) {
		t.Errorf("changed fields = %v", changed)
	}
	if d := Compare(after, before); len(d.Added) != 1 || d.Added[0].Name != "vda" {
		t.Errorf("reverse diff added = %+v", d.Added)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestWatchInjectedEvents drives Watch with uevents from a channel: a
// burst of block events costs one rescan, non-block events none.
func TestWatchInjectedEvents(t *testing.T) {
	root := copyFixture(t)
	s := fixtureScanner(t, root, Filter{})
	events := make(chan Uevent)
	updates := make(chan Update, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, WatchConfig{Interval: time.Hour, Settle: 10 * time.Millisecond, Events: events},
			func(u Update) { updates <- u })
	}()
	first := recv(t, updates)
	if first.Reason != "initial" || len(first.Drives) != 7 || len(first.Diff.Added) != 7 {
		t.Fatalf("initial update: reason %s, %d drives", first.Reason, len(first.Drives))
	}
	must(t, os.Remove(filepath.Join(root, "sys/block/sda")))
	events <- Uevent{Action: "change", Subsystem: "net", DevPath: "/devices/virtual/net/lo"}
	for range 3 {
		events <- Uevent{Action: "remove", Subsystem: "block", DevType: "disk", DevName: "sda", DevPath: "/devices/x/block/sda"}
	}
	u := recv(t, updates)
	if u.Reason != "uevent" || len(u.Diff.Removed) != 1 || u.Diff.Removed[0].Name != "sda" || len(u.Drives) != 6 {
		t.Fatalf("update after remove: %s removed %+v drives %d", u.Reason, u.Diff.Removed, len(u.Drives))
	}
	// An event with nothing changed reports nothing; cancelling ends Watch.
	events <- Uevent{Action: "change", Subsystem: "block", DevType: "disk", DevName: "sdb", DevPath: "/devices/x/block/sdb"}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch returned %v, want context.Canceled", err)
	}
	select {
	case u := <-updates:
		t.Errorf("unexpected update %s %+v", u.Reason, u.Diff)
	default:
	}
}

func recv(t *testing.T, ch <-chan Update) Update {
	t.Helper()
	select {
	case u := <-ch:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
	}
	return Update{}
}

func TestParseVPD80(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
		ok   bool
	}{
		{EncodeVPD80("ZL2ABCDE"), "ZL2ABCDE", true},
		{EncodeVPD80("    WD-WCC4N1234567"), "WD-WCC4N1234567", true},
		{append(EncodeVPD80("S1"), 0, 0), "S1", true},
		{[]byte{0, 0x80, 0}, "", false},
		{[]byte{0, 0x83, 0, 1, 'A'}, "", false},
		{[]byte{0, 0x80, 0, 9, 'A'}, "", false},
		{[]byte{0, 0x80, 0, 2, 'A', 0x01}, "", false},
	} {
		got, err := ParseVPD80(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseVPD80(%q) = %q, %v; want %q ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestCompareDuplicateIDs(t *testing.T) {
	a := Drive{Name: "sdb", WWN: "0x5000cca2a1b2c3d4", StableIDs: []string{"wwn-0x5000cca2a1b2c3d4"}, Transport: TransportSAS}
	b := a
	b.Name = "sdq" // the same dual-ported drive through the second HBA path
	if d := Compare([]Drive{a, b}, []Drive{a, b}); !d.Empty() {
		t.Fatalf("unchanged dual-path drive: %+v", d)
	}
	d := Compare([]Drive{a, b}, []Drive{a})
	if len(d.Removed) != 1 || d.Removed[0].Name != "sdq" || len(d.Added) != 0 {
		t.Fatalf("one path lost: %+v", d)
	}
}

func TestLocateLED(t *testing.T) {
	root := copyFixture(t)
	drives := scanByName(t, fixtureScanner(t, root, Filter{}))
	slot := drives["sdb"].Enclosure
	for _, on := range []bool{true, false, true} {
		must(t, slot.SetLocate(on))
		got, err := slot.Locate()
		if err != nil || got != on {
			t.Fatalf("Locate after SetLocate(%v) = %v, %v", on, got, err)
		}
		b, _ := os.ReadFile(slot.LocatePath)
		if want := map[bool]string{true: "1", false: "0"}[on]; string(b) != want {
			t.Fatalf("locate file holds %q, want %q", b, want)
		}
	}
	must(t, slot.SetFault(true))
	if err := (&Slot{Enclosure: "x", Bay: "Slot 1"}).SetLocate(true); err == nil {
		t.Error("SetLocate without a locate file: no error")
	}
	gone := *slot
	gone.LocatePath = filepath.Join(root, "sys/class/enclosure/nonexistent/locate")
	if err := gone.SetLocate(true); err == nil {
		t.Error("SetLocate on a missing file: no error")
	}
}

// TestFixtureQEMUGuest scans sysfs as captured inside the QEMU guest of
// TestVMDiscovery (testdata/qemu-guest; see capture_vm_test.go): a real
// kernel's tree, not a hand-made one, with no udev.
func TestFixtureQEMUGuest(t *testing.T) {
	got := scanByName(t, fixtureScanner(t, "testdata/qemu-guest", Filter{}))
	if want := []string{"nvme0n1", "nvme1n1", "sda", "sdb", "sdc", "vda"}; !slices.Equal(names(got), want) {
		t.Fatalf("drives = %v, want %v", names(got), want)
	}
	type want struct {
		serial, model, driver string
		transport             Transport
		size                  uint64
		zoned                 Zoned
		ids                   []string
	}
	for name, w := range map[string]want{
		"nvme0n1": {"DISC-ZNS", "QEMU NVMe Ctrl", "nvme", TransportNVMe, 1 << 30, ZonedHostManaged, []string{"nvme-QEMU_NVMe_Ctrl_DISC-ZNS"}},
		"nvme1n1": {"DISC-NVME", "QEMU NVMe Ctrl", "nvme", TransportNVMe, 256 << 20, ZonedNone, []string{"nvme-QEMU_NVMe_Ctrl_DISC-NVME"}},
		"sda":     {"DISC-SATA", "STOWAGE SATA HDD", "ahci", TransportSATA, 256 << 20, ZonedNone, []string{"ata-STOWAGE_SATA_HDD_DISC-SATA"}},
		"sdb":     {"DISC-VSCSI", "STOWAGE SCSI", "virtio_scsi", TransportSCSI, 128 << 20, ZonedNone, []string{"scsi-0QEMU_STOWAGE_SCSI_DISC-VSCSI"}},
		"vda":     {"DISC-VBLK", "", "virtio_blk", TransportVirtio, 128 << 20, ZonedNone, []string{"virtio-DISC-VBLK"}},
		// scsi_debug zbc=managed: the kernel's SCSI ZBC path, as SMR drives take it.
		"sdc": {"16000", "scsi_debug", "scsi_debug", TransportSCSI, 512 << 20, ZonedHostManaged,
			[]string{"wwn-0x3333333000003e80", "scsi-33333333000003e80"}},
	} {
		d := got[name]
		g := want{d.Serial, d.Model, d.HostDriver, d.Transport, d.SizeBytes, d.Zoned, d.StableIDs}
		if !reflect.DeepEqual(g, w) || d.IDSource != IDsDerived {
			t.Errorf("%s:\n got %+v (%s)\nwant %+v", name, g, d.IDSource, w)
		}
	}
	z := got["nvme0n1"]
	if z.ZoneSizeBytes != 64<<20 || z.ZoneCount != 16 || z.MaxOpenZones != 14 || z.MaxActiveZones != 15 ||
		z.LogicalSectorSize != 4096 || z.NVMe == nil || z.NVMe.Controller != "nvme0" || z.NVMe.NSID != 1 || z.NVMe.Transport != "pcie" {
		t.Errorf("ZNS namespace: %+v %+v", z, z.NVMe)
	}
	smr := got["sdc"]
	if smr.ZoneSizeBytes != 64<<20 || smr.ZoneCount != 8 || smr.MaxOpenZones != 3 || smr.WWN != "0x3333333000003e80" || smr.Vendor != "Linux" {
		t.Errorf("scsi_debug SMR: %+v", smr)
	}
	// QEMU's NVMe has no EUI-64/NGUID: the kernel's synthesized "nvme."
	// wwid is not a WWN.
	if z.WWN != "" {
		t.Errorf("ZNS WWN %q, want none", z.WWN)
	}
}

// TestResolve: the one-readlink resolution equals EvalSymlinks for every
// block device link and device link of the fixtures and of this machine.
func TestResolve(t *testing.T) {
	for _, sys := range []string{"testdata/server/sys", "testdata/qemu-guest/sys", "/sys"} {
		links, _ := filepath.Glob(filepath.Join(sys, "block", "*"))
		for _, l := range links {
			real, err := resolve(l)
			want, werr := filepath.EvalSymlinks(l)
			if (err == nil) != (werr == nil) || (err == nil && real != want) {
				t.Errorf("resolve(%s) = %q, %v; EvalSymlinks %q, %v", l, real, err, want, werr)
				continue
			}
			dev := filepath.Join(real, "device")
			if _, err := os.Lstat(dev); err != nil {
				continue
			}
			got, err := resolve(dev)
			want, werr = filepath.EvalSymlinks(dev)
			if (err == nil) != (werr == nil) || (err == nil && got != want) {
				t.Errorf("resolve(%s) = %q, %v; EvalSymlinks %q, %v", dev, got, err, want, werr)
			}
		}
	}
	if _, err := resolve("testdata/server/sys/block/nonexistent"); err == nil {
		t.Error("resolve of a missing link: no error")
	}
	if p, err := resolve("testdata/server/sys/class"); err != nil || p != "testdata/server/sys/class" {
		t.Errorf("resolve of a directory: %q, %v", p, err)
	}
}

// failingReader delivers its events, then fails like a broken socket (or,
// with closed set, blocks until its context ends).
type failingReader struct {
	events []Uevent
	closed chan struct{}
}

func (f *failingReader) Read(ctx context.Context) (Uevent, error) {
	if len(f.events) > 0 {
		u := f.events[0]
		f.events = f.events[1:]
		return u, nil
	}
	if f.closed == nil {
		return Uevent{}, errors.New("recvfrom: socket broke")
	}
	<-ctx.Done()
	return Uevent{}, ctx.Err()
}

func (f *failingReader) Close() error { return nil }

// TestWatchRedial: when the uevent socket breaks, Watch re-dials (after a
// failed attempt) and rescans once reconnected, reporting what changed
// while it was deaf.
func TestWatchRedial(t *testing.T) {
	root := copyFixture(t)
	s := fixtureScanner(t, root, Filter{})
	dials := 0
	initialSeen := make(chan struct{})
	dial := func() (ueventReader, error) {
		dials++
		switch dials {
		case 1: // the first socket breaks at once
			return &failingReader{}, nil
		case 2:
			// While deaf (and after the initial scan): vda is pulled.
			<-initialSeen
			if err := os.Remove(filepath.Join(root, "sys/block/vda")); err != nil {
				t.Error(err)
			}
			return nil, errors.New("socket: no buffer space")
		default:
			return &failingReader{closed: make(chan struct{})}, nil
		}
	}
	updates := make(chan Update, 8)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, WatchConfig{Interval: time.Hour, Settle: time.Millisecond, dial: dial, redialMin: time.Millisecond},
			func(u Update) { updates <- u })
	}()
	if u := recv(t, updates); u.Reason != "initial" || len(u.Drives) != 7 {
		t.Fatalf("first update %s, %d drives", u.Reason, len(u.Drives))
	}
	close(initialSeen)
	u := recv(t, updates)
	if u.Reason != "overflow" || len(u.Diff.Removed) != 1 || u.Diff.Removed[0].Name != "vda" {
		t.Fatalf("after re-dial: %s %+v", u.Reason, u.Diff)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch: %v", err)
	}
	if dials != 3 {
		t.Errorf("%d dials, want 3", dials)
	}
}
