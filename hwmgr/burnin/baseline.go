package burnin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/smart"
)

// Baseline is the part of a drive's SMART record that the growth rules of
// hwmgr/health compare with: the Backblaze five counts, the ATA error log
// count, NVMe media errors, SCSI grown defects and uncorrected errors, and
// the serial (growth is only judged on the same drive). A burn-in keeps it
// in the label (BaselineEntry, a history note next to the checkpoint), so a
// run resumed after a reboot judges growth since the burn-in began, not
// since the restart.
type Baseline struct {
	Serial      string            `json:"serial,omitempty"`
	ATA         map[string]uint64 `json:"ata,omitempty"` // Backblaze attribute id → count
	ATAErrorLog *uint64           `json:"ata_errors,omitempty"`
	NVMeMedia   *uint64           `json:"nvme_media,omitempty"`
	SCSIGrown   *uint64           `json:"scsi_grown,omitempty"`
	SCSIRead    *uint64           `json:"scsi_read_unc,omitempty"`
	SCSIWrite   *uint64           `json:"scsi_write_unc,omitempty"`
	SCSIVerify  *uint64           `json:"scsi_verify_unc,omitempty"`
	Temperature *int64            `json:"temp_c,omitempty"` // the baseline's reading (part of the run's peak)
}

// BaselineOf extracts the baseline of a SMART record that was read (status
// ok); ok is false otherwise.
func BaselineOf(r *smart.Record) (b Baseline, ok bool) {
	if r == nil || r.Status != smart.StatusOK {
		return b, false
	}
	b.Serial = r.Identity.Serial
	if r.ATA != nil {
		for _, id := range health.BackblazeAttributes() {
			if a, ok := r.ATA.Attribute(id); ok {
				if b.ATA == nil {
					b.ATA = map[string]uint64{}
				}
				b.ATA[strconv.Itoa(id)] = a.Count()
			}
		}
		b.ATAErrorLog = r.ATA.ErrorLogCount
	}
	if r.NVMe != nil {
		v := r.NVMe.MediaErrors
		b.NVMeMedia = &v
	}
	if s := r.SCSI; s != nil {
		b.SCSIGrown, b.SCSIRead, b.SCSIWrite, b.SCSIVerify = s.GrownDefects, s.ReadUncorrected, s.WriteUncorrected, s.VerifyUncorrected
	}
	b.Temperature = r.Temperature.Current
	return b, true
}

// Record rebuilds a SMART record holding only the baseline's values, for
// hwmgr/health's growth rules.
func (b Baseline) Record() *smart.Record {
	r := &smart.Record{Status: smart.StatusOK, Identity: smart.Identity{Serial: b.Serial}}
	r.Temperature.Current = b.Temperature
	if len(b.ATA) > 0 || b.ATAErrorLog != nil {
		r.ATA = &smart.ATA{ErrorLogCount: b.ATAErrorLog}
		for k, v := range b.ATA {
			id, err := strconv.Atoi(k)
			if err != nil {
				continue
			}
			r.ATA.Attributes = append(r.ATA.Attributes, smart.Attribute{ID: id, Raw: v})
		}
		slices.SortFunc(r.ATA.Attributes, func(x, y smart.Attribute) int { return x.ID - y.ID })
	}
	if b.NVMeMedia != nil {
		r.NVMe = &smart.NVMe{MediaErrors: *b.NVMeMedia}
	}
	if b.SCSIGrown != nil || b.SCSIRead != nil || b.SCSIWrite != nil || b.SCSIVerify != nil {
		r.SCSI = &smart.SCSI{GrownDefects: b.SCSIGrown, ReadUncorrected: b.SCSIRead, WriteUncorrected: b.SCSIWrite, VerifyUncorrected: b.SCSIVerify}
	}
	return r
}

// baselinePrefix starts the detail of the history note holding a baseline.
const baselinePrefix = "smart-baseline "

// BaselineEntry is the label history note that keeps b for the burn-in
// started at started (the Task's Started): Config.KeepBaseline receives it
// to append with label.Record.AddEntry.
func BaselineEntry(b Baseline, started time.Time) (label.Entry, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return label.Entry{}, fmt.Errorf("burnin: baseline: %w", err)
	}
	d := baselinePrefix + string(raw)
	if len(d) > label.MaxDetailLen {
		return label.Entry{}, fmt.Errorf("burnin: baseline of %d bytes does not fit a label entry (%d)", len(d), label.MaxDetailLen)
	}
	return label.Entry{Time: started, Kind: label.KindNote, Actor: TaskKind, Detail: d}, nil
}

// LoadBaseline finds the baseline kept for the burn-in started at started
// (the resumed Task's Started) in the label history.
func LoadBaseline(rec label.Record, started time.Time) (*Baseline, bool) {
	for i := len(rec.History) - 1; i >= 0; i-- {
		e := rec.History[i]
		if e.Kind != label.KindNote || e.Actor != TaskKind || !e.Time.Equal(started) {
			continue
		}
		s, ok := strings.CutPrefix(e.Detail, baselinePrefix)
		if !ok {
			continue
		}
		var b Baseline
		if json.Unmarshal([]byte(s), &b) == nil {
			return &b, true
		}
	}
	return nil, false
}
