// Package node is the core of the hwmgr daemon: the table of drives of this
// machine (identity, SMART, I/O stats, health verdict, lifecycle state and
// history), kept current by rescans and polls, with the operator actions
// that change a drive's state and a bounded ring of events.
//
// The node reads hardware only through small interfaces it owns
// (DriveSource, SMARTSource, StatsSource, HealthPolicy, LabelStore), so the
// daemon wires in the real discovery, smartctl, diskstats, health policy and
// on-drive label packages, and tests can supply their own.
package node

import (
	"errors"
	"time"
)

// State is a lifecycle state name as the on-drive label holds it
// ("new", "burnin", "ready", "in-service", "draining", "drained",
// "erasing", "retired", "failed", "foreign").
type State string

// Lifecycle states, as DESIGN.md names them.
const (
	StateNew       State = "new"
	StateBurnin    State = "burnin"
	StateReady     State = "ready"
	StateInService State = "in-service"
	StateDraining  State = "draining"
	StateDrained   State = "drained"
	StateErasing   State = "erasing"
	StateRetired   State = "retired"
	StateFailed    State = "failed"
	StateForeign   State = "foreign"
	// StateUnknown is reported while the label could not be read.
	StateUnknown State = "unknown"
)

// States lists every state in a stable order (for metrics).
var States = []State{StateNew, StateBurnin, StateReady, StateInService,
	StateDraining, StateDrained, StateErasing, StateRetired, StateFailed,
	StateForeign, StateUnknown}

// Action is an operator request on a drive.
type Action string

// Actions served by the API. ActionFail is internal: the health policy uses
// it to move a drive to failed.
const (
	ActionAdopt        Action = "adopt"
	ActionDrain        Action = "drain"
	ActionRetire       Action = "retire"
	ActionMarkRepaired Action = "mark-repaired"
	ActionLocateOn     Action = "locate-on"
	ActionLocateOff    Action = "locate-off"
	ActionFail         Action = "fail"
)

// Actions lists the actions the API accepts.
var Actions = []Action{ActionAdopt, ActionDrain, ActionRetire,
	ActionMarkRepaired, ActionLocateOn, ActionLocateOff}

// Errors returned by Node.Act; callers branch on them with errors.Is.
var (
	ErrNotFound          = errors.New("no such drive")
	ErrUnknownAction     = errors.New("unknown action")
	ErrSerialRequired    = errors.New("drive holds data: the request must name the drive's serial")
	ErrSerialMismatch    = errors.New("serial in the request does not match the drive")
	ErrInvalidTransition = errors.New("transition not allowed from the drive's state")
	ErrInService         = errors.New("drive is in service")
	ErrNoEnclosure       = errors.New("drive has no enclosure slot with a locate LED")
)

// Identity is what discovery knows about a drive.
type Identity struct {
	Name                string `json:"name"`               // kernel name: sda, nvme0n1, loop3
	DevPath             string `json:"dev_path"`           // /dev/sda
	ByID                string `json:"by_id,omitempty"`    // /dev/disk/by-id/...
	WWN                 string `json:"wwn,omitempty"`      // world wide name
	Serial              string `json:"serial,omitempty"`   // serial number
	Vendor              string `json:"vendor,omitempty"`   // vendor
	Model               string `json:"model,omitempty"`    // model
	Firmware            string `json:"firmware,omitempty"` // firmware revision
	SizeBytes           uint64 `json:"size_bytes"`
	LogicalSectorBytes  uint64 `json:"logical_sector_bytes,omitempty"`
	PhysicalSectorBytes uint64 `json:"physical_sector_bytes,omitempty"`
	Rotational          bool   `json:"rotational"`
	Transport           string `json:"transport,omitempty"` // sata, sas, nvme, virtio, usb, loop
	Zoned               string `json:"zoned,omitempty"`     // none, host-managed, host-aware
	ZoneSizeBytes       uint64 `json:"zone_size_bytes,omitempty"`
	ZoneCount           uint64 `json:"zone_count,omitempty"`
	MaxOpenZones        uint64 `json:"max_open_zones,omitempty"`
	MaxActiveZones      uint64 `json:"max_active_zones,omitempty"`
	Slot                *Slot  `json:"slot,omitempty"` // enclosure slot, where known
}

// ID is the drive's stable identifier in the API: its WWN, else its
// serial, else its kernel name.
func (i Identity) ID() string {
	switch {
	case i.WWN != "":
		return i.WWN
	case i.Serial != "":
		return i.Serial
	}
	return i.Name
}

// Slot is a drive's place in an enclosure (/sys/class/enclosure).
type Slot struct {
	Enclosure string `json:"enclosure"`     // enclosure device name, e.g. 0:0:12:0
	Slot      string `json:"slot"`          // slot directory name, e.g. "Slot 07"
	Bay       string `json:"bay,omitempty"` // the bay number or label printed on the chassis
	// LocatePath is the sysfs file that switches the locate LED
	// (…/enclosure/<encl>/<slot>/locate), including the sysfs root.
	LocatePath string `json:"-"`
}

// SMART is the node's view of one smartctl poll: the signals health policy
// and metrics use, plus the full normalized record for the API.
type SMART struct {
	Time            time.Time `json:"time"`
	DurationSeconds float64   `json:"duration_seconds"`
	// ExitStatus is smartctl's exit status; ExitFlags its decoded bits.
	ExitStatus int      `json:"exit_status"`
	ExitFlags  []string `json:"exit_flags,omitempty"`
	// Asleep: the drive was in standby and was not woken (-n standby).
	Asleep bool `json:"asleep,omitempty"`
	// Unsupported: the device lacks SMART (reported, not a failure).
	Unsupported bool   `json:"unsupported,omitempty"`
	Protocol    string `json:"protocol,omitempty"` // ATA, SCSI, NVMe

	Passed             *bool    `json:"passed,omitempty"`
	TemperatureCelsius *float64 `json:"temperature_celsius,omitempty"`
	PowerOnSeconds     *float64 `json:"power_on_seconds,omitempty"`
	PowerCycles        *float64 `json:"power_cycles,omitempty"`

	ATA  []ATAAttribute `json:"ata_attributes,omitempty"`
	NVMe *NVMeHealth    `json:"nvme,omitempty"`
	SCSI *SCSIHealth    `json:"scsi,omitempty"`

	SelfTest *SelfTest `json:"self_test,omitempty"`

	// Record is the full normalized record from the SMART package.
	Record any `json:"record,omitempty"`
}

// ATAAttribute is one row of the ATA SMART attribute table.
type ATAAttribute struct {
	ID        int    `json:"id"`
	Name      string `json:"name"`
	Value     int    `json:"value"`
	Worst     int    `json:"worst"`
	Threshold int    `json:"threshold"`
	Raw       int64  `json:"raw"`
}

// NVMeHealth is the NVMe SMART / health information log.
type NVMeHealth struct {
	CriticalWarning         uint64 `json:"critical_warning"`
	AvailableSpare          uint64 `json:"available_spare"`           // percent
	AvailableSpareThreshold uint64 `json:"available_spare_threshold"` // percent
	PercentageUsed          uint64 `json:"percentage_used"`
	MediaErrors             uint64 `json:"media_errors"`
	ErrorLogEntries         uint64 `json:"error_log_entries"`
	DataReadBytes           uint64 `json:"data_read_bytes"`
	DataWrittenBytes        uint64 `json:"data_written_bytes"`
	UnsafeShutdowns         uint64 `json:"unsafe_shutdowns"`
}

// SCSIHealth holds the SCSI defect list and error counter logs.
type SCSIHealth struct {
	GrownDefects             uint64 `json:"grown_defects"`
	ReadUncorrectedErrors    uint64 `json:"read_uncorrected_errors"`
	WriteUncorrectedErrors   uint64 `json:"write_uncorrected_errors"`
	VerifyUncorrectedErrors  uint64 `json:"verify_uncorrected_errors"`
	ReadCorrectedErrors      uint64 `json:"read_corrected_errors"`
	WriteCorrectedErrors     uint64 `json:"write_corrected_errors"`
	VerifyCorrectedErrors    uint64 `json:"verify_corrected_errors"`
	ReadProcessedBytes       uint64 `json:"read_processed_bytes"`
	WriteProcessedBytes      uint64 `json:"write_processed_bytes"`
	NonMediumErrors          uint64 `json:"non_medium_errors"`
	StartStopCycles          uint64 `json:"start_stop_cycles"`
	LoadUnloadCycles         uint64 `json:"load_unload_cycles"`
	AccumulatedStartStopSkip bool   `json:"-"`
}

// SelfTest summarises the drive's self-test log.
type SelfTest struct {
	// LatestPassed is the result of the newest completed self-test.
	LatestPassed *bool  `json:"latest_passed,omitempty"`
	LatestStatus string `json:"latest_status,omitempty"`
	// Failed counts the failed self-tests in the log.
	Failed int `json:"failed"`
	// Total counts the self-tests in the log.
	Total int `json:"total"`
}

// Verdict is the health policy's judgement of a drive.
type Verdict string

// Verdicts, from good to bad.
const (
	VerdictUnknown Verdict = "unknown"
	VerdictOK      Verdict = "ok"
	VerdictWarn    Verdict = "warn"
	VerdictFail    Verdict = "fail"
)

// Verdicts lists every verdict in a stable order (for metrics).
var Verdicts = []Verdict{VerdictUnknown, VerdictOK, VerdictWarn, VerdictFail}

// Health is a verdict with the reasons that led to it.
type Health struct {
	Verdict Verdict  `json:"verdict"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// Reason is one rule of the health policy that fired.
type Reason struct {
	Rule     string  `json:"rule"`     // e.g. "ata-5-reallocated"
	Severity Verdict `json:"severity"` // warn or fail
	Detail   string  `json:"detail"`
}

// Stats are a drive's I/O rates over the last sampling interval.
type Stats struct {
	ReadIOPS              float64  `json:"read_iops"`
	WriteIOPS             float64  `json:"write_iops"`
	ReadBytesPerSecond    float64  `json:"read_bytes_per_second"`
	WriteBytesPerSecond   float64  `json:"write_bytes_per_second"`
	ReadLatencySeconds    float64  `json:"read_latency_seconds"`  // average per completed read
	WriteLatencySeconds   float64  `json:"write_latency_seconds"` // average per completed write
	Utilisation           float64  `json:"utilisation"`           // 0..1, share of time busy
	InFlight              float64  `json:"in_flight"`
	Outlier               bool     `json:"outlier"`
	OutlierReasons        []string `json:"outlier_reasons,omitempty"`
	IntervalSeconds       float64  `json:"interval_seconds"`
	ReadCompletedTotal    uint64   `json:"read_completed_total"`
	WriteCompletedTotal   uint64   `json:"write_completed_total"`
	ReadBytesTotal        uint64   `json:"read_bytes_total"`
	WriteBytesTotal       uint64   `json:"write_bytes_total"`
	IOTimeSecondsTotal    float64  `json:"io_time_seconds_total"`
	ReadTimeSecondsTotal  float64  `json:"read_time_seconds_total"`
	WriteTimeSecondsTotal float64  `json:"write_time_seconds_total"`
}

// Label is what the on-drive label says about a drive (or, for a drive
// without our label, what the label store found there).
type Label struct {
	State State  `json:"state"`
	Owner string `json:"owner,omitempty"`
	// HoldsData: an owner payload (the OSD's superblock) is present.
	HoldsData bool `json:"holds_data"`
	// Foreign lists the signatures found on a drive that is not ours
	// (gpt, mbr, ext4, lvm2, md, bcache, zfs, ...).
	Foreign    []string       `json:"foreign,omitempty"`
	Generation uint64         `json:"generation,omitempty"`
	History    []HistoryEntry `json:"history,omitempty"`
	// Task is the checkpoint of a burn-in or erase in progress (or
	// interrupted: the daemon resumes it at start).
	Task *Task `json:"task,omitempty"`
	// Results are the burn-in and erase results in the label history.
	Results []ResultEntry `json:"results,omitempty"`
}

// Task is a job's checkpoint in the label: its step and how far it got.
type Task struct {
	Kind    string    `json:"kind"`
	Step    string    `json:"step,omitempty"`
	Done    uint64    `json:"done"`
	Total   uint64    `json:"total"`
	Started time.Time `json:"started,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
}

// ResultEntry is a burn-in or erase result in the label history.
type ResultEntry struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`   // burnin or erase
	Result string    `json:"result"` // pass or fail
	Detail string    `json:"detail,omitempty"`
}

// HistoryEntry is one transition in a drive's label history.
type HistoryEntry struct {
	Time   time.Time `json:"time"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason,omitempty"`
	Actor  string    `json:"actor,omitempty"`
}

// Drive is one row of the drive table.
type Drive struct {
	ID       string   `json:"id"`
	Identity Identity `json:"identity"`
	Label    Label    `json:"label"`
	// LabelError says why the label could not be read, if it could not.
	LabelError string `json:"label_error,omitempty"`
	SMART      *SMART `json:"smart,omitempty"`
	SMARTError string `json:"smart_error,omitempty"`
	Health     Health `json:"health"`
	Stats      *Stats `json:"stats,omitempty"`
	Locate     *bool  `json:"locate,omitempty"`
	// Job is the drive's burn-in or erase: progress while it runs, the
	// outcome after (since the daemon started).
	Job       *Job      `json:"job,omitempty"`
	FirstSeen time.Time `json:"first_seen"`
	// Polls counts smartctl runs for this drive; PollErrors those that
	// failed to produce a record.
	Polls      uint64 `json:"smart_polls"`
	PollErrors uint64 `json:"smart_poll_errors"`
}

// HoldsData reports whether the drive holds anything worth protecting:
// an owner payload or a foreign signature.
func (d Drive) HoldsData() bool {
	return d.Label.HoldsData || len(d.Label.Foreign) > 0 || d.Label.State == StateForeign
}

// Info describes the node itself.
type Info struct {
	Hostname  string    `json:"hostname"`
	MachineID string    `json:"machine_id,omitempty"`
	Kernel    string    `json:"kernel,omitempty"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
}

// Inventory is the node and all its drives.
type Inventory struct {
	Node   Info    `json:"node"`
	Drives []Drive `json:"drives"`
	// ScannedAt is the time of the last completed discovery scan.
	ScannedAt time.Time `json:"scanned_at"`
}

// ActionRequest is the body of an action.
type ActionRequest struct {
	Serial string `json:"serial,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Actor names who asked (set by the API from the token's role).
	Actor string `json:"-"`
}

// Transition asks the label store to apply an action to a drive.
type Transition struct {
	Action Action
	Reason string
	Actor  string
	Serial string
}
