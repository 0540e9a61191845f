package smart

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// tree is a smartctl JSON document decoded generically, independent of the
// typed parser: the oracle the fixture test checks the Record against.
type tree struct{ root any }

func loadTree(t *testing.T, data []byte) tree {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("generic decode: %v", err)
	}
	return tree{v}
}

// get walks a dotted path ("temperature.current", "table.3.id").
func (tr tree) get(path string) (any, bool) {
	cur := tr.root
	for _, k := range strings.Split(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[k]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

func (tr tree) str(path string) string {
	v, ok := tr.get(path)
	if !ok {
		return ""
	}
	s, _ := v.(string)
	return s
}

// num returns the number at path as text, or "" when absent.
func (tr tree) num(path string) string {
	v, ok := tr.get(path)
	if !ok {
		return ""
	}
	n, ok := v.(json.Number)
	if !ok {
		return ""
	}
	return n.String()
}

func ptrText[T any](p *T) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(*p)
}

func fixtureFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob("testdata/smartctl-json/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 126 {
		t.Fatalf("want the 126 smartctl_exporter fixtures, found %d", len(files))
	}
	return files
}

// TestParseFixtures parses every real smartctl output and checks each
// extracted field against the file's own value, read by a generic walk.
func TestParseFixtures(t *testing.T) {
	for _, f := range fixtureFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tr := loadTree(t, data)
			checkCommon(t, tr, rec)
			switch rec.Device.Protocol {
			case ProtocolATA:
				checkATA(t, tr, rec)
			case ProtocolNVMe:
				checkNVMe(t, tr, rec)
			case ProtocolSCSI:
				checkSCSI(t, tr, rec)
			default:
				t.Errorf("protocol %q", rec.Device.Protocol)
			}
			checkRoundTrip(t, rec)
		})
	}
}

func eq(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %q, want %q (file)", what, got, want)
	}
}

func checkCommon(t *testing.T, tr tree, rec *Record) {
	t.Helper()
	eq(t, "exit_status", strconv.Itoa(int(rec.ExitStatus)), tr.num("smartctl.exit_status"))
	eq(t, "device.protocol", string(rec.Device.Protocol), tr.str("device.protocol"))
	eq(t, "device.type", rec.Device.Type, tr.str("device.type"))
	eq(t, "device.name", rec.Device.Name, tr.str("device.name"))
	model := tr.str("model_name")
	if model == "" {
		model = tr.str("scsi_model_name")
	}
	eq(t, "model", rec.Identity.Model, model)
	eq(t, "model_family", rec.Identity.ModelFamily, tr.str("model_family"))
	eq(t, "serial_number", rec.Identity.Serial, tr.str("serial_number"))
	fw := tr.str("firmware_version")
	if fw == "" {
		fw = tr.str("scsi_revision")
	}
	eq(t, "firmware", rec.Identity.Firmware, fw)
	if v, ok := tr.get("smart_status.passed"); ok {
		eq(t, "smart_status.passed", ptrText(rec.Passed), fmt.Sprint(v))
	} else if rec.Passed != nil {
		t.Errorf("passed set without smart_status.passed")
	}
	eq(t, "temperature.current", ptrText(rec.Temperature.Current), tr.num("temperature.current"))
	eq(t, "temperature.drive_trip", ptrText(rec.Temperature.DriveTrip), tr.num("temperature.drive_trip"))
	eq(t, "power_on_time.hours", ptrText(rec.PowerOnHours), tr.num("power_on_time.hours"))
	if c := tr.num("power_cycle_count"); c != "" {
		eq(t, "power_cycle_count", ptrText(rec.PowerCycles), c)
	}
	if c := tr.num("user_capacity.bytes"); c != "" {
		eq(t, "user_capacity.bytes", ptrText(rec.Identity.CapacityBytes), c)
	} else {
		eq(t, "nvme_total_capacity", ptrText(rec.Identity.CapacityBytes), tr.num("nvme_total_capacity"))
	}
	eq(t, "rotation_rate", ptrText(rec.Identity.RotationRate), tr.num("rotation_rate"))
	eq(t, "logical_block_size", ptrText(rec.Identity.LogicalBlock), tr.num("logical_block_size"))
	eq(t, "form_factor", rec.Identity.FormFactor, tr.str("form_factor.name"))
	if v, ok := tr.get("smart_support.available"); ok {
		eq(t, "smart_support.available", ptrText(rec.SMARTAvailable), fmt.Sprint(v))
	}
	if naa := tr.num("wwn.naa"); naa != "" {
		n, _ := strconv.ParseUint(naa, 10, 64)
		o, _ := strconv.ParseUint(tr.num("wwn.oui"), 10, 64)
		id, _ := strconv.ParseUint(tr.num("wwn.id"), 10, 64)
		want := fmt.Sprintf("0x%x%06x%09x", n, o, id)
		eq(t, "wwn", rec.Identity.WWN, want)
	}
	// Every fixture carries SMART data.
	if rec.Status != StatusOK {
		t.Errorf("status %q, want ok", rec.Status)
	}
	vs, _ := tr.get("smartctl.version")
	if parts, ok := vs.([]any); ok {
		var s []string
		for _, p := range parts {
			s = append(s, fmt.Sprint(p))
		}
		eq(t, "smartctl.version", rec.SmartctlVersion, strings.Join(s, "."))
	}
}

func checkATA(t *testing.T, tr tree, rec *Record) {
	t.Helper()
	if rec.ATA == nil {
		t.Fatal("no ATA section")
	}
	rows, _ := tr.get("ata_smart_attributes.table")
	table, _ := rows.([]any)
	if len(table) == 0 || len(rec.ATA.Attributes) != len(table) {
		t.Fatalf("attributes: got %d, file has %d", len(rec.ATA.Attributes), len(table))
	}
	for i := range table {
		p := fmt.Sprintf("ata_smart_attributes.table.%d.", i)
		id, _ := strconv.Atoi(tr.num(p + "id"))
		a, ok := rec.ATA.Attribute(id)
		if !ok {
			t.Errorf("attribute %d missing", id)
			continue
		}
		w := fmt.Sprintf("attribute %d ", id)
		eq(t, w+"name", a.Name, tr.str(p+"name"))
		eq(t, w+"value", strconv.Itoa(a.Value), tr.num(p+"value"))
		eq(t, w+"worst", strconv.Itoa(a.Worst), tr.num(p+"worst"))
		eq(t, w+"thresh", strconv.Itoa(a.Thresh), tr.num(p+"thresh"))
		eq(t, w+"raw.value", strconv.FormatUint(a.Raw, 10), tr.num(p+"raw.value"))
		eq(t, w+"raw.string", a.RawString, tr.str(p+"raw.string"))
		eq(t, w+"when_failed", a.WhenFailed, tr.str(p+"when_failed"))
		pf, _ := tr.get(p + "flags.prefailure")
		eq(t, w+"prefailure", fmt.Sprint(a.Prefail), fmt.Sprint(pf))
		eq(t, w+"flags", a.Flags, strings.TrimSpace(tr.str(p+"flags.string")))
	}
	if c := tr.num("ata_smart_error_log.summary.count"); c != "" {
		eq(t, "ata error log count", ptrText(rec.ATA.ErrorLogCount), c)
	}
}

func checkNVMe(t *testing.T, tr tree, rec *Record) {
	t.Helper()
	n := rec.NVMe
	if n == nil {
		t.Fatal("no NVMe section")
	}
	const p = "nvme_smart_health_information_log."
	for field, got := range map[string]uint64{
		"critical_warning":          uint64(n.CriticalWarning),
		"available_spare":           n.AvailableSpare,
		"available_spare_threshold": n.AvailableSpareThreshold,
		"percentage_used":           n.PercentageUsed,
		"data_units_read":           n.DataUnitsRead,
		"data_units_written":        n.DataUnitsWritten,
		"host_reads":                n.HostReads,
		"host_writes":               n.HostWrites,
		"controller_busy_time":      n.ControllerBusy,
		"power_cycles":              n.PowerCycles,
		"power_on_hours":            n.PowerOnHours,
		"unsafe_shutdowns":          n.UnsafeShutdowns,
		"media_errors":              n.MediaErrors,
		"num_err_log_entries":       n.ErrorLogEntries,
	} {
		eq(t, field, strconv.FormatUint(got, 10), tr.num(p+field))
	}
	if len(rec.Temperature.Sensors) > 0 || tr.num(p+"temperature_sensors.0") != "" {
		for i, s := range rec.Temperature.Sensors {
			eq(t, "temperature_sensors", strconv.FormatInt(s, 10), tr.num(fmt.Sprintf("%stemperature_sensors.%d", p, i)))
		}
	}
	// smartctl decodes the bits itself in smart_status.nvme when any is
	// set: a second, independent oracle for DecodeCriticalWarning.
	for bit, got := range map[string]bool{
		"spare_below_threshold":                n.Warnings.SpareBelowThreshold,
		"temperature_above_or_below_threshold": n.Warnings.Temperature,
		"reliability_degraded":                 n.Warnings.ReliabilityDegraded,
		"media_read_only":                      n.Warnings.ReadOnly,
		"volatile_memory_backup_failed":        n.Warnings.VolatileBackupFailed,
		"persistent_memory_region_unreliable":  n.Warnings.PersistentMemoryRegion,
	} {
		if v, ok := tr.get("smart_status.nvme." + bit); ok {
			eq(t, bit, fmt.Sprint(got), fmt.Sprint(v))
		} else if got {
			t.Errorf("%s decoded but smartctl did not report it", bit)
		}
	}
	if v := tr.num("nvme_pci_vendor.id"); v != "" {
		id, _ := strconv.ParseUint(v, 10, 64)
		eq(t, "vendor", rec.Identity.Vendor, fmt.Sprintf("0x%04x", id))
	}
}

func checkSCSI(t *testing.T, tr tree, rec *Record) {
	t.Helper()
	s := rec.SCSI
	if s == nil {
		t.Fatal("no SCSI section")
	}
	eq(t, "grown defects", ptrText(s.GrownDefects), tr.num("scsi_grown_defect_list"))
	eq(t, "read uncorrected", ptrText(s.ReadUncorrected), tr.num("scsi_error_counter_log.read.total_uncorrected_errors"))
	eq(t, "write uncorrected", ptrText(s.WriteUncorrected), tr.num("scsi_error_counter_log.write.total_uncorrected_errors"))
	eq(t, "verify uncorrected", ptrText(s.VerifyUncorrected), tr.num("scsi_error_counter_log.verify.total_uncorrected_errors"))
	eq(t, "start-stop cycles", ptrText(s.StartStopCycles), tr.num("scsi_start_stop_cycle_counter.accumulated_start_stop_cycles"))
	eq(t, "load-unload cycles", ptrText(s.LoadUnloadCycles), tr.num("scsi_start_stop_cycle_counter.accumulated_load_unload_cycles"))
	eq(t, "vendor", rec.Identity.Vendor, tr.str("scsi_vendor"))
	eq(t, "transport", rec.Identity.Transport, tr.str("scsi_transport_protocol.name"))
	eq(t, "wwn", rec.Identity.WWN, strings.ToLower(tr.str("logical_unit_id")))
}

// checkRoundTrip: the Record survives JSON marshal and unmarshal whole.
func checkRoundTrip(t testing.TB, rec *Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("unmarshal own output: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(rec, &back) {
		b2, _ := json.Marshal(&back)
		t.Fatalf("round trip differs:\n got %s\nwant %s", b2, b)
	}
}

// TestGolden pins the whole normalized Record for one drive of each kind.
// Run with -update to rewrite the golden files after a deliberate change.
func TestGolden(t *testing.T) {
	cases := map[string]string{
		"ata-hdd":             "smartctl-json/sat-Seagate_Enterprise_Capacity_3.5_HDD-ST4000NM0035-1V4107-sdc.json",
		"ata-hdd-error-log":   "smartctl-json/HGST_HUS724020ALE640_28.json",
		"ata-ssd-exit4":       "smartctl-json/sat-Phison_Driven_SSDs-KINGSTON_SA400M8120G-sda.json",
		"sas":                 "smartctl-json/HITACHI_H109060SESUN600G_10.json",
		"nvme":                "smartctl-json/INTEL_SSDPE2KX080T8_1.json",
		"nvme-failing":        "smartctl-json/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json",
		"missing-device":      "captured/missing-device-sat.json",
		"unknown-device-type": "captured/unknown-device-type.json",
		"standby":             "synthetic/standby-ata.json",
		"standby-custom-exit": "synthetic/standby-os-custom-exit.json",
		"qemu-nvme-warning":   "captured/qemu-nvme-critical-warning.json",
		"qemu-sata-selftest":  "captured/qemu-sata-selftest.json",
		"qemu-virtio-scsi":    "captured/qemu-virtio-scsi.json",
		"megaraid":            "captured/megasas-megaraid0.json",
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", src))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(rec, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join("testdata", "golden", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s:\n%s", src, golden, got)
			}
		})
	}
}

func parseFile(t *testing.T, path string) *Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse %s: %v", path, err)
	}
	return rec
}

func TestStatus(t *testing.T) {
	cases := []struct {
		file   string
		status Status
		asleep string
		exit   ExitStatus
	}{
		{"captured/missing-device-sat.json", StatusError, "", ExitDeviceOpen},
		{"captured/unknown-device-type.json", StatusError, "", ExitCommandLine},
		{"synthetic/standby-ata.json", StatusAsleep, "STANDBY", ExitDeviceOpen},
		{"synthetic/standby-os-custom-exit.json", StatusAsleep, "STANDBY (OS)", ExitCommandLine | ExitDeviceOpen | ExitSMARTCommand},
		{"smartctl-json/sat-Phison_Driven_SSDs-KINGSTON_SA400M8120G-sda.json", StatusOK, "", ExitSMARTCommand},
		{"captured/loop-sat-standby.json", StatusAsleep, "SLEEP", ExitDeviceOpen},
		{"captured/qemu-nvme.json", StatusOK, "", 0},
		{"captured/qemu-nvme-before.json", StatusOK, "", 0},
		{"captured/qemu-nvme-critical-warning.json", StatusOK, "", ExitDiskFailing},
		{"captured/qemu-sata.json", StatusOK, "", ExitSMARTCommand},
		{"captured/qemu-sata-selftest.json", StatusOK, "", ExitSMARTCommand},
		{"captured/qemu-virtio-scsi.json", StatusUnsupported, "", ExitSMARTCommand},
		{"captured/scsi-debug.json", StatusOK, "", ExitSMARTCommand},
		{"captured/megasas-ld-scsi.json", StatusError, "", ExitDeviceOpen},
		{"captured/megasas-megaraid0.json", StatusUnsupported, "", ExitSMARTCommand},
		{"smartctl-json/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json", StatusOK, "", ExitDiskFailing},
	}
	captured, _ := filepath.Glob("testdata/captured/*.json")
	synthetic, _ := filepath.Glob("testdata/synthetic/*.json")
	if len(cases) < len(captured)+len(synthetic) {
		t.Errorf("%d cases for %d captured and synthetic files: add the new ones", len(cases), len(captured)+len(synthetic))
	}
	for _, c := range cases {
		rec := parseFile(t, filepath.Join("testdata", c.file))
		checkRoundTrip(t, rec)
		if rec.Status != c.status || rec.Asleep != c.asleep || rec.ExitStatus != c.exit {
			t.Errorf("%s: status %q asleep %q exit %v, want %q %q %v", c.file, rec.Status, rec.Asleep, rec.ExitStatus, c.status, c.asleep, c.exit)
		}
	}
}

func TestStatusUnsupported(t *testing.T) {
	// The words smartctl 7.3 prints for a virtio-scsi disk (exit 4).
	doc := `{"smartctl":{"version":[7,3],"messages":[{"string":"SMART support is: Unavailable - device lacks SMART capability.","severity":"information"}],"exit_status":4},
	"device":{"name":"/dev/sda","info_name":"/dev/sda","type":"scsi","protocol":"SCSI"},"scsi_vendor":"QEMU","scsi_product":"QEMU HARDDISK","scsi_revision":"2.5+"}`
	rec, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != StatusUnsupported {
		t.Fatalf("status %q, want unsupported", rec.Status)
	}
	if rec.Identity.Model != "QEMU QEMU HARDDISK" || rec.Identity.Firmware != "2.5+" {
		t.Errorf("identity %+v", rec.Identity)
	}
	// smart_support.available=false alone says the same.
	rec, err = Parse([]byte(`{"smartctl":{"exit_status":4},"smart_support":{"available":false}}`))
	if err != nil || rec.Status != StatusUnsupported {
		t.Fatalf("available=false: %v %v", rec, err)
	}
}

func TestExitStatusFlags(t *testing.T) {
	cases := map[ExitStatus][]string{
		0:    nil,
		2:    {"device_open_failed"},
		4:    {"smart_command_failed"},
		8:    {"disk_failing"},
		64:   {"error_log_has_errors"},
		0xc0: {"error_log_has_errors", "self_test_log_has_errors"},
		0xff: {"command_line", "device_open_failed", "smart_command_failed", "disk_failing",
			"prefail_below_threshold", "past_below_threshold", "error_log_has_errors", "self_test_log_has_errors"},
	}
	for e, want := range cases {
		if got := e.Flags(); !reflect.DeepEqual(got, want) {
			t.Errorf("%d: %v, want %v", e, got, want)
		}
		b, _ := json.Marshal(e)
		var back ExitStatus
		if err := json.Unmarshal(b, &back); err != nil || back != e {
			t.Errorf("%d: round trip %s -> %d (%v)", e, b, back, err)
		}
	}
	if !ExitStatus(0x48).Has(ExitDiskFailing) || ExitStatus(0x40).Has(ExitDiskFailing) {
		t.Error("Has")
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"empty":          ``,
		"not json":       `smartctl 7.3 2022-02-28`,
		"truncated":      `{"smartctl":{"exit_status":0},"model_name":"X`,
		"not smartctl":   `{"model_name":"X"}`,
		"array":          `[1,2]`,
		"negative count": `{"smartctl":{"exit_status":0},"power_cycle_count":-3}`,
		"string count":   `{"smartctl":{"exit_status":0},"power_on_time":{"hours":"many"}}`,
		"bool number":    `{"smartctl":{"exit_status":0},"temperature":{"current":true}}`,
		"cw not a byte":  `{"smartctl":{"exit_status":0},"nvme_smart_health_information_log":{"critical_warning":300}}`,
		"attr id huge":   `{"smartctl":{"exit_status":0},"ata_smart_attributes":{"table":[{"id":99999999999}]}}`,
		"wrong type":     `{"smartctl":{"exit_status":0},"ata_smart_attributes":{"table":{"id":5}}}`,
	}
	for name, doc := range cases {
		if rec, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: no error, got %+v", name, rec)
		}
	}
}

func TestParseWideCounters(t *testing.T) {
	// 128-bit NVMe counters beyond 2^64 saturate instead of failing.
	doc := `{"smartctl":{"exit_status":0},"device":{"protocol":"NVMe"},
	"nvme_smart_health_information_log":{"data_units_written":340282366920938463463374607431768211455,"media_errors":"12","critical_warning":5}}`
	rec, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if rec.NVMe.DataUnitsWritten != ^uint64(0) || rec.NVMe.MediaErrors != 12 {
		t.Errorf("%+v", rec.NVMe)
	}
	w := rec.NVMe.Warnings
	if !w.SpareBelowThreshold || w.Temperature || !w.ReliabilityDegraded || w.ReadOnly {
		t.Errorf("warnings %+v for 5", w)
	}
}

func TestAttributeCount(t *testing.T) {
	cases := []struct {
		a    Attribute
		want uint64
	}{
		{Attribute{Raw: 12, RawString: "12"}, 12},
		{Attribute{Raw: 4295032833, RawString: "1 1 1"}, 1},
		{Attribute{Raw: 0, RawString: "0 0 0"}, 0},
		{Attribute{Raw: 193273528354, RawString: "34 (Min/Max 20/45)"}, 34},
		{Attribute{Raw: 7, RawString: ""}, 7},
		{Attribute{Raw: 9, RawString: "(weird)"}, 9},
		// Seagate's packed 188: 12 timeouts, 0 over 5 s, 12 over 7.5 s.
		{Attribute{ID: 188, Raw: 51540393996, RawString: "51540393996"}, 12},
		{Attribute{ID: 188, Raw: 29, RawString: "29"}, 29},
		{Attribute{ID: 5, Raw: 51540393996, RawString: "51540393996"}, 51540393996},
	}
	for _, c := range cases {
		if got := c.a.Count(); got != c.want {
			t.Errorf("%+v: Count %d, want %d", c.a, got, c.want)
		}
	}
}

func TestSelfTestLogs(t *testing.T) {
	// Shapes as smartctl 7.3 (ATA, SCSI) and 7.4 (NVMe) write them.
	ata := `{"smartctl":{"exit_status":128},"device":{"protocol":"ATA"},
	"ata_smart_self_test_log":{"standard":{"revision":1,"table":[
	 {"type":{"value":1,"string":"Short offline"},"status":{"value":121,"string":"Completed: read failure","remaining_percent":90,"passed":false},"lifetime_hours":300,"lba":123456},
	 {"type":{"value":2,"string":"Extended offline"},"status":{"value":0,"string":"Completed without error","passed":true},"lifetime_hours":200}
	],"count":2,"error_count_total":1}}}`
	rec, err := Parse([]byte(ata))
	if err != nil {
		t.Fatal(err)
	}
	l := rec.SelfTests
	latest, ok := l.Latest()
	if !ok || !latest.Failed || latest.ResultCode != 7 || ptrText(latest.FailedLBA) != "123456" || l.Failed != 1 {
		t.Errorf("ATA: %+v", l)
	}
	scsi := `{"smartctl":{"exit_status":0},"device":{"protocol":"SCSI"},
	"scsi_self_test_0":{"code":{"value":1,"string":"Background short"},"result":{"value":0,"string":"Completed"},"power_on_time":{"hours":10,"aka":"accumulated_power_on_hours"}},
	"scsi_self_test_1":{"code":{"value":2,"string":"Background long"},"result":{"value":7,"string":"Failed in segment -->"},"failed_segment":{"value":3},"power_on_time":{"hours":5},"lba_first_failure":{"value":4096}}}`
	rec, err = Parse([]byte(scsi))
	if err != nil {
		t.Fatal(err)
	}
	l = rec.SelfTests
	latest, _ = l.Latest()
	if len(l.Entries) != 2 || latest.Failed || !l.Entries[1].Failed || ptrText(l.Entries[1].FailedLBA) != "4096" || l.Failed != 1 {
		t.Errorf("SCSI: %+v", l)
	}
	nvme := `{"smartctl":{"exit_status":0},"device":{"protocol":"NVMe"},
	"nvme_self_test_log":{"current_self_test_operation":{"value":0,"string":"No self-test in progress"},"table":[
	 {"self_test_code":{"value":1,"string":"Short"},"self_test_result":{"value":7,"string":"Completed: failed segments"},"power_on_hours":42}]}}`
	rec, err = Parse([]byte(nvme))
	if err != nil {
		t.Fatal(err)
	}
	if latest, ok := rec.SelfTests.Latest(); !ok || !latest.Failed || latest.Type != "Short" {
		t.Errorf("NVMe: %+v", rec.SelfTests)
	}
}
