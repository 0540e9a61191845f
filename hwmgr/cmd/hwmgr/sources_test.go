package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/hwmgr/smart"
)

// TestKernelIOErrorsReachHealth feeds kernel log records through a FIFO
// (one record per read, as /dev/kmsg hands them out) to the daemon's I/O
// error counter, and checks the health policy judges the drive on them.
func TestKernelIOErrorsReachHealth(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// O_RDWR keeps a writer open, so the reader never sees end of file.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := newIOErrorCounter()
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx, fifo, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-done }()

	p := healthPolicy{cfg: health.Defaults(), kernel: c}
	d := node.Drive{Identity: node.Identity{Name: "loop7"}}
	if h := p.Judge(d, nil); h.Verdict != node.VerdictUnknown {
		t.Fatalf("no SMART, no errors: %s", h.Verdict)
	}
	records := []string{
		"3,101,5000000,-;I/O error, dev loop7, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2\n",
		"3,103,5000200,-;critical medium error, dev loop7, sector 4096 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n",
	}
	want := []uint64{1, 2}
	// Each record is written once the one before was counted: a FIFO,
	// unlike /dev/kmsg, would hand two queued records to one read.
	for i, rec := range records {
		if _, err := w.WriteString(rec); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.get("loop7") != want[i] {
			if time.Now().After(deadline) {
				t.Fatalf("after record %d: %d errors counted, want %d", i, c.get("loop7"), want[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	h := p.Judge(d, nil)
	if h.Verdict != node.VerdictWarn || len(h.Reasons) != 1 || h.Reasons[0].Rule != health.RuleKernelIOErrors {
		t.Fatalf("two kernel I/O errors: %+v", h)
	}
}

// TestFromRecordMatchesSmartctl maps every captured smartctl output to the
// node's SMART view and checks the fields metrics export against the raw
// JSON smartctl wrote, read independently here.
func TestFromRecordMatchesSmartctl(t *testing.T) {
	files, err := filepath.Glob("../../smart/testdata/smartctl-json/*.json")
	if err != nil || len(files) < 100 {
		t.Fatalf("fixtures: %d, %v", len(files), err)
	}
	seen := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := smart.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s := fromRecord(rec)
		var raw struct {
			Temperature *struct {
				Current *float64 `json:"current"`
			} `json:"temperature"`
			PowerOnTime *struct {
				Hours *float64 `json:"hours"`
			} `json:"power_on_time"`
			ATA *struct {
				Table []struct {
					ID  int `json:"id"`
					Raw struct {
						Value int64 `json:"value"`
					} `json:"raw"`
					Thresh int `json:"thresh"`
				} `json:"table"`
			} `json:"ata_smart_attributes"`
			NVMe *struct {
				CriticalWarning uint64 `json:"critical_warning"`
				Written         uint64 `json:"data_units_written"`
				Spare           uint64 `json:"available_spare"`
				MediaErrors     uint64 `json:"media_errors"`
			} `json:"nvme_smart_health_information_log"`
			Grown *uint64 `json:"scsi_grown_defect_list"`
		}
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.Temperature != nil && raw.Temperature.Current != nil {
			seen["temperature"]++
			if s.TemperatureCelsius == nil || *s.TemperatureCelsius != *raw.Temperature.Current {
				t.Errorf("%s: temperature %v, smartctl %v", f, s.TemperatureCelsius, *raw.Temperature.Current)
			}
		}
		if raw.PowerOnTime != nil && raw.PowerOnTime.Hours != nil {
			seen["power_on"]++
			if s.PowerOnSeconds == nil || *s.PowerOnSeconds != *raw.PowerOnTime.Hours*3600 {
				t.Errorf("%s: power-on %v s, smartctl %v h", f, s.PowerOnSeconds, *raw.PowerOnTime.Hours)
			}
		}
		if raw.ATA != nil {
			seen["ata"]++
			byID := map[int]node.ATAAttribute{}
			for _, a := range s.ATA {
				byID[a.ID] = a
			}
			for _, a := range raw.ATA.Table {
				got, ok := byID[a.ID]
				if !ok || got.Raw != a.Raw.Value || got.Threshold != a.Thresh {
					t.Errorf("%s: attribute %d: %+v, smartctl raw %d thresh %d", f, a.ID, got, a.Raw.Value, a.Thresh)
				}
			}
		}
		if raw.NVMe != nil {
			seen["nvme"]++
			n := s.NVMe
			if n == nil || n.CriticalWarning != raw.NVMe.CriticalWarning || n.DataWrittenBytes != raw.NVMe.Written*512000 ||
				n.AvailableSpare != raw.NVMe.Spare || n.MediaErrors != raw.NVMe.MediaErrors {
				t.Errorf("%s: NVMe %+v, smartctl %+v", f, n, *raw.NVMe)
			}
		}
		if raw.Grown != nil {
			seen["scsi"]++
			if s.SCSI == nil || s.SCSI.GrownDefects != *raw.Grown {
				t.Errorf("%s: grown defects %+v, smartctl %d", f, s.SCSI, *raw.Grown)
			}
		}
	}
	for _, k := range []string{"temperature", "power_on", "ata", "nvme", "scsi"} {
		if seen[k] == 0 {
			t.Errorf("no fixture exercised %s", k)
		}
	}
	t.Logf("checked: %v", seen)
}
