// Package smart runs smartctl (smartmontools 7+) with --json and
// normalizes its output into one Record for ATA, SCSI and NVMe drives:
// identity, overall health, temperature, power-on hours, the ATA attribute
// table, the NVMe health log with decoded critical_warning bits, the SCSI
// grown defect list and error counters, the self-test log, and smartctl's
// own messages. smartctl's exit status is decoded as the bit mask it is; a
// drive in standby (smartctl -n standby) is reported as StatusAsleep and a
// device without SMART as StatusUnsupported, neither as a failure.
//
// The package holds no state: Parse turns bytes into a Record, and Runner
// executes smartctl for one device at a time.
package smart

import (
	"slices"
	"strings"
)

// Status says what smartctl managed to read.
type Status string

// The values of Status.
const (
	// StatusOK: smartctl read the drive's SMART data.
	StatusOK Status = "ok"
	// StatusAsleep: the drive was in standby or sleep and smartctl (run
	// with -n standby) left it alone. No data, and no failure either.
	StatusAsleep Status = "asleep"
	// StatusUnsupported: the device has no SMART (a virtual SCSI disk, a
	// USB bridge that hides it) or SMART is disabled.
	StatusUnsupported Status = "unsupported"
	// StatusError: smartctl could not read the device: it is missing, could
	// not be opened, the command line was wrong, or a mandatory command
	// failed. Messages says why.
	StatusError Status = "error"
)

// Protocol is the command set smartctl spoke to the device.
type Protocol string

// The values of Protocol.
const (
	ProtocolATA  Protocol = "ATA"
	ProtocolSCSI Protocol = "SCSI"
	ProtocolNVMe Protocol = "NVMe"
)

// Record is one smartctl run, normalized. Pointer fields are nil when
// smartctl did not report the value; zero is a real zero.
type Record struct {
	Status     Status     `json:"status"`
	ExitStatus ExitStatus `json:"exit_status"`
	// Asleep names the power mode that stopped smartctl ("STANDBY",
	// "SLEEP", "STANDBY (OS)") when Status is StatusAsleep.
	Asleep          string    `json:"asleep,omitempty"`
	Messages        []Message `json:"messages,omitempty"`
	SmartctlVersion string    `json:"smartctl_version,omitempty"`
	// Time is local_time.time_t: when smartctl ran (Unix seconds).
	Time int64 `json:"time,omitempty"`

	Device   Device   `json:"device"`
	Identity Identity `json:"identity"`

	SMARTAvailable *bool `json:"smart_available,omitempty"`
	SMARTEnabled   *bool `json:"smart_enabled,omitempty"`
	// Passed is the overall-health self-assessment (smart_status.passed).
	Passed *bool `json:"passed,omitempty"`

	Temperature  Temperature `json:"temperature"`
	PowerOnHours *uint64     `json:"power_on_hours,omitempty"`
	PowerCycles  *uint64     `json:"power_cycles,omitempty"`

	ATA  *ATA  `json:"ata,omitempty"`
	NVMe *NVMe `json:"nvme,omitempty"`
	SCSI *SCSI `json:"scsi,omitempty"`

	SelfTests *SelfTestLog `json:"self_tests,omitempty"`
}

// Message is one of smartctl's messages (smartctl.messages[]).
type Message struct {
	Text     string `json:"text"`
	Severity string `json:"severity,omitempty"` // information, warning, error
}

// Device is how smartctl addressed the device.
type Device struct {
	Name     string   `json:"name,omitempty"`      // /dev/sda
	InfoName string   `json:"info_name,omitempty"` // /dev/sda [SAT]
	Type     string   `json:"type,omitempty"`      // sat, scsi, nvme, megaraid,N
	Protocol Protocol `json:"protocol,omitempty"`
}

// Identity is what the drive says it is.
type Identity struct {
	Model       string `json:"model,omitempty"`
	ModelFamily string `json:"model_family,omitempty"`
	Serial      string `json:"serial,omitempty"`
	// WWN is the world wide name as 0x-prefixed hex (NAA for ATA and
	// SCSI, the first namespace's EUI-64 for NVMe).
	WWN      string `json:"wwn,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	// Vendor is the SCSI vendor string, or the NVMe PCI vendor id as
	// 0x-prefixed hex. ATA drives do not report one.
	Vendor        string  `json:"vendor,omitempty"`
	CapacityBytes *uint64 `json:"capacity_bytes,omitempty"`
	LogicalBlock  *uint64 `json:"logical_block_size,omitempty"`
	PhysicalBlock *uint64 `json:"physical_block_size,omitempty"`
	// RotationRate is in rpm; 0 means solid state. Nil when unreported
	// (NVMe never reports it).
	RotationRate *uint64 `json:"rotation_rate,omitempty"`
	FormFactor   string  `json:"form_factor,omitempty"`
	// Transport: the SATA version and link speed, the SCSI transport
	// protocol (SAS), or the NVMe version.
	Transport string `json:"transport,omitempty"`
	// SCSIDeviceType is the SCSI peripheral device type name (disk).
	SCSIDeviceType string `json:"scsi_device_type,omitempty"`
}

// Temperature in degrees Celsius.
type Temperature struct {
	Current *int64 `json:"current,omitempty"`
	// DriveTrip is the SCSI trip temperature.
	DriveTrip *int64 `json:"drive_trip,omitempty"`
	// OpLimitMax and LimitMax are the ATA SCT recommended and absolute
	// operating maxima.
	OpLimitMax    *int64  `json:"op_limit_max,omitempty"`
	LimitMax      *int64  `json:"limit_max,omitempty"`
	LifetimeMax   *int64  `json:"lifetime_max,omitempty"`
	PowerCycleMax *int64  `json:"power_cycle_max,omitempty"`
	Sensors       []int64 `json:"sensors,omitempty"` // NVMe temperature sensors
}

// Limit is the lowest reported maximum operating temperature, or nil.
func (t Temperature) Limit() *int64 {
	var lim *int64
	for _, p := range []*int64{t.OpLimitMax, t.DriveTrip, t.LimitMax} {
		if p != nil && *p > 0 && (lim == nil || *p < *lim) {
			lim = p
		}
	}
	return lim
}

// ATA holds the ATA-only data.
type ATA struct {
	// Attributes sorted by id.
	Attributes []Attribute `json:"attributes,omitempty"`
	// ErrorLogCount is the number of errors the drive ever logged
	// (ata_smart_error_log summary or extended count).
	ErrorLogCount *uint64 `json:"error_log_count,omitempty"`
}

// Attribute returns the attribute with this id.
func (a *ATA) Attribute(id int) (Attribute, bool) {
	if a == nil {
		return Attribute{}, false
	}
	i, ok := slices.BinarySearchFunc(a.Attributes, id, func(x Attribute, id int) int { return x.ID - id })
	if !ok {
		return Attribute{}, false
	}
	return a.Attributes[i], true
}

// Attribute is one row of the ATA SMART attribute table.
type Attribute struct {
	ID     int    `json:"id"`
	Name   string `json:"name,omitempty"`
	Value  int    `json:"value"`
	Worst  int    `json:"worst"`
	Thresh int    `json:"thresh"`
	// Raw is raw.value, the 48-bit raw counter as smartctl decodes it.
	Raw uint64 `json:"raw"`
	// RawString is raw.string as smartctl prints it ("34 (Min/Max 20/45)").
	RawString string `json:"raw_string,omitempty"`
	Flags     string `json:"flags,omitempty"` // "PO--CK"
	Prefail   bool   `json:"prefail,omitempty"`
	// WhenFailed is "", "now" or "past".
	WhenFailed string `json:"when_failed,omitempty"`
}

// Count is the attribute's event count: the raw value, unless the raw
// string shows several packed counters ("0 0 0", Seagate's 188) or an
// annotation ("34 (Min/Max 20/45)"), in which case it is the leading
// number of the raw string. The health policy compares Counts.
//
// Attribute 188 (Command_Timeout) is special: Seagate packs three 16-bit
// counters into its raw value (all timeouts, those over 5 s, those over
// 7.5 s) and smartctl often prints the packed number as one; a raw value
// wider than 16 bits counts as its low 16 bits, the total.
func (a Attribute) Count() uint64 {
	if a.ID == 188 && a.Raw > 0xffff && !strings.ContainsRune(a.RawString, ' ') {
		return a.Raw & 0xffff
	}
	s := a.RawString
	if s == "" {
		return a.Raw
	}
	var n uint64
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		d := uint64(s[digits] - '0')
		if n > (^uint64(0)-d)/10 {
			return a.Raw
		}
		n = n*10 + d
		digits++
	}
	if digits == 0 {
		return a.Raw
	}
	if digits == len(s) {
		return a.Raw // a plain number: the raw value is the same count
	}
	return n
}

// NVMe holds the NVMe SMART / health information log (log page 02h).
type NVMe struct {
	CriticalWarning uint8           `json:"critical_warning"`
	Warnings        CriticalWarning `json:"warnings"`
	// AvailableSpare and its threshold are percentages.
	AvailableSpare          uint64 `json:"available_spare"`
	AvailableSpareThreshold uint64 `json:"available_spare_threshold"`
	PercentageUsed          uint64 `json:"percentage_used"`
	// DataUnitsRead/Written are in units of 1000 512-byte blocks.
	DataUnitsRead    uint64  `json:"data_units_read"`
	DataUnitsWritten uint64  `json:"data_units_written"`
	HostReads        uint64  `json:"host_reads"`
	HostWrites       uint64  `json:"host_writes"`
	ControllerBusy   uint64  `json:"controller_busy_minutes"`
	PowerCycles      uint64  `json:"power_cycles"`
	PowerOnHours     uint64  `json:"power_on_hours"`
	UnsafeShutdowns  uint64  `json:"unsafe_shutdowns"`
	MediaErrors      uint64  `json:"media_errors"`
	ErrorLogEntries  uint64  `json:"error_log_entries"`
	WarningTempTime  uint64  `json:"warning_temp_minutes"`
	CriticalCompTime uint64  `json:"critical_temp_minutes"`
	PCIVendorID      uint64  `json:"pci_vendor_id,omitempty"`
	PCISubsystemID   uint64  `json:"pci_subsystem_id,omitempty"`
	ControllerID     uint64  `json:"controller_id,omitempty"`
	Namespaces       uint64  `json:"namespaces,omitempty"`
	UnallocatedBytes *uint64 `json:"unallocated_bytes,omitempty"`
}

// CriticalWarning is the NVMe critical_warning byte, one name per bit.
type CriticalWarning struct {
	SpareBelowThreshold    bool `json:"spare_below_threshold,omitempty"`  // bit 0
	Temperature            bool `json:"temperature,omitempty"`            // bit 1
	ReliabilityDegraded    bool `json:"reliability_degraded,omitempty"`   // bit 2
	ReadOnly               bool `json:"read_only,omitempty"`              // bit 3
	VolatileBackupFailed   bool `json:"volatile_backup_failed,omitempty"` // bit 4
	PersistentMemoryRegion bool `json:"pmr_read_only,omitempty"`          // bit 5
}

// DecodeCriticalWarning names the bits of an NVMe critical_warning byte.
func DecodeCriticalWarning(b uint8) CriticalWarning {
	return CriticalWarning{
		SpareBelowThreshold:    b&(1<<0) != 0,
		Temperature:            b&(1<<1) != 0,
		ReliabilityDegraded:    b&(1<<2) != 0,
		ReadOnly:               b&(1<<3) != 0,
		VolatileBackupFailed:   b&(1<<4) != 0,
		PersistentMemoryRegion: b&(1<<5) != 0,
	}
}

// SCSI holds the SCSI-only data.
type SCSI struct {
	GrownDefects *uint64 `json:"grown_defects,omitempty"`
	// Uncorrected read, write and verify errors from the error counter log.
	ReadUncorrected   *uint64 `json:"read_uncorrected,omitempty"`
	WriteUncorrected  *uint64 `json:"write_uncorrected,omitempty"`
	VerifyUncorrected *uint64 `json:"verify_uncorrected,omitempty"`
	ReadCorrected     *uint64 `json:"read_corrected,omitempty"`
	WriteCorrected    *uint64 `json:"write_corrected,omitempty"`
	VerifyCorrected   *uint64 `json:"verify_corrected,omitempty"`
	StartStopCycles   *uint64 `json:"start_stop_cycles,omitempty"`
	LoadUnloadCycles  *uint64 `json:"load_unload_cycles,omitempty"`
}

// SelfTestLog is the drive's self-test log, newest first.
type SelfTestLog struct {
	Entries []SelfTest `json:"entries,omitempty"`
	// Failed counts entries that failed (not those aborted by the host).
	Failed int `json:"failed"`
}

// Latest is the newest completed-or-failed entry, skipping ones in
// progress; ok is false when there is none.
func (l *SelfTestLog) Latest() (SelfTest, bool) {
	if l == nil {
		return SelfTest{}, false
	}
	for _, e := range l.Entries {
		if !e.InProgress {
			return e, true
		}
	}
	return SelfTest{}, false
}

// SelfTest is one entry of the self-test log.
type SelfTest struct {
	Type       string  `json:"type,omitempty"`   // Short offline, Extended, ...
	Result     string  `json:"result,omitempty"` // smartctl's words
	ResultCode int     `json:"result_code"`
	Failed     bool    `json:"failed,omitempty"`
	InProgress bool    `json:"in_progress,omitempty"`
	Hours      *uint64 `json:"hours,omitempty"` // power-on hours at the test
	FailedLBA  *uint64 `json:"failed_lba,omitempty"`
}
