package smart

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrNotSmartctl is returned by Parse for JSON that is not smartctl output
// (no "smartctl" section).
var ErrNotSmartctl = errors.New("not smartctl --json output")

// asleepRE matches the message smartctl -n prints when it stops for a
// drive in a low-power mode: "Device is in STANDBY mode, exit(2)" or
// "Device is in STANDBY (OS) mode, exit(2)".
var asleepRE = regexp.MustCompile(`Device is in (.+?) mode(?:, exit\(\d+\))?`)

// unsupportedMarkers are smartctl's words for a device without SMART.
var unsupportedMarkers = []string{
	"lacks SMART capability",
	"SMART support is: Unavailable",
	"SMART Disabled",
	"does not support SMART",
}

// Parse decodes one `smartctl --json` output into a Record. It accepts
// output of any smartctl 7.x run (-a, -x, -i -H -A ...). A field of the
// wrong JSON type, a negative count or broken JSON is an error that names
// the field; numbers too large for 64 bits (NVMe's 128-bit counters)
// saturate at the largest uint64.
func Parse(data []byte) (*Record, error) {
	var in rawOutput
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&in); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("smart: parse: at byte %d: %w", se.Offset, err)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, fmt.Errorf("smart: parse: field %q at byte %d: %w", te.Field, te.Offset, err)
		}
		return nil, fmt.Errorf("smart: parse: %w", err)
	}
	if in.Smartctl == nil {
		return nil, fmt.Errorf("smart: parse: %w", ErrNotSmartctl)
	}
	p := &parser{}
	rec := p.record(&in)
	if p.err != nil {
		return nil, fmt.Errorf("smart: parse: %w", p.err)
	}
	return rec, nil
}

// parser carries the first number error through the normalization.
type parser struct{ err error }

func (p *parser) u64(field string, n *jnum) *uint64 {
	if n == nil || !n.set {
		return nil
	}
	v, err := n.uint64()
	if err != nil {
		if p.err == nil {
			p.err = fmt.Errorf("field %s: %w", field, err)
		}
		return nil
	}
	return &v
}

func (p *parser) u(field string, n *jnum) uint64 {
	if v := p.u64(field, n); v != nil {
		return *v
	}
	return 0
}

func (p *parser) i64(field string, n *jnum) *int64 {
	if n == nil || !n.set {
		return nil
	}
	v, err := n.int64()
	if err != nil {
		if p.err == nil {
			p.err = fmt.Errorf("field %s: %w", field, err)
		}
		return nil
	}
	return &v
}

func (p *parser) int(field string, n *jnum) int {
	v := p.i64(field, n)
	if v == nil {
		return 0
	}
	if *v > math.MaxInt32 || *v < math.MinInt32 {
		if p.err == nil {
			p.err = fmt.Errorf("field %s: %d out of range", field, *v)
		}
		return 0
	}
	return int(*v)
}

func (p *parser) record(in *rawOutput) *Record {
	r := &Record{}
	sc := in.Smartctl
	r.ExitStatus = ExitStatus(p.u("smartctl.exit_status", sc.ExitStatus) & 0xff)
	if len(sc.Version) > 0 {
		parts := make([]string, len(sc.Version))
		for i := range sc.Version {
			parts[i] = strconv.FormatUint(p.u("smartctl.version", &sc.Version[i]), 10)
		}
		r.SmartctlVersion = strings.Join(parts, ".")
	}
	for _, m := range sc.Messages {
		r.Messages = append(r.Messages, Message{Text: m.String, Severity: m.Severity})
	}
	if in.LocalTime != nil {
		if t := p.i64("local_time.time_t", in.LocalTime.TimeT); t != nil {
			r.Time = *t
		}
	}
	if d := in.Device; d != nil {
		r.Device = Device{Name: d.Name, InfoName: d.InfoName, Type: d.Type, Protocol: Protocol(d.Protocol)}
	}
	if s := in.SmartSupport; s != nil {
		r.SMARTAvailable = s.Available
		r.SMARTEnabled = s.Enabled
	}
	if s := in.SmartStatus; s != nil {
		r.Passed = s.Passed
	}
	r.Identity = p.identity(in)
	r.Temperature = p.temperature(in)
	if in.PowerOnTime != nil {
		r.PowerOnHours = p.u64("power_on_time.hours", in.PowerOnTime.Hours)
	}
	r.PowerCycles = p.u64("power_cycle_count", in.PowerCycleCount)
	r.ATA = p.ata(in)
	r.NVMe = p.nvme(in)
	r.SCSI = p.scsi(in)
	if r.NVMe != nil {
		if r.PowerOnHours == nil {
			v := r.NVMe.PowerOnHours
			r.PowerOnHours = &v
		}
		if r.PowerCycles == nil {
			v := r.NVMe.PowerCycles
			r.PowerCycles = &v
		}
	}
	r.SelfTests = p.selfTests(in)
	r.Status, r.Asleep = status(r, in)
	return r
}

// status decides what smartctl managed: asleep beats unsupported beats
// error beats ok.
func status(r *Record, in *rawOutput) (Status, string) {
	for _, m := range r.Messages {
		if sm := asleepRE.FindStringSubmatch(m.Text); sm != nil {
			return StatusAsleep, sm[1]
		}
	}
	for _, m := range r.Messages {
		for _, mk := range unsupportedMarkers {
			if strings.Contains(m.Text, mk) {
				return StatusUnsupported, ""
			}
		}
	}
	if r.SMARTAvailable != nil && !*r.SMARTAvailable {
		return StatusUnsupported, ""
	}
	hasData := r.Passed != nil || r.ATA != nil || r.NVMe != nil || r.SCSI != nil
	if r.SMARTEnabled != nil && !*r.SMARTEnabled && !hasData {
		return StatusUnsupported, "" // SMART switched off and nothing read
	}
	if r.ExitStatus&(ExitCommandLine|ExitDeviceOpen) != 0 {
		return StatusError, ""
	}
	if !hasData {
		return StatusError, ""
	}
	return StatusOK, ""
}

func (p *parser) identity(in *rawOutput) Identity {
	id := Identity{
		Model:       first(in.ModelName, in.SCSIModelName),
		ModelFamily: in.ModelFamily,
		Serial:      in.SerialNumber,
		Firmware:    first(in.FirmwareVersion, in.SCSIRevision, in.Revision),
		Vendor:      first(in.SCSIVendor, in.Vendor),
		FormFactor:  "",
	}
	if id.Model == "" {
		vendor, product := first(in.SCSIVendor, in.Vendor), first(in.SCSIProduct, in.Product)
		id.Model = strings.TrimSpace(vendor + " " + product)
	}
	switch {
	case in.WWN != nil:
		naa, oui, ext := p.u("wwn.naa", in.WWN.NAA), p.u("wwn.oui", in.WWN.OUI), p.u("wwn.id", in.WWN.ID)
		id.WWN = fmt.Sprintf("0x%016x", naa<<60|(oui&0xffffff)<<36|(ext&0xfffffffff))
	case in.LogicalUnitID != "":
		id.WWN = strings.ToLower(in.LogicalUnitID)
	case len(in.NVMeNamespaces) > 0 && in.NVMeNamespaces[0].EUI64 != nil:
		e := in.NVMeNamespaces[0].EUI64
		oui, ext := p.u("nvme_namespaces[0].eui64.oui", e.OUI), p.u("nvme_namespaces[0].eui64.ext_id", e.ExtID)
		id.WWN = fmt.Sprintf("0x%016x", (oui&0xffffff)<<40|(ext&0xffffffffff))
	}
	if id.Vendor == "" && in.NVMePCIVendor != nil {
		if v := p.u64("nvme_pci_vendor.id", in.NVMePCIVendor.ID); v != nil {
			id.Vendor = fmt.Sprintf("0x%04x", *v)
		}
	}
	if in.UserCapacity != nil {
		id.CapacityBytes = p.u64("user_capacity.bytes", in.UserCapacity.Bytes)
	}
	if id.CapacityBytes == nil {
		id.CapacityBytes = p.u64("nvme_total_capacity", in.NVMeTotalCapacity)
	}
	id.LogicalBlock = p.u64("logical_block_size", in.LogicalBlockSize)
	id.PhysicalBlock = p.u64("physical_block_size", in.PhysicalBlockSize)
	id.RotationRate = p.u64("rotation_rate", in.RotationRate)
	if in.FormFactor != nil {
		id.FormFactor = in.FormFactor.Name
	}
	switch {
	case in.SATAVersion != nil:
		id.Transport = in.SATAVersion.String
		if in.InterfaceSpeed != nil && in.InterfaceSpeed.Current != nil && in.InterfaceSpeed.Current.String != "" {
			id.Transport += ", " + in.InterfaceSpeed.Current.String
		}
	case in.SCSITransport != nil:
		id.Transport = in.SCSITransport.Name
	case in.NVMeVersion != nil && in.NVMeVersion.String != "":
		id.Transport = "NVMe " + in.NVMeVersion.String
	}
	if in.DeviceType != nil {
		id.SCSIDeviceType = in.DeviceType.Name
	}
	return id
}

func (p *parser) temperature(in *rawOutput) Temperature {
	var t Temperature
	if rt := in.Temperature; rt != nil {
		t.Current = p.i64("temperature.current", rt.Current)
		t.DriveTrip = p.i64("temperature.drive_trip", rt.DriveTrip)
		t.OpLimitMax = p.i64("temperature.op_limit_max", rt.OpLimitMax)
		t.LimitMax = p.i64("temperature.limit_max", rt.LimitMax)
		t.LifetimeMax = p.i64("temperature.lifetime_max", rt.LifetimeMax)
		t.PowerCycleMax = p.i64("temperature.power_cycle_max", rt.PowerCycleMax)
	}
	if l := in.NVMeLog; l != nil {
		if t.Current == nil {
			t.Current = p.i64("nvme_smart_health_information_log.temperature", l.Temperature)
		}
		for i := range l.TemperatureSensors {
			if v := p.i64("nvme_smart_health_information_log.temperature_sensors", &l.TemperatureSensors[i]); v != nil {
				t.Sensors = append(t.Sensors, *v)
			}
		}
	}
	return t
}

func (p *parser) ata(in *rawOutput) *ATA {
	if in.ATAAttributes == nil && in.ATAErrorLog == nil {
		return nil
	}
	a := &ATA{}
	if in.ATAAttributes != nil {
		for i, ra := range in.ATAAttributes.Table {
			f := fmt.Sprintf("ata_smart_attributes.table[%d]", i)
			at := Attribute{
				ID:         p.int(f+".id", ra.ID),
				Name:       ra.Name,
				Value:      p.int(f+".value", ra.Value),
				Worst:      p.int(f+".worst", ra.Worst),
				Thresh:     p.int(f+".thresh", ra.Thresh),
				WhenFailed: ra.WhenFailed,
			}
			if ra.Raw != nil {
				at.Raw = p.u(f+".raw.value", ra.Raw.Value)
				at.RawString = ra.Raw.String
			}
			if ra.Flags != nil {
				at.Flags = strings.TrimSpace(ra.Flags.String)
				at.Prefail = ra.Flags.Prefailure
			}
			a.Attributes = append(a.Attributes, at)
		}
		slices.SortStableFunc(a.Attributes, func(x, y Attribute) int { return x.ID - y.ID })
	}
	if el := in.ATAErrorLog; el != nil {
		switch {
		case el.Extended != nil && el.Extended.Count != nil:
			a.ErrorLogCount = p.u64("ata_smart_error_log.extended.count", el.Extended.Count)
		case el.Summary != nil && el.Summary.Count != nil:
			a.ErrorLogCount = p.u64("ata_smart_error_log.summary.count", el.Summary.Count)
		}
	}
	return a
}

func (p *parser) nvme(in *rawOutput) *NVMe {
	l := in.NVMeLog
	if l == nil {
		return nil
	}
	const f = "nvme_smart_health_information_log."
	n := &NVMe{
		AvailableSpare:          p.u(f+"available_spare", l.AvailableSpare),
		AvailableSpareThreshold: p.u(f+"available_spare_threshold", l.AvailableSpareThreshold),
		PercentageUsed:          p.u(f+"percentage_used", l.PercentageUsed),
		DataUnitsRead:           p.u(f+"data_units_read", l.DataUnitsRead),
		DataUnitsWritten:        p.u(f+"data_units_written", l.DataUnitsWritten),
		HostReads:               p.u(f+"host_reads", l.HostReads),
		HostWrites:              p.u(f+"host_writes", l.HostWrites),
		ControllerBusy:          p.u(f+"controller_busy_time", l.ControllerBusyTime),
		PowerCycles:             p.u(f+"power_cycles", l.PowerCycles),
		PowerOnHours:            p.u(f+"power_on_hours", l.PowerOnHours),
		UnsafeShutdowns:         p.u(f+"unsafe_shutdowns", l.UnsafeShutdowns),
		MediaErrors:             p.u(f+"media_errors", l.MediaErrors),
		ErrorLogEntries:         p.u(f+"num_err_log_entries", l.NumErrLogEntries),
		WarningTempTime:         p.u(f+"warning_temp_time", l.WarningTempTime),
		CriticalCompTime:        p.u(f+"critical_comp_time", l.CriticalCompTime),
		ControllerID:            p.u("nvme_controller_id", in.NVMeControllerID),
		Namespaces:              p.u("nvme_number_of_namespaces", in.NVMeNumNamespaces),
		UnallocatedBytes:        p.u64("nvme_unallocated_capacity", in.NVMeUnallocated),
	}
	cw := p.u(f+"critical_warning", l.CriticalWarning)
	if cw > 0xff {
		if p.err == nil {
			p.err = fmt.Errorf("field %scritical_warning: %d is not a byte", f, cw)
		}
	}
	n.CriticalWarning = uint8(cw)
	n.Warnings = DecodeCriticalWarning(n.CriticalWarning)
	if v := in.NVMePCIVendor; v != nil {
		n.PCIVendorID = p.u("nvme_pci_vendor.id", v.ID)
		n.PCISubsystemID = p.u("nvme_pci_vendor.subsystem_id", v.SubsystemID)
	}
	return n
}

func (p *parser) scsi(in *rawOutput) *SCSI {
	if in.SCSIGrownDefects == nil && in.SCSIErrorLog == nil && in.SCSIStartStop == nil {
		return nil
	}
	s := &SCSI{GrownDefects: p.u64("scsi_grown_defect_list", in.SCSIGrownDefects)}
	if el := in.SCSIErrorLog; el != nil {
		if el.Read != nil {
			s.ReadUncorrected = p.u64("scsi_error_counter_log.read.total_uncorrected_errors", el.Read.Uncorrected)
			s.ReadCorrected = p.u64("scsi_error_counter_log.read.total_errors_corrected", el.Read.Corrected)
		}
		if el.Write != nil {
			s.WriteUncorrected = p.u64("scsi_error_counter_log.write.total_uncorrected_errors", el.Write.Uncorrected)
			s.WriteCorrected = p.u64("scsi_error_counter_log.write.total_errors_corrected", el.Write.Corrected)
		}
		if el.Verify != nil {
			s.VerifyUncorrected = p.u64("scsi_error_counter_log.verify.total_uncorrected_errors", el.Verify.Uncorrected)
			s.VerifyCorrected = p.u64("scsi_error_counter_log.verify.total_errors_corrected", el.Verify.Corrected)
		}
	}
	if ss := in.SCSIStartStop; ss != nil {
		s.StartStopCycles = p.u64("scsi_start_stop_cycle_counter.accumulated_start_stop_cycles", ss.StartStop)
		s.LoadUnloadCycles = p.u64("scsi_start_stop_cycle_counter.accumulated_load_unload_cycles", ss.LoadUnload)
	}
	return s
}

// ATA self-test status, high nibble: 0 completed, 1 aborted by host,
// 2 interrupted by reset, 3 fatal error, 4 unknown failure, 5 electrical,
// 6 servo, 7 read, 8 handling damage, 15 in progress.
func ataSelfTestFailed(code int) bool { return code >= 3 && code <= 8 }

// SCSI self-test result: 0 completed, 1-2 aborted, 3 unknown error,
// 4-7 failed (segment), 15 in progress.
func scsiSelfTestFailed(code int) bool { return code >= 3 && code <= 7 }

// NVMe self-test result (log page 06h): 0 completed, 1-4 aborted,
// 5 fatal error, 6 unknown segment failed, 7 segments failed, 8-9 aborted.
func nvmeSelfTestFailed(code int) bool { return code >= 5 && code <= 7 }

func (p *parser) selfTests(in *rawOutput) *SelfTestLog {
	var log SelfTestLog
	found := false
	if sl := in.ATASelfTestLog; sl != nil {
		found = true
		tab := sl.Standard
		if sl.Extended != nil {
			tab = sl.Extended
		}
		if tab != nil {
			for i, e := range tab.Table {
				f := fmt.Sprintf("ata_smart_self_test_log.table[%d]", i)
				st := SelfTest{Hours: p.u64(f+".lifetime_hours", e.LifetimeHours), FailedLBA: p.u64(f+".lba", e.LBA)}
				if e.Type != nil {
					st.Type = e.Type.String
				}
				if e.Status != nil {
					st.Result = e.Status.String
					st.ResultCode = int(p.u(f+".status.value", e.Status.Value)>>4) & 0xf
					st.InProgress = st.ResultCode == 15
					st.Failed = ataSelfTestFailed(st.ResultCode)
					if e.Status.Passed != nil {
						st.Failed = !*e.Status.Passed
					}
				}
				log.Entries = append(log.Entries, st)
			}
		}
	}
	if sl := in.NVMeSelfTestLog; sl != nil {
		found = true
		for i, e := range sl.Table {
			f := fmt.Sprintf("nvme_self_test_log.table[%d]", i)
			st := SelfTest{Hours: p.u64(f+".power_on_hours", e.PowerOnHours), FailedLBA: p.u64(f+".lba", e.LBA)}
			if e.Code != nil {
				st.Type = e.Code.String
			}
			if e.Result != nil {
				st.Result = e.Result.String
				st.ResultCode = int(p.u(f+".self_test_result.value", e.Result.Value) & 0xf)
				st.Failed = nvmeSelfTestFailed(st.ResultCode)
			}
			log.Entries = append(log.Entries, st)
		}
	}
	for i := 0; i < 32; i++ {
		e, ok := in.SCSISelfTests[i]
		if !ok {
			continue
		}
		found = true
		f := fmt.Sprintf("scsi_self_test_%d", i)
		st := SelfTest{}
		if e.Code != nil {
			st.Type = e.Code.String
		}
		if e.Result != nil {
			st.Result = e.Result.String
			st.ResultCode = int(p.u(f+".result.value", e.Result.Value) & 0xf)
			st.InProgress = st.ResultCode == 15
			st.Failed = scsiSelfTestFailed(st.ResultCode)
		}
		if e.PowerOnTime != nil {
			st.Hours = p.u64(f+".power_on_time.hours", e.PowerOnTime.Hours)
		}
		if len(e.LBAFirstFailure) > 0 {
			var lba struct {
				Value *jnum `json:"value"`
			}
			var n jnum
			if json.Unmarshal(e.LBAFirstFailure, &n) == nil {
				lba.Value = &n
			} else if err := json.Unmarshal(e.LBAFirstFailure, &lba); err != nil && p.err == nil {
				p.err = fmt.Errorf("field %s.lba_first_failure: %w", f, err)
			}
			st.FailedLBA = p.u64(f+".lba_first_failure", lba.Value)
		}
		log.Entries = append(log.Entries, st)
	}
	if !found {
		return nil
	}
	for _, e := range log.Entries {
		if e.Failed {
			log.Failed++
		}
	}
	return &log
}

func first(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// jnum is a JSON number kept as text, so that 128-bit counters and
// numbers written as strings survive; null counts as absent.
type jnum struct {
	set bool
	s   string
}

func (n *jnum) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	} else if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return fmt.Errorf("%s is not a number", b)
	}
	n.set, n.s = true, s
	return nil
}

func (n *jnum) uint64() (uint64, error) {
	v, err := strconv.ParseUint(n.s, 10, 64)
	if err == nil {
		return v, nil
	}
	var bi big.Int
	if _, ok := bi.SetString(n.s, 10); ok {
		if bi.Sign() < 0 {
			return 0, fmt.Errorf("negative count %s", n.s)
		}
		return math.MaxUint64, nil // wider than 64 bits: saturate
	}
	return 0, fmt.Errorf("%q is not an unsigned integer", n.s)
}

func (n *jnum) int64() (int64, error) {
	v, err := strconv.ParseInt(n.s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer: %w", n.s, err)
	}
	return v, nil
}

// The raw smartctl JSON, only the parts the Record uses.
type rawOutput struct {
	Smartctl *struct {
		Version    []jnum `json:"version"`
		ExitStatus *jnum  `json:"exit_status"`
		Messages   []struct {
			String   string `json:"string"`
			Severity string `json:"severity"`
		} `json:"messages"`
	} `json:"smartctl"`
	LocalTime *struct {
		TimeT *jnum `json:"time_t"`
	} `json:"local_time"`
	Device *struct {
		Name     string `json:"name"`
		InfoName string `json:"info_name"`
		Type     string `json:"type"`
		Protocol string `json:"protocol"`
	} `json:"device"`
	DeviceType *struct {
		Name string `json:"name"`
	} `json:"device_type"`
	ModelFamily     string `json:"model_family"`
	ModelName       string `json:"model_name"`
	SerialNumber    string `json:"serial_number"`
	FirmwareVersion string `json:"firmware_version"`
	Vendor          string `json:"vendor"`
	Product         string `json:"product"`
	Revision        string `json:"revision"`
	SCSIVendor      string `json:"scsi_vendor"`
	SCSIProduct     string `json:"scsi_product"`
	SCSIModelName   string `json:"scsi_model_name"`
	SCSIRevision    string `json:"scsi_revision"`
	LogicalUnitID   string `json:"logical_unit_id"`
	WWN             *struct {
		NAA *jnum `json:"naa"`
		OUI *jnum `json:"oui"`
		ID  *jnum `json:"id"`
	} `json:"wwn"`
	UserCapacity *struct {
		Bytes *jnum `json:"bytes"`
	} `json:"user_capacity"`
	LogicalBlockSize  *jnum `json:"logical_block_size"`
	PhysicalBlockSize *jnum `json:"physical_block_size"`
	RotationRate      *jnum `json:"rotation_rate"`
	FormFactor        *struct {
		Name string `json:"name"`
	} `json:"form_factor"`
	SATAVersion *struct {
		String string `json:"string"`
	} `json:"sata_version"`
	InterfaceSpeed *struct {
		Current *struct {
			String string `json:"string"`
		} `json:"current"`
	} `json:"interface_speed"`
	SCSITransport *struct {
		Name string `json:"name"`
	} `json:"scsi_transport_protocol"`
	NVMeVersion *struct {
		String string `json:"string"`
	} `json:"nvme_version"`
	SmartSupport *struct {
		Available *bool `json:"available"`
		Enabled   *bool `json:"enabled"`
	} `json:"smart_support"`
	SmartStatus *struct {
		Passed *bool `json:"passed"`
	} `json:"smart_status"`
	Temperature *struct {
		Current       *jnum `json:"current"`
		DriveTrip     *jnum `json:"drive_trip"`
		OpLimitMax    *jnum `json:"op_limit_max"`
		LimitMax      *jnum `json:"limit_max"`
		LifetimeMax   *jnum `json:"lifetime_max"`
		PowerCycleMax *jnum `json:"power_cycle_max"`
	} `json:"temperature"`
	PowerOnTime *struct {
		Hours *jnum `json:"hours"`
	} `json:"power_on_time"`
	PowerCycleCount *jnum `json:"power_cycle_count"`

	ATAAttributes *struct {
		Table []struct {
			ID         *jnum  `json:"id"`
			Name       string `json:"name"`
			Value      *jnum  `json:"value"`
			Worst      *jnum  `json:"worst"`
			Thresh     *jnum  `json:"thresh"`
			WhenFailed string `json:"when_failed"`
			Flags      *struct {
				String     string `json:"string"`
				Prefailure bool   `json:"prefailure"`
			} `json:"flags"`
			Raw *struct {
				Value  *jnum  `json:"value"`
				String string `json:"string"`
			} `json:"raw"`
		} `json:"table"`
	} `json:"ata_smart_attributes"`
	ATAErrorLog *struct {
		Summary *struct {
			Count *jnum `json:"count"`
		} `json:"summary"`
		Extended *struct {
			Count *jnum `json:"count"`
		} `json:"extended"`
	} `json:"ata_smart_error_log"`
	ATASelfTestLog *struct {
		Standard *rawATASelfTests `json:"standard"`
		Extended *rawATASelfTests `json:"extended"`
	} `json:"ata_smart_self_test_log"`

	NVMeLog *struct {
		CriticalWarning         *jnum  `json:"critical_warning"`
		Temperature             *jnum  `json:"temperature"`
		AvailableSpare          *jnum  `json:"available_spare"`
		AvailableSpareThreshold *jnum  `json:"available_spare_threshold"`
		PercentageUsed          *jnum  `json:"percentage_used"`
		DataUnitsRead           *jnum  `json:"data_units_read"`
		DataUnitsWritten        *jnum  `json:"data_units_written"`
		HostReads               *jnum  `json:"host_reads"`
		HostWrites              *jnum  `json:"host_writes"`
		ControllerBusyTime      *jnum  `json:"controller_busy_time"`
		PowerCycles             *jnum  `json:"power_cycles"`
		PowerOnHours            *jnum  `json:"power_on_hours"`
		UnsafeShutdowns         *jnum  `json:"unsafe_shutdowns"`
		MediaErrors             *jnum  `json:"media_errors"`
		NumErrLogEntries        *jnum  `json:"num_err_log_entries"`
		WarningTempTime         *jnum  `json:"warning_temp_time"`
		CriticalCompTime        *jnum  `json:"critical_comp_time"`
		TemperatureSensors      []jnum `json:"temperature_sensors"`
	} `json:"nvme_smart_health_information_log"`
	NVMePCIVendor *struct {
		ID          *jnum `json:"id"`
		SubsystemID *jnum `json:"subsystem_id"`
	} `json:"nvme_pci_vendor"`
	NVMeControllerID  *jnum `json:"nvme_controller_id"`
	NVMeNumNamespaces *jnum `json:"nvme_number_of_namespaces"`
	NVMeTotalCapacity *jnum `json:"nvme_total_capacity"`
	NVMeUnallocated   *jnum `json:"nvme_unallocated_capacity"`
	NVMeNamespaces    []struct {
		EUI64 *struct {
			OUI   *jnum `json:"oui"`
			ExtID *jnum `json:"ext_id"`
		} `json:"eui64"`
	} `json:"nvme_namespaces"`
	NVMeSelfTestLog *struct {
		Table []struct {
			Code *struct {
				String string `json:"string"`
			} `json:"self_test_code"`
			Result *struct {
				Value  *jnum  `json:"value"`
				String string `json:"string"`
			} `json:"self_test_result"`
			PowerOnHours *jnum `json:"power_on_hours"`
			LBA          *jnum `json:"lba"`
		} `json:"table"`
	} `json:"nvme_self_test_log"`

	SCSIGrownDefects *jnum `json:"scsi_grown_defect_list"`
	SCSIErrorLog     *struct {
		Read   *rawSCSICounters `json:"read"`
		Write  *rawSCSICounters `json:"write"`
		Verify *rawSCSICounters `json:"verify"`
	} `json:"scsi_error_counter_log"`
	SCSIStartStop *struct {
		StartStop  *jnum `json:"accumulated_start_stop_cycles"`
		LoadUnload *jnum `json:"accumulated_load_unload_cycles"`
	} `json:"scsi_start_stop_cycle_counter"`
	// SCSISelfTests collects the scsi_self_test_N objects.
	SCSISelfTests map[int]rawSCSISelfTest `json:"-"`
}

type rawATASelfTests struct {
	Table []struct {
		Type *struct {
			String string `json:"string"`
		} `json:"type"`
		Status *struct {
			Value  *jnum  `json:"value"`
			String string `json:"string"`
			Passed *bool  `json:"passed"`
		} `json:"status"`
		LifetimeHours *jnum `json:"lifetime_hours"`
		LBA           *jnum `json:"lba"`
	} `json:"table"`
}

type rawSCSICounters struct {
	Corrected   *jnum `json:"total_errors_corrected"`
	Uncorrected *jnum `json:"total_uncorrected_errors"`
}

type rawSCSISelfTest struct {
	Code *struct {
		String string `json:"string"`
	} `json:"code"`
	Result *struct {
		Value  *jnum  `json:"value"`
		String string `json:"string"`
	} `json:"result"`
	PowerOnTime *struct {
		Hours *jnum `json:"hours"`
	} `json:"power_on_time"`
	// LBAFirstFailure is a number or {"value": N}.
	LBAFirstFailure json.RawMessage `json:"lba_first_failure"`
}

// UnmarshalJSON decodes the known fields and then picks the numbered
// scsi_self_test_N objects out of the top level.
func (o *rawOutput) UnmarshalJSON(b []byte) error {
	type plain rawOutput
	if err := json.Unmarshal(b, (*plain)(o)); err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(`"scsi_self_test_`)) {
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return err
	}
	for k, v := range top {
		rest, ok := strings.CutPrefix(k, "scsi_self_test_")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(rest)
		if err != nil || i < 0 || i >= 32 {
			continue
		}
		var st rawSCSISelfTest
		if err := json.Unmarshal(v, &st); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if o.SCSISelfTests == nil {
			o.SCSISelfTests = map[int]rawSCSISelfTest{}
		}
		o.SCSISelfTests[i] = st
	}
	return nil
}
