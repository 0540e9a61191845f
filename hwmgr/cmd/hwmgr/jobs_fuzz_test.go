package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/node"
)

// FuzzParamsOf: a job's parameters are read back from a label history note
// (on-disk bytes another process may have written): any detail gives
// parameters or none, never a panic, and what Start writes reads back.
func FuzzParamsOf(f *testing.F) {
	f.Add(`params {"passes":2,"share":0.5,"self_test":"short","zone_size":4194304,"started":"2026-12-02T19:00:00Z","batch":"burnin-1-1"}`)
	f.Add(`params {"method":"auto","retire":true,"started":"2026-12-02T19:00:00Z"}`)
	f.Add(`params {`)
	f.Add(`params null`)
	f.Add(`other`)
	f.Fuzz(func(t *testing.T, detail string) {
		rec := label.Record{History: []label.Entry{{Kind: label.KindNote, Actor: string(node.JobBurnIn), Detail: detail}}}
		p, ok := paramsOf(rec, node.JobBurnIn)
		if !ok {
			return
		}
		// What it read writes back (as Start writes it) and reads the same.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		rec.History = append(rec.History, label.Entry{Kind: label.KindNote, Actor: string(node.JobBurnIn), Detail: paramsPrefix + string(b)})
		q, ok := paramsOf(rec, node.JobBurnIn)
		if !ok || !q.Started.Equal(p.Started) {
			t.Fatalf("round trip of %+v: %+v %v", p, q, ok)
		}
		q.Started = p.Started
		if q != p {
			t.Fatalf("round trip of %+v: %+v", p, q)
		}
	})
}

// TestControllerOf: the job limiter's key is the last PCI function on the
// drive's sysfs path (two SATA disks on one AHCI share it, an NVMe drive
// has its own), "virtual" for virtual devices, else the device name.
func TestControllerOf(t *testing.T) {
	root := t.TempDir()
	for name, target := range map[string]string{
		"sda":     "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda",
		"sdb":     "devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdb",
		"nvme0n1": "devices/pci0000:00/0000:00:02.0/0000:03:00.0/nvme/nvme0/nvme0n1",
		"loop3":   "devices/virtual/block/loop3",
	} {
		if err := os.MkdirAll(filepath.Join(root, target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, "class/block"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("../..", target), filepath.Join(root, "class/block", name)); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"sda": "pci:0000:00:1f.2", "sdb": "pci:0000:00:1f.2", "nvme0n1": "pci:0000:03:00.0",
		"loop3": "virtual", "sdz": "sdz"} {
		if got := controllerOf(root, name); got != want {
			t.Errorf("%s: controller %q, want %q", name, got, want)
		}
	}
}
