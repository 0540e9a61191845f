package metrics

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/stowage/stowage/hwmgr/node"
)

// Doubles for the node's sources (the real ones need drives).

type drives struct{}

func (drives) Scan(context.Context) ([]node.Identity, error) {
	return []node.Identity{
		{Name: "sda", Serial: "ATA1", Model: "HDD", Vendor: "ACME", Transport: "sata", SizeBytes: 4e12, Rotational: true,
			Slot: &node.Slot{Enclosure: "0:0:1:0", Slot: "Slot 01", Bay: "1"}},
		{Name: "nvme0n1", Serial: "NV1", Model: "SSD", Transport: "nvme", SizeBytes: 1e12},
		{Name: "sdb", Serial: "SAS1", Model: "SASHDD", Transport: "sas", SizeBytes: 8e12, Rotational: true},
	}, nil
}

type smart struct{}

func ptr[T any](v T) *T { return &v }

func (smart) Read(_ context.Context, id node.Identity) (node.SMART, error) {
	switch id.Name {
	case "sda":
		return node.SMART{Protocol: "ATA", ExitStatus: 0x40, DurationSeconds: 0.25, Passed: ptr(true),
			TemperatureCelsius: ptr(41.0), PowerOnSeconds: ptr(3600.0 * 20000), PowerCycles: ptr(12.0),
			ATA: []node.ATAAttribute{
				{ID: 5, Name: "Reallocated_Sector_Ct", Value: 100, Worst: 100, Threshold: 10, Raw: 8},
				{ID: 197, Name: "Current_Pending_Sector", Value: 100, Worst: 100, Threshold: 0, Raw: 0},
			},
			SelfTest: &node.SelfTest{LatestPassed: ptr(false), LatestStatus: "read failure", Failed: 2, Total: 5}}, nil
	case "nvme0n1":
		return node.SMART{Protocol: "NVMe", Passed: ptr(false), TemperatureCelsius: ptr(35.0),
			NVMe: &node.NVMeHealth{CriticalWarning: 4, AvailableSpare: 9, AvailableSpareThreshold: 10, PercentageUsed: 103,
				MediaErrors: 3, DataReadBytes: 512000 * 1000, DataWrittenBytes: 512000 * 2000}}, nil
	}
	return node.SMART{Protocol: "SCSI", Passed: ptr(true), SCSI: &node.SCSIHealth{GrownDefects: 17, ReadUncorrectedErrors: 2}}, nil
}

type stats struct{}

func (stats) Sample(context.Context, []node.Identity) (map[string]node.Stats, error) {
	return map[string]node.Stats{"sda": {ReadIOPS: 120, ReadBytesPerSecond: 50e6, Utilisation: 0.9, ReadBytesTotal: 1 << 30,
		ReadLatencySeconds: 0.5, Outlier: true, OutlierReasons: []string{"read latency 5x the model median"}}}, nil
}

type policy struct{}

func (policy) Judge(d node.Drive, _ *node.SMART) node.Health {
	if d.Identity.Name == "nvme0n1" {
		return node.Health{Verdict: node.VerdictFail, Reasons: []node.Reason{
			{Rule: "nvme-critical-warning", Severity: node.VerdictFail, Detail: "bit 2"},
			{Rule: "nvme-spare", Severity: node.VerdictFail, Detail: "9 < 10"}}}
	}
	return node.Health{Verdict: node.VerdictOK}
}

func scrape(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	n := node.New(node.Config{Drives: drives{}, SMART: smart{}, Stats: stats{}, Health: policy{}, Info: node.Info{Hostname: "h", Version: "v1"}})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	n.PollSMART(ctx)
	if err := n.PollStats(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := New(n)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return srv.URL, string(b)
}

func TestScrapeIsLintClean(t *testing.T) {
	_, body := scrape(t)
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			name := strings.Fields(line)[2]
			if !strings.HasPrefix(name, "stowage_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
				t.Errorf("metric %s lacks the stowage_ prefix", name)
			}
		}
	}
}

func TestScrapeValues(t *testing.T) {
	url, _ := scrape(t)
	const want = `
# HELP stowage_smart_ata_attribute_raw ATA SMART attribute raw value.
# TYPE stowage_smart_ata_attribute_raw gauge
stowage_smart_ata_attribute_raw{device="sda",drive="ATA1",id="197",name="Current_Pending_Sector"} 0
stowage_smart_ata_attribute_raw{device="sda",drive="ATA1",id="5",name="Reallocated_Sector_Ct"} 8
# HELP stowage_smart_ata_attribute_threshold ATA SMART attribute failure threshold.
# TYPE stowage_smart_ata_attribute_threshold gauge
stowage_smart_ata_attribute_threshold{device="sda",drive="ATA1",id="197",name="Current_Pending_Sector"} 0
stowage_smart_ata_attribute_threshold{device="sda",drive="ATA1",id="5",name="Reallocated_Sector_Ct"} 10
# HELP stowage_smart_nvme_available_spare_ratio NVMe available spare capacity.
# TYPE stowage_smart_nvme_available_spare_ratio gauge
stowage_smart_nvme_available_spare_ratio{device="nvme0n1",drive="NV1"} 0.09
# HELP stowage_smart_nvme_used_ratio NVMe percentage used (endurance estimate) as a ratio; may exceed 1.
# TYPE stowage_smart_nvme_used_ratio gauge
stowage_smart_nvme_used_ratio{device="nvme0n1",drive="NV1"} 1.03
# HELP stowage_smart_nvme_critical_warning NVMe critical warning bit field (0 is healthy).
# TYPE stowage_smart_nvme_critical_warning gauge
stowage_smart_nvme_critical_warning{device="nvme0n1",drive="NV1"} 4
# HELP stowage_smart_nvme_data_written_bytes_total NVMe data units written, in bytes.
# TYPE stowage_smart_nvme_data_written_bytes_total counter
stowage_smart_nvme_data_written_bytes_total{device="nvme0n1",drive="NV1"} 1.024e+09
# HELP stowage_smart_scsi_grown_defects SCSI grown defect list length.
# TYPE stowage_smart_scsi_grown_defects gauge
stowage_smart_scsi_grown_defects{device="sdb",drive="SAS1"} 17
# HELP stowage_smart_power_on_seconds_total Power-on time.
# TYPE stowage_smart_power_on_seconds_total counter
stowage_smart_power_on_seconds_total{device="sda",drive="ATA1"} 7.2e+07
# HELP stowage_smart_self_test_failed Failed self-tests in the drive's self-test log.
# TYPE stowage_smart_self_test_failed gauge
stowage_smart_self_test_failed{device="sda",drive="ATA1"} 2
# HELP stowage_smart_self_test_latest_passed 1 if the newest completed self-test passed.
# TYPE stowage_smart_self_test_latest_passed gauge
stowage_smart_self_test_latest_passed{device="sda",drive="ATA1"} 0
# HELP stowage_drive_health_reason Health rules that fired (value 1).
# TYPE stowage_drive_health_reason gauge
stowage_drive_health_reason{device="nvme0n1",drive="NV1",rule="nvme-critical-warning",severity="fail"} 1
stowage_drive_health_reason{device="nvme0n1",drive="NV1",rule="nvme-spare",severity="fail"} 1
# HELP stowage_drive_outlier 1 if the drive is slow against drives of the same model.
# TYPE stowage_drive_outlier gauge
stowage_drive_outlier{device="sda",drive="ATA1"} 1
# HELP stowage_drive_utilisation_ratio Share of the last sampling interval the drive was busy.
# TYPE stowage_drive_utilisation_ratio gauge
stowage_drive_utilisation_ratio{device="sda",drive="ATA1"} 0.9
`
	if err := testutil.ScrapeAndCompare(url, strings.NewReader(want),
		"stowage_smart_ata_attribute_raw", "stowage_smart_ata_attribute_threshold", "stowage_smart_nvme_available_spare_ratio",
		"stowage_smart_nvme_used_ratio", "stowage_smart_nvme_critical_warning", "stowage_smart_nvme_data_written_bytes_total",
		"stowage_smart_scsi_grown_defects", "stowage_smart_power_on_seconds_total", "stowage_smart_self_test_failed",
		"stowage_smart_self_test_latest_passed", "stowage_drive_health_reason", "stowage_drive_outlier",
		"stowage_drive_utilisation_ratio"); err != nil {
		t.Fatal(err)
	}
}

func TestOneHotStateVerdictAndExitFlags(t *testing.T) {
	_, body := scrape(t)
	for _, want := range []string{
		`stowage_drive_health_verdict{device="nvme0n1",drive="NV1",verdict="fail"} 1`,
		`stowage_drive_health_verdict{device="nvme0n1",drive="NV1",verdict="ok"} 0`,
		`stowage_drive_health_verdict{device="sda",drive="ATA1",verdict="ok"} 1`,
		`stowage_drive_lifecycle_state{device="sda",drive="ATA1",state="unknown"} 1`,
		`stowage_drive_lifecycle_state{device="sda",drive="ATA1",state="new"} 0`,
		`stowage_smartctl_exit_flag{device="sda",drive="ATA1",flag="error_log_has_errors"} 1`,
		`stowage_smartctl_exit_flag{device="sda",drive="ATA1",flag="disk_failing"} 0`,
		`stowage_smartctl_exit_status{device="sda",drive="ATA1"} 64`,
		`stowage_smartctl_polls_total{device="sda",drive="ATA1"} 1`,
		`stowage_drive_info{bay="1",device="sda",drive="ATA1",enclosure="0:0:1:0",firmware="",model="HDD",serial="ATA1",slot="Slot 01",transport="sata",vendor="ACME",wwn="",zoned=""} 1`,
		`stowage_hwmgr_drives 3`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %s", want)
		}
	}
}
