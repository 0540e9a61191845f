package discover

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// makeJBOD writes a sysfs tree of n host-managed SMR SAS drives behind one
// mpt3sas HBA and an expander, drive i in enclosure slot i of one SES
// enclosure with n+2 slots (two empty), and no udev — the shape of a
// dense storage node booted from our image. It returns the root.
func makeJBOD(t testing.TB, n int) string {
	t.Helper()
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	put := func(path, v string) {
		must(t, os.MkdirAll(filepath.Dir(path), 0o755))
		must(t, os.WriteFile(path, []byte(v+"\n"), 0o644))
	}
	link := func(target, name string) {
		must(t, os.MkdirAll(filepath.Dir(name), 0o755))
		rel, err := filepath.Rel(filepath.Dir(name), target)
		must(t, err)
		must(t, os.Symlink(rel, name))
	}
	host := filepath.Join(sys, "devices/pci0000:00/0000:00:03.0/0000:03:00.0/host0")
	put(filepath.Join(host, "scsi_host/host0/proc_name"), "mpt3sas")
	link(filepath.Join(host, "scsi_host/host0"), filepath.Join(sys, "class/scsi_host/host0"))
	exp := filepath.Join(host, "port-0:0/expander-0:0")
	ses := filepath.Join(exp, fmt.Sprintf("port-0:0:%d/end_device-0:0:%d/target0:0:%d/0:0:%d:0", n, n, n, n))
	put(filepath.Join(ses, "type"), "13")
	encl := filepath.Join(ses, fmt.Sprintf("enclosure/0:0:%d:0", n))
	link(encl, filepath.Join(sys, "class/enclosure", fmt.Sprintf("0:0:%d:0", n)))
	for i := 0; i < n+2; i++ {
		comp := filepath.Join(encl, fmt.Sprintf("Slot %02d", i))
		put(filepath.Join(comp, "slot"), fmt.Sprint(i))
		put(filepath.Join(comp, "locate"), "0")
		put(filepath.Join(comp, "fault"), "0")
	}
	for i := range n {
		dev := filepath.Join(exp, fmt.Sprintf("port-0:0:%d/end_device-0:0:%d/target0:0:%d/0:0:%d:0", i, i, i, i))
		put(filepath.Join(dev, "vendor"), "WDC     ")
		put(filepath.Join(dev, "model"), "WUH722020BL5204 ")
		put(filepath.Join(dev, "rev"), "C5C0")
		put(filepath.Join(dev, "type"), "20")
		put(filepath.Join(dev, "wwid"), fmt.Sprintf("naa.5000cca2%08x", i))
		must(t, os.WriteFile(filepath.Join(dev, "vpd_pg80"), EncodeVPD80(fmt.Sprintf("JBOD%04d", i)), 0o644))
		name := "sd" + diskLetters(i)
		blk := filepath.Join(dev, "block", name)
		put(filepath.Join(blk, "dev"), fmt.Sprintf("%d:%d", 8+i/16*57, i%16*16))
		put(filepath.Join(blk, "size"), "39063650304")
		put(filepath.Join(blk, "ro"), "0")
		put(filepath.Join(blk, "removable"), "0")
		for attr, v := range map[string]string{"rotational": "1", "logical_block_size": "4096", "physical_block_size": "4096",
			"zoned": "host-managed", "chunk_sectors": "524288", "nr_zones": "74504", "max_open_zones": "128", "max_active_zones": "0"} {
			put(filepath.Join(blk, "queue", attr), v)
		}
		link(dev, filepath.Join(blk, "device"))
		link(blk, filepath.Join(sys, "block", name))
		link(dev, filepath.Join(encl, fmt.Sprintf("Slot %02d", i), "device"))
	}
	must(t, os.MkdirAll(filepath.Join(root, "dev"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	return root
}

// diskLetters names the i-th sd disk the way the sd driver does: a … z, aa … zz, aaa ….
func diskLetters(i int) string {
	s := ""
	for i++; i > 0; i = (i - 1) / 26 {
		s = string(rune('a'+(i-1)%26)) + s
	}
	return s
}

func TestJBOD100(t *testing.T) {
	const n = 100
	root := makeJBOD(t, n)
	drives, err := fixtureScanner(t, root, Filter{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(drives) != n {
		t.Fatalf("%d drives, want %d", len(drives), n)
	}
	for i, d := range drives {
		want := fmt.Sprintf("JBOD%04d", i)
		if d.Name != "sd"+diskLetters(i) || d.Serial != want || d.Transport != TransportSAS || d.HostDriver != "mpt3sas" ||
			d.Zoned != ZonedHostManaged || d.ZoneCount != 74504 || d.WWN != fmt.Sprintf("0x5000cca2%08x", i) {
			t.Fatalf("drive %d: %+v", i, d)
		}
		if d.Enclosure == nil || d.Enclosure.Slot != i || d.Enclosure.Bay != fmt.Sprintf("Slot %02d", i) {
			t.Fatalf("drive %d (%s) enclosure %+v", i, d.Name, d.Enclosure)
		}
		if d.IDSource != IDsDerived || d.ID() != fmt.Sprintf("wwn-0x5000cca2%08x", i) {
			t.Fatalf("drive %d ids %v (%s)", i, d.StableIDs, d.IDSource)
		}
	}
	if got := []string{diskLetters(0), diskLetters(25), diskLetters(26), diskLetters(701), diskLetters(702)}; fmt.Sprint(got) != "[a z aa zz aaa]" {
		t.Errorf("diskLetters: %v", got)
	}
}

// BenchmarkScanJBOD100 scans the 100-drive JBOD fixture (no udev, 102
// enclosure slots): the cost of discovery alone on a dense node's shape.
func BenchmarkScanJBOD100(b *testing.B) {
	const n = 100
	s := fixtureScanner(b, makeJBOD(b, n), Filter{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		ds, err := s.Scan(ctx)
		if err != nil || len(ds) != n {
			b.Fatalf("%d drives, %v", len(ds), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/drive")
}
