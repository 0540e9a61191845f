// Package metrics exposes hwmgr's drive table as Prometheus metrics: every
// smartctl_exporter signal that applies, self-test results, the health
// verdict and its reasons, lifecycle state, I/O statistics and outlier
// flag, smartctl exit-status flags and poll accounting. Names carry the
// stowage_ prefix and base units (bytes, seconds, celsius, ratios). The
// collector reads a snapshot of the table on every scrape; it keeps no
// state of its own and registers on its own registry.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stowage/stowage/hwmgr/node"
)

// Source is what the collector reads: the node's inventory and the ID of
// the newest event.
type Source interface {
	Inventory() node.Inventory
	Events() *node.Bus
}

// ExitBits names the bits of smartctl's exit status (smartctl(8), RETURN
// VALUES), bit 0 first.
var ExitBits = [8]string{
	"command_line_error", // 0: command line did not parse
	"device_open_failed", // 1: device open failed, or device in low-power mode (-n)
	"smart_command_failed",
	"disk_failing",
	"prefail_below_threshold",
	"attribute_past_threshold",
	"error_log_has_errors",
	"self_test_log_has_errors",
}

var (
	drv = []string{"drive", "device"}
)

func d(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, drv...), extra...), nil)
}

// Collector turns the drive table into metrics on each scrape.
type Collector struct {
	src Source

	up, drives, events, scanTime, buildInfo *prometheus.Desc

	info, size, rotational, state, verdict, reason, locate *prometheus.Desc

	smartPassed, smartAsleep, smartSupported, temp, powerOn, powerCycles *prometheus.Desc
	ataValue, ataWorst, ataThresh, ataRaw                                *prometheus.Desc

	nvmeWarn, nvmeSpare, nvmeSpareThresh, nvmeUsed, nvmeMedia, nvmeErrLog *prometheus.Desc
	nvmeRead, nvmeWritten, nvmeUnsafe                                     *prometheus.Desc

	scsiGrown, scsiUncorrected, scsiCorrected, scsiProcessed, scsiNonMedium *prometheus.Desc

	selfTestPassed, selfTestFailed, selfTests *prometheus.Desc

	exitStatus, exitFlag, pollDuration, polls, pollErrors *prometheus.Desc

	reads, writes, readBytes, writeBytes, ioTime, readTime, writeTime *prometheus.Desc
	readIOPS, writeIOPS, readBps, writeBps, readLat, writeLat         *prometheus.Desc
	util, inFlight, outlier                                           *prometheus.Desc

	jobState, jobDone, jobTotal, jobRatio, jobETA *prometheus.Desc
}

// NewCollector returns a collector reading src.
func NewCollector(src Source) *Collector {
	return &Collector{
		src:       src,
		up:        prometheus.NewDesc("stowage_hwmgr_up", "1 while hwmgr serves.", nil, nil),
		drives:    prometheus.NewDesc("stowage_hwmgr_drives", "Drives in the drive table.", nil, nil),
		events:    prometheus.NewDesc("stowage_hwmgr_events_total", "Events published on the event stream.", nil, nil),
		scanTime:  prometheus.NewDesc("stowage_hwmgr_last_scan_timestamp_seconds", "Unix time of the last completed discovery scan.", nil, nil),
		buildInfo: prometheus.NewDesc("stowage_hwmgr_build_info", "hwmgr version and host.", []string{"version", "hostname", "kernel"}, nil),

		info:       d("stowage_drive_info", "Drive identity (value 1).", "serial", "wwn", "vendor", "model", "firmware", "transport", "zoned", "enclosure", "slot", "bay"),
		size:       d("stowage_drive_size_bytes", "Drive capacity."),
		rotational: d("stowage_drive_rotational", "1 for a spinning drive."),
		state:      d("stowage_drive_lifecycle_state", "Lifecycle state from the drive label (1 for the current state).", "state"),
		verdict:    d("stowage_drive_health_verdict", "Health policy verdict (1 for the current verdict).", "verdict"),
		reason:     d("stowage_drive_health_reason", "Health rules that fired (value 1).", "rule", "severity"),
		locate:     d("stowage_drive_locate_led", "Locate LED as last set through the API (1 on)."),

		smartPassed:    d("stowage_smart_status_passed", "1 if the drive's SMART overall health self-assessment passed."),
		smartAsleep:    d("stowage_smart_asleep", "1 if the drive was in standby at the last poll and was not woken."),
		smartSupported: d("stowage_smart_supported", "0 if the device lacks SMART (reported, not a failure)."),
		temp:           d("stowage_smart_temperature_celsius", "Current drive temperature."),
		powerOn:        d("stowage_smart_power_on_seconds_total", "Power-on time."),
		powerCycles:    d("stowage_smart_power_cycles_total", "Power cycles."),
		ataValue:       d("stowage_smart_ata_attribute_value", "ATA SMART attribute normalized value.", "id", "name"),
		ataWorst:       d("stowage_smart_ata_attribute_worst", "ATA SMART attribute worst normalized value.", "id", "name"),
		ataThresh:      d("stowage_smart_ata_attribute_threshold", "ATA SMART attribute failure threshold.", "id", "name"),
		ataRaw:         d("stowage_smart_ata_attribute_raw", "ATA SMART attribute raw value.", "id", "name"),

		nvmeWarn:        d("stowage_smart_nvme_critical_warning", "NVMe critical warning bit field (0 is healthy)."),
		nvmeSpare:       d("stowage_smart_nvme_available_spare_ratio", "NVMe available spare capacity."),
		nvmeSpareThresh: d("stowage_smart_nvme_available_spare_threshold_ratio", "NVMe available spare threshold."),
		nvmeUsed:        d("stowage_smart_nvme_used_ratio", "NVMe percentage used (endurance estimate) as a ratio; may exceed 1."),
		nvmeMedia:       d("stowage_smart_nvme_media_errors_total", "NVMe media and data integrity errors."),
		nvmeErrLog:      d("stowage_smart_nvme_error_log_entries_total", "NVMe error information log entries."),
		nvmeRead:        d("stowage_smart_nvme_data_read_bytes_total", "NVMe data units read, in bytes."),
		nvmeWritten:     d("stowage_smart_nvme_data_written_bytes_total", "NVMe data units written, in bytes."),
		nvmeUnsafe:      d("stowage_smart_nvme_unsafe_shutdowns_total", "NVMe unsafe shutdowns."),

		scsiGrown:       d("stowage_smart_scsi_grown_defects", "SCSI grown defect list length."),
		scsiUncorrected: d("stowage_smart_scsi_uncorrected_errors_total", "SCSI uncorrected errors by operation.", "op"),
		scsiCorrected:   d("stowage_smart_scsi_corrected_errors_total", "SCSI corrected errors by operation.", "op"),
		scsiProcessed:   d("stowage_smart_scsi_processed_bytes_total", "SCSI bytes processed by operation (error counter log).", "op"),
		scsiNonMedium:   d("stowage_smart_scsi_non_medium_errors_total", "SCSI non-medium errors."),

		selfTestPassed: d("stowage_smart_self_test_latest_passed", "1 if the newest completed self-test passed."),
		selfTestFailed: d("stowage_smart_self_test_failed", "Failed self-tests in the drive's self-test log."),
		selfTests:      d("stowage_smart_self_test_entries", "Self-tests in the drive's self-test log."),

		exitStatus:   d("stowage_smartctl_exit_status", "smartctl exit status of the last poll (a bit mask)."),
		exitFlag:     d("stowage_smartctl_exit_flag", "smartctl exit status bits of the last poll (1 if set).", "flag"),
		pollDuration: d("stowage_smartctl_poll_duration_seconds", "Duration of the last smartctl run."),
		polls:        d("stowage_smartctl_polls_total", "smartctl runs."),
		pollErrors:   d("stowage_smartctl_poll_errors_total", "smartctl runs that produced no record."),

		reads:      d("stowage_drive_reads_completed_total", "Reads completed (/proc/diskstats)."),
		writes:     d("stowage_drive_writes_completed_total", "Writes completed (/proc/diskstats)."),
		readBytes:  d("stowage_drive_read_bytes_total", "Bytes read."),
		writeBytes: d("stowage_drive_written_bytes_total", "Bytes written."),
		ioTime:     d("stowage_drive_io_time_seconds_total", "Time the drive had I/O in flight."),
		readTime:   d("stowage_drive_read_time_seconds_total", "Time spent on reads (sum over requests)."),
		writeTime:  d("stowage_drive_write_time_seconds_total", "Time spent on writes (sum over requests)."),
		readIOPS:   d("stowage_drive_read_iops", "Reads per second over the last sampling interval."),
		writeIOPS:  d("stowage_drive_write_iops", "Writes per second over the last sampling interval."),
		readBps:    d("stowage_drive_read_bytes_per_second", "Bytes read per second over the last sampling interval."),
		writeBps:   d("stowage_drive_written_bytes_per_second", "Bytes written per second over the last sampling interval."),
		readLat:    d("stowage_drive_read_latency_seconds", "Average read latency over the last sampling interval."),
		writeLat:   d("stowage_drive_write_latency_seconds", "Average write latency over the last sampling interval."),
		util:       d("stowage_drive_utilisation_ratio", "Share of the last sampling interval the drive was busy."),
		inFlight:   d("stowage_drive_in_flight_requests", "Requests in flight at the last sample."),
		outlier:    d("stowage_drive_outlier", "1 if the drive is slow against drives of the same model."),
		jobState:   d("stowage_drive_job_state", "1 for the state of the drive's burn-in or erase (since the daemon started).", "kind", "state"),
		jobDone:    d("stowage_drive_job_done_bytes", "Bytes of the drive's burn-in or erase done.", "kind"),
		jobTotal:   d("stowage_drive_job_total_bytes", "Bytes the drive's burn-in or erase moves in all.", "kind"),
		jobRatio:   d("stowage_drive_job_progress_ratio", "Share of the drive's burn-in or erase done.", "kind"),
		jobETA:     d("stowage_drive_job_eta_seconds", "Estimated time until the drive's burn-in or erase is done (0 when finished).", "kind"),
	}
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{c.up, c.drives, c.events, c.scanTime, c.buildInfo,
		c.info, c.size, c.rotational, c.state, c.verdict, c.reason, c.locate,
		c.smartPassed, c.smartAsleep, c.smartSupported, c.temp, c.powerOn, c.powerCycles,
		c.ataValue, c.ataWorst, c.ataThresh, c.ataRaw,
		c.nvmeWarn, c.nvmeSpare, c.nvmeSpareThresh, c.nvmeUsed, c.nvmeMedia, c.nvmeErrLog, c.nvmeRead, c.nvmeWritten, c.nvmeUnsafe,
		c.scsiGrown, c.scsiUncorrected, c.scsiCorrected, c.scsiProcessed, c.scsiNonMedium,
		c.selfTestPassed, c.selfTestFailed, c.selfTests,
		c.exitStatus, c.exitFlag, c.pollDuration, c.polls, c.pollErrors,
		c.reads, c.writes, c.readBytes, c.writeBytes, c.ioTime, c.readTime, c.writeTime,
		c.readIOPS, c.writeIOPS, c.readBps, c.writeBps, c.readLat, c.writeLat, c.util, c.inFlight, c.outlier,
		c.jobState, c.jobDone, c.jobTotal, c.jobRatio, c.jobETA} {
		ch <- x
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Collect reads the inventory and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	inv := c.src.Inventory()
	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.up, gauge, 1)
	ch <- prometheus.MustNewConstMetric(c.drives, gauge, float64(len(inv.Drives)))
	ch <- prometheus.MustNewConstMetric(c.events, counter, float64(c.src.Events().LastID()))
	if !inv.ScannedAt.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.scanTime, gauge, float64(inv.ScannedAt.UnixNano())/1e9)
	}
	ch <- prometheus.MustNewConstMetric(c.buildInfo, gauge, 1, inv.Node.Version, inv.Node.Hostname, inv.Node.Kernel)
	for _, dr := range inv.Drives {
		c.collectDrive(ch, dr)
	}
}

func (c *Collector) collectDrive(ch chan<- prometheus.Metric, dr node.Drive) {
	gauge := prometheus.GaugeValue
	counter := prometheus.CounterValue
	id := dr.Identity
	l := []string{dr.ID, id.Name}
	m := func(desc *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(desc, t, v, append(append([]string{}, l...), extra...)...)
	}
	var encl, slot, bay string
	if id.Slot != nil {
		encl, slot, bay = id.Slot.Enclosure, id.Slot.Slot, id.Slot.Bay
	}
	m(c.info, gauge, 1, id.Serial, id.WWN, id.Vendor, id.Model, id.Firmware, id.Transport, id.Zoned, encl, slot, bay)
	m(c.size, gauge, float64(id.SizeBytes))
	m(c.rotational, gauge, b2f(id.Rotational))
	for _, s := range node.States {
		m(c.state, gauge, b2f(dr.Label.State == s), string(s))
	}
	for _, v := range node.Verdicts {
		m(c.verdict, gauge, b2f(dr.Health.Verdict == v), string(v))
	}
	seen := map[[2]string]bool{}
	for _, r := range dr.Health.Reasons {
		k := [2]string{r.Rule, string(r.Severity)}
		if !seen[k] {
			seen[k] = true
			m(c.reason, gauge, 1, r.Rule, string(r.Severity))
		}
	}
	if dr.Locate != nil {
		m(c.locate, gauge, b2f(*dr.Locate))
	}
	if j := dr.Job; j != nil {
		k := string(j.Kind)
		for _, s := range node.JobStates {
			m(c.jobState, gauge, b2f(j.State == s), k, string(s))
		}
		m(c.jobDone, gauge, float64(j.DoneBytes), k)
		m(c.jobTotal, gauge, float64(j.TotalBytes), k)
		m(c.jobRatio, gauge, j.Ratio(), k)
		m(c.jobETA, gauge, j.ETASeconds, k)
	}
	m(c.polls, counter, float64(dr.Polls))
	m(c.pollErrors, counter, float64(dr.PollErrors))
	if s := dr.SMART; s != nil {
		m(c.pollDuration, gauge, s.DurationSeconds)
		m(c.exitStatus, gauge, float64(s.ExitStatus))
		for bit, name := range ExitBits {
			m(c.exitFlag, gauge, float64((s.ExitStatus>>bit)&1), name)
		}
		m(c.smartAsleep, gauge, b2f(s.Asleep))
		m(c.smartSupported, gauge, b2f(!s.Unsupported))
		if s.Passed != nil {
			m(c.smartPassed, gauge, b2f(*s.Passed))
		}
		if s.TemperatureCelsius != nil {
			m(c.temp, gauge, *s.TemperatureCelsius)
		}
		if s.PowerOnSeconds != nil {
			m(c.powerOn, counter, *s.PowerOnSeconds)
		}
		if s.PowerCycles != nil {
			m(c.powerCycles, counter, *s.PowerCycles)
		}
		seenAttr := map[int]bool{}
		for _, a := range s.ATA {
			if seenAttr[a.ID] {
				continue
			}
			seenAttr[a.ID] = true
			aid := strconv.Itoa(a.ID)
			m(c.ataValue, gauge, float64(a.Value), aid, a.Name)
			m(c.ataWorst, gauge, float64(a.Worst), aid, a.Name)
			m(c.ataThresh, gauge, float64(a.Threshold), aid, a.Name)
			m(c.ataRaw, gauge, float64(a.Raw), aid, a.Name)
		}
		if n := s.NVMe; n != nil {
			m(c.nvmeWarn, gauge, float64(n.CriticalWarning))
			m(c.nvmeSpare, gauge, float64(n.AvailableSpare)/100)
			m(c.nvmeSpareThresh, gauge, float64(n.AvailableSpareThreshold)/100)
			m(c.nvmeUsed, gauge, float64(n.PercentageUsed)/100)
			m(c.nvmeMedia, counter, float64(n.MediaErrors))
			m(c.nvmeErrLog, counter, float64(n.ErrorLogEntries))
			m(c.nvmeRead, counter, float64(n.DataReadBytes))
			m(c.nvmeWritten, counter, float64(n.DataWrittenBytes))
			m(c.nvmeUnsafe, counter, float64(n.UnsafeShutdowns))
		}
		if sc := s.SCSI; sc != nil {
			m(c.scsiGrown, gauge, float64(sc.GrownDefects))
			for _, op := range []struct {
				op             string
				unc, cor, proc uint64
				hasProcessed   bool
			}{
				{"read", sc.ReadUncorrectedErrors, sc.ReadCorrectedErrors, sc.ReadProcessedBytes, true},
				{"write", sc.WriteUncorrectedErrors, sc.WriteCorrectedErrors, sc.WriteProcessedBytes, true},
				{"verify", sc.VerifyUncorrectedErrors, sc.VerifyCorrectedErrors, 0, false},
			} {
				m(c.scsiUncorrected, counter, float64(op.unc), op.op)
				m(c.scsiCorrected, counter, float64(op.cor), op.op)
				if op.hasProcessed {
					m(c.scsiProcessed, counter, float64(op.proc), op.op)
				}
			}
			m(c.scsiNonMedium, counter, float64(sc.NonMediumErrors))
		}
		if st := s.SelfTest; st != nil {
			if st.LatestPassed != nil {
				m(c.selfTestPassed, gauge, b2f(*st.LatestPassed))
			}
			m(c.selfTestFailed, gauge, float64(st.Failed))
			m(c.selfTests, gauge, float64(st.Total))
		}
	}
	if st := dr.Stats; st != nil {
		m(c.reads, counter, float64(st.ReadCompletedTotal))
		m(c.writes, counter, float64(st.WriteCompletedTotal))
		m(c.readBytes, counter, float64(st.ReadBytesTotal))
		m(c.writeBytes, counter, float64(st.WriteBytesTotal))
		m(c.ioTime, counter, st.IOTimeSecondsTotal)
		m(c.readTime, counter, st.ReadTimeSecondsTotal)
		m(c.writeTime, counter, st.WriteTimeSecondsTotal)
		m(c.readIOPS, gauge, st.ReadIOPS)
		m(c.writeIOPS, gauge, st.WriteIOPS)
		m(c.readBps, gauge, st.ReadBytesPerSecond)
		m(c.writeBps, gauge, st.WriteBytesPerSecond)
		m(c.readLat, gauge, st.ReadLatencySeconds)
		m(c.writeLat, gauge, st.WriteLatencySeconds)
		m(c.util, gauge, st.Utilisation)
		m(c.inFlight, gauge, st.InFlight)
		m(c.outlier, gauge, b2f(st.Outlier))
	}
}

// Metrics is hwmgr's registry: the drive collector plus the Go runtime
// and process collectors.
type Metrics struct {
	Registry *prometheus.Registry
}

// New returns a registry with the collector for src registered.
func New(src Source) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return &Metrics{Registry: reg}, nil
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}
