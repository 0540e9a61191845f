// Package health judges a drive from its SMART record (hwmgr/smart), the
// previous record of the same drive, and the kernel's I/O errors for it
// (hwmgr/kmsg): ok, warn or fail, with machine-readable reasons. Every rule
// and threshold is listed in README.md; thresholds live in Config, whose
// zero value is the documented defaults.
package health

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/stowage/stowage/hwmgr/smart"
)

// Verdict is the policy's judgement of a drive.
type Verdict string

// The verdicts, mildest first.
const (
	OK   Verdict = "ok"
	Warn Verdict = "warn"
	Fail Verdict = "fail"
)

func (v Verdict) rank() int {
	switch v {
	case Fail:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// Worse returns the more severe of v and w.
func (v Verdict) Worse(w Verdict) Verdict {
	if w.rank() > v.rank() {
		return w
	}
	if v == "" {
		return OK
	}
	return v
}

// Rule ids, stable: they appear in the API, metrics and logs.
const (
	RuleSMARTUnreadable       = "smart-unreadable"
	RuleSMARTFailed           = "smart-overall-failed"
	RuleATAFailingNow         = "ata-attribute-failing-now"
	RuleATAFailedPast         = "ata-attribute-failed-past"
	RuleBackblaze             = "ata-backblaze"
	RuleBackblazeGrowth       = "ata-backblaze-growth"
	RuleATAErrorLogGrowth     = "ata-error-log-growth"
	RuleNVMeCriticalWarning   = "nvme-critical-warning"
	RuleNVMeSpare             = "nvme-spare-below-threshold"
	RuleNVMeWear              = "nvme-percentage-used"
	RuleNVMeMediaErrors       = "nvme-media-errors"
	RuleNVMeMediaGrowth       = "nvme-media-errors-growth"
	RuleSCSIGrownDefects      = "scsi-grown-defects"
	RuleSCSIGrownGrowth       = "scsi-grown-defects-growth"
	RuleSCSIUncorrected       = "scsi-uncorrected-errors"
	RuleSCSIUncorrectedGrowth = "scsi-uncorrected-errors-growth"
	RuleSelfTestFailed        = "self-test-failed"
	RuleSelfTestFailedPast    = "self-test-failed-past"
	RuleSelfTestLogErrors     = "self-test-log-errors"
	RuleTemperatureLimit      = "temperature-over-limit"
	RuleTemperatureHigh       = "temperature-high"
	RuleKernelIOErrors        = "kernel-io-errors"
)

// BackblazeAttributes returns the five ATA attributes Backblaze found to
// predict failure: 5 Reallocated_Sector_Ct, 187 Reported_Uncorrect,
// 188 Command_Timeout, 197 Current_Pending_Sector, 198 Offline_Uncorrectable.
func BackblazeAttributes() [5]int { return [5]int{5, 187, 188, 197, 198} }

// Config holds the thresholds. A zero field means its default (in
// parentheses); README.md says why each default is what it is.
type Config struct {
	// ATARawFail: a Backblaze attribute's count at or above this fails the
	// drive (100). Any count above zero warns.
	ATARawFail uint64
	// ATAGrowthFail: growth of a Backblaze attribute between two samples
	// at or above this fails the drive (10). Any growth warns.
	ATAGrowthFail uint64
	// NVMeMediaGrowthFail: new NVMe media errors between two samples at or
	// above this fail the drive (10). Any media error warns.
	NVMeMediaGrowthFail uint64
	// NVMeWearWarn: percentage_used at or above this warns (90).
	NVMeWearWarn uint64
	// SCSIGrownDefectsFail: a grown defect list this long fails (100);
	// any grown defect warns.
	SCSIGrownDefectsFail uint64
	// SCSIGrownGrowthFail: new grown defects between samples at or above
	// this fail (10); any growth warns.
	SCSIGrownGrowthFail uint64
	// SCSIUncorrectedGrowthFail: new uncorrected read+write+verify errors
	// between samples at or above this fail (5); any uncorrected error warns.
	SCSIUncorrectedGrowthFail uint64
	// HDDTempWarn and SSDTempWarn: degrees Celsius at or above which a
	// spinning / solid-state drive warns when it reports no limit of its
	// own (60 and 70).
	HDDTempWarn int64
	SSDTempWarn int64
	// KernelIOErrorsWarn and KernelIOErrorsFail: block-layer request errors
	// the kernel logged for the drive since boot (1 and 50).
	KernelIOErrorsWarn uint64
	KernelIOErrorsFail uint64
}

// Defaults returns the Config with every default filled in.
func Defaults() Config { return Config{}.withDefaults() }

func (c Config) withDefaults() Config {
	def := func(p *uint64, v uint64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.ATARawFail, 100)
	def(&c.ATAGrowthFail, 10)
	def(&c.NVMeMediaGrowthFail, 10)
	def(&c.NVMeWearWarn, 90)
	def(&c.SCSIGrownDefectsFail, 100)
	def(&c.SCSIGrownGrowthFail, 10)
	def(&c.SCSIUncorrectedGrowthFail, 5)
	def(&c.KernelIOErrorsWarn, 1)
	def(&c.KernelIOErrorsFail, 50)
	if c.HDDTempWarn == 0 {
		c.HDDTempWarn = 60
	}
	if c.SSDTempWarn == 0 {
		c.SSDTempWarn = 70
	}
	return c
}

// Sample is what the policy sees of a drive at one moment.
type Sample struct {
	// SMART is the latest smartctl record; nil when none was taken.
	SMART *smart.Record
	// KernelIOErrors counts the block-layer request errors the kernel
	// logged for this drive since boot (kmsg.CountIOErrors).
	KernelIOErrors uint64
}

// Reason is one rule that fired.
type Reason struct {
	Rule    string  `json:"rule"`
	Verdict Verdict `json:"verdict"`
	// Attribute names what was measured: "5 Reallocated_Sector_Ct",
	// "media_errors", "critical_warning.read_only", "temperature".
	Attribute string `json:"attribute,omitempty"`
	Value     int64  `json:"value"`
	// Previous is the value in the previous sample, for growth rules.
	Previous *int64 `json:"previous,omitempty"`
	// Threshold is the limit the value was compared with.
	Threshold *int64 `json:"threshold,omitempty"`
	Message   string `json:"message"`
}

// Result is the policy's judgement.
type Result struct {
	Verdict Verdict `json:"verdict"`
	// SMART is the status of the SMART read (ok, asleep, unsupported,
	// error, or "" when there was no record).
	SMART   smart.Status `json:"smart,omitempty"`
	Reasons []Reason     `json:"reasons,omitempty"`
}

// Evaluate judges cur, comparing with prev (the previous sample of the
// same drive, or nil) for the growth rules. Growth is ignored when the two
// records carry different serial numbers. A drive that is asleep or has no
// SMART is judged on kernel I/O errors alone.
func (c Config) Evaluate(cur Sample, prev *Sample) Result {
	c = c.withDefaults()
	e := &eval{cfg: c}
	var pr *smart.Record
	if prev != nil && prev.SMART != nil && prev.SMART.Status == smart.StatusOK {
		pr = prev.SMART
	}
	if r := cur.SMART; r != nil {
		e.res.SMART = r.Status
		if pr != nil && pr.Identity.Serial != r.Identity.Serial {
			pr = nil
		}
		switch r.Status {
		case smart.StatusOK:
			e.smart(r, pr)
		case smart.StatusError:
			e.add(Reason{Rule: RuleSMARTUnreadable, Verdict: Warn, Value: int64(r.ExitStatus),
				Message: fmt.Sprintf("smartctl could not read the drive (exit status %d: %s)", r.ExitStatus, r.ExitStatus)})
		}
	}
	e.kernel(cur.KernelIOErrors)
	e.res.Verdict = OK
	for _, r := range e.res.Reasons {
		e.res.Verdict = e.res.Verdict.Worse(r.Verdict)
	}
	return e.res
}

type eval struct {
	cfg Config
	res Result
}

func (e *eval) add(r Reason) { e.res.Reasons = append(e.res.Reasons, r) }

func i64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func ptr(v int64) *int64 { return &v }

// counter applies the shared shape of the counter rules: value > 0 warns,
// value >= absFail fails (absFail 0: never), growth since prev > 0 warns,
// growth >= growthFail fails.
func (e *eval) counter(rule, growthRule, attr string, v uint64, prev *uint64, absFail, growthFail uint64, what string) {
	if v > 0 {
		r := Reason{Rule: rule, Verdict: Warn, Attribute: attr, Value: i64(v),
			Message: fmt.Sprintf("%s: %d", what, v)}
		if absFail > 0 {
			r.Threshold = ptr(i64(absFail))
			if v >= absFail {
				r.Verdict = Fail
				r.Message = fmt.Sprintf("%s: %d, at or above %d", what, v, absFail)
			}
		}
		e.add(r)
	}
	if prev != nil && v > *prev {
		g := v - *prev
		r := Reason{Rule: growthRule, Verdict: Warn, Attribute: attr, Value: i64(v), Previous: ptr(i64(*prev)),
			Threshold: ptr(i64(growthFail)), Message: fmt.Sprintf("%s grew by %d (%d -> %d)", what, g, *prev, v)}
		if g >= growthFail {
			r.Verdict = Fail
			r.Message += fmt.Sprintf(", at or above %d", growthFail)
		}
		e.add(r)
	}
}

func (e *eval) smart(r, pr *smart.Record) {
	if (r.Passed != nil && !*r.Passed) || r.ExitStatus.Has(smart.ExitDiskFailing) {
		e.add(Reason{Rule: RuleSMARTFailed, Verdict: Fail, Attribute: "smart_status.passed",
			Message: "the drive's SMART overall-health self-assessment failed"})
	}
	if r.ATA != nil {
		e.ata(r, pr)
	}
	if r.NVMe != nil {
		e.nvme(r.NVMe, pr)
	}
	if r.SCSI != nil {
		e.scsi(r.SCSI, pr)
	}
	e.selfTests(r)
	e.temperature(r)
}

func (e *eval) ata(r, pr *smart.Record) {
	for _, a := range r.ATA.Attributes {
		name := fmt.Sprintf("%d %s", a.ID, a.Name)
		switch {
		case a.WhenFailed == "now" || (a.Thresh > 0 && a.Value <= a.Thresh):
			e.add(Reason{Rule: RuleATAFailingNow, Verdict: Fail, Attribute: name, Value: int64(a.Value),
				Threshold: ptr(int64(a.Thresh)),
				Message:   fmt.Sprintf("attribute %s normalized value %d is at or below its threshold %d", name, a.Value, a.Thresh)})
		case a.WhenFailed == "past":
			e.add(Reason{Rule: RuleATAFailedPast, Verdict: Warn, Attribute: name, Value: int64(a.Worst),
				Threshold: ptr(int64(a.Thresh)),
				Message:   fmt.Sprintf("attribute %s was at or below its threshold %d in the past (worst %d)", name, a.Thresh, a.Worst)})
		}
	}
	for _, id := range BackblazeAttributes() {
		a, ok := r.ATA.Attribute(id)
		if !ok {
			continue
		}
		var prev *uint64
		if pr != nil {
			if pa, ok := pr.ATA.Attribute(id); ok {
				v := pa.Count()
				prev = &v
			}
		}
		name := fmt.Sprintf("%d %s", a.ID, a.Name)
		e.counter(RuleBackblaze, RuleBackblazeGrowth, name, a.Count(), prev, e.cfg.ATARawFail, e.cfg.ATAGrowthFail,
			"attribute "+name+" raw count")
	}
	if pr != nil && pr.ATA != nil && pr.ATA.ErrorLogCount != nil && r.ATA.ErrorLogCount != nil &&
		*r.ATA.ErrorLogCount > *pr.ATA.ErrorLogCount {
		v, p := *r.ATA.ErrorLogCount, *pr.ATA.ErrorLogCount
		e.add(Reason{Rule: RuleATAErrorLogGrowth, Verdict: Warn, Attribute: "ata_smart_error_log.count",
			Value: i64(v), Previous: ptr(i64(p)), Message: fmt.Sprintf("the drive logged %d new errors (%d -> %d)", v-p, p, v)})
	}
}

func (e *eval) nvme(n *smart.NVMe, pr *smart.Record) {
	bits := []struct {
		on      bool
		name    string
		verdict Verdict
		why     string
	}{
		{n.Warnings.SpareBelowThreshold, "spare_below_threshold", Fail, "available spare is below the threshold"},
		{n.Warnings.Temperature, "temperature", Warn, "temperature is outside the controller's thresholds"},
		{n.Warnings.ReliabilityDegraded, "reliability_degraded", Fail, "media errors or an internal error degraded reliability"},
		{n.Warnings.ReadOnly, "read_only", Fail, "the media is read-only"},
		{n.Warnings.VolatileBackupFailed, "volatile_backup_failed", Fail, "the volatile memory backup (power-loss protection) failed"},
		{n.Warnings.PersistentMemoryRegion, "pmr_read_only", Warn, "the persistent memory region is read-only or unreliable"},
	}
	for _, b := range bits {
		if b.on {
			e.add(Reason{Rule: RuleNVMeCriticalWarning, Verdict: b.verdict, Attribute: "critical_warning." + b.name,
				Value: int64(n.CriticalWarning), Message: "NVMe critical warning: " + b.why})
		}
	}
	if n.AvailableSpareThreshold > 0 && n.AvailableSpare < n.AvailableSpareThreshold {
		e.add(Reason{Rule: RuleNVMeSpare, Verdict: Fail, Attribute: "available_spare", Value: i64(n.AvailableSpare),
			Threshold: ptr(i64(n.AvailableSpareThreshold)),
			Message:   fmt.Sprintf("available spare %d%% is below the threshold %d%%", n.AvailableSpare, n.AvailableSpareThreshold)})
	}
	if n.PercentageUsed >= e.cfg.NVMeWearWarn {
		e.add(Reason{Rule: RuleNVMeWear, Verdict: Warn, Attribute: "percentage_used", Value: i64(n.PercentageUsed),
			Threshold: ptr(i64(e.cfg.NVMeWearWarn)),
			Message:   fmt.Sprintf("%d%% of the rated endurance is used", n.PercentageUsed)})
	}
	var prev *uint64
	if pr != nil && pr.NVMe != nil {
		prev = &pr.NVMe.MediaErrors
	}
	e.counter(RuleNVMeMediaErrors, RuleNVMeMediaGrowth, "media_errors", n.MediaErrors, prev, 0,
		e.cfg.NVMeMediaGrowthFail, "NVMe media and data integrity errors")
}

func sum(ps ...*uint64) (uint64, bool) {
	var s uint64
	found := false
	for _, p := range ps {
		if p != nil {
			found = true
			if s > math.MaxUint64-*p {
				return math.MaxUint64, true
			}
			s += *p
		}
	}
	return s, found
}

func (e *eval) scsi(s *smart.SCSI, pr *smart.Record) {
	if s.GrownDefects != nil {
		var prev *uint64
		if pr != nil && pr.SCSI != nil {
			prev = pr.SCSI.GrownDefects
		}
		e.counter(RuleSCSIGrownDefects, RuleSCSIGrownGrowth, "scsi_grown_defect_list", *s.GrownDefects, prev,
			e.cfg.SCSIGrownDefectsFail, e.cfg.SCSIGrownGrowthFail, "SCSI grown defect list entries")
	}
	if u, ok := sum(s.ReadUncorrected, s.WriteUncorrected, s.VerifyUncorrected); ok {
		var prev *uint64
		if pr != nil && pr.SCSI != nil {
			if pu, ok := sum(pr.SCSI.ReadUncorrected, pr.SCSI.WriteUncorrected, pr.SCSI.VerifyUncorrected); ok {
				prev = &pu
			}
		}
		e.counter(RuleSCSIUncorrected, RuleSCSIUncorrectedGrowth, "total_uncorrected_errors", u, prev, 0,
			e.cfg.SCSIUncorrectedGrowthFail, "SCSI uncorrected read/write/verify errors")
	}
}

func (e *eval) selfTests(r *smart.Record) {
	l := r.SelfTests
	if l == nil {
		if r.ExitStatus.Has(smart.ExitSelfTestLog) {
			e.add(Reason{Rule: RuleSelfTestLogErrors, Verdict: Warn, Attribute: "exit_status.self_test_log_has_errors",
				Value: int64(r.ExitStatus), Message: "smartctl reports errors in the self-test log"})
		}
		return
	}
	latest, ok := l.Latest()
	if ok && latest.Failed {
		e.add(Reason{Rule: RuleSelfTestFailed, Verdict: Fail, Attribute: "self_test." + latest.Type,
			Value: int64(latest.ResultCode), Message: fmt.Sprintf("the latest self-test (%s) failed: %s", latest.Type, latest.Result)})
		return
	}
	if l.Failed > 0 {
		e.add(Reason{Rule: RuleSelfTestFailedPast, Verdict: Warn, Attribute: "self_test",
			Value: int64(l.Failed), Message: fmt.Sprintf("%d older self-tests failed; the latest passed", l.Failed)})
	}
}

func (e *eval) temperature(r *smart.Record) {
	t := r.Temperature.Current
	if t == nil {
		return
	}
	if lim := r.Temperature.Limit(); lim != nil && *t >= *lim {
		e.add(Reason{Rule: RuleTemperatureLimit, Verdict: Warn, Attribute: "temperature", Value: *t, Threshold: ptr(*lim),
			Message: fmt.Sprintf("temperature %d°C is at or above the drive's limit %d°C", *t, *lim)})
		return
	}
	warn := e.cfg.SSDTempWarn
	if r.Identity.RotationRate != nil && *r.Identity.RotationRate > 0 {
		warn = e.cfg.HDDTempWarn
	}
	if *t >= warn {
		e.add(Reason{Rule: RuleTemperatureHigh, Verdict: Warn, Attribute: "temperature", Value: *t, Threshold: ptr(warn),
			Message: fmt.Sprintf("temperature %d°C is at or above %d°C", *t, warn)})
	}
}

func (e *eval) kernel(n uint64) {
	if n < e.cfg.KernelIOErrorsWarn {
		return
	}
	r := Reason{Rule: RuleKernelIOErrors, Verdict: Warn, Attribute: "kernel_io_errors", Value: i64(n),
		Threshold: ptr(i64(e.cfg.KernelIOErrorsFail)),
		Message:   fmt.Sprintf("the kernel logged %d I/O errors for the drive", n)}
	if n >= e.cfg.KernelIOErrorsFail {
		r.Verdict = Fail
		r.Message += fmt.Sprintf(", at or above %d", e.cfg.KernelIOErrorsFail)
	}
	e.add(r)
}

// Sorted returns the reasons most severe first (stable within a verdict).
func (r Result) Sorted() []Reason {
	out := slices.Clone(r.Reasons)
	slices.SortStableFunc(out, func(a, b Reason) int { return cmp.Compare(b.Verdict.rank(), a.Verdict.rank()) })
	return out
}
