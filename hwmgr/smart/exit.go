package smart

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ExitStatus is smartctl's exit status. It is a bit mask, not a verdict:
// see man smartctl, "RETURN VALUES". A non-zero value does not mean the
// drive is failing; only ExitDiskFailing says that.
type ExitStatus uint8

// The bits of smartctl's exit status.
const (
	// ExitCommandLine: the command line did not parse.
	ExitCommandLine ExitStatus = 1 << 0
	// ExitDeviceOpen: the device could not be opened, or it is in a
	// low-power mode and -n stopped smartctl (see Record.Asleep).
	ExitDeviceOpen ExitStatus = 1 << 1
	// ExitSMARTCommand: a SMART or other ATA command to the disk failed,
	// or there was a checksum error in a SMART data structure.
	ExitSMARTCommand ExitStatus = 1 << 2
	// ExitDiskFailing: the SMART status check returned "DISK FAILING".
	ExitDiskFailing ExitStatus = 1 << 3
	// ExitPrefailBelowThreshold: some prefail attributes are <= threshold now.
	ExitPrefailBelowThreshold ExitStatus = 1 << 4
	// ExitPastBelowThreshold: the status is OK, but some attributes were
	// <= threshold at some time in the past.
	ExitPastBelowThreshold ExitStatus = 1 << 5
	// ExitErrorLog: the device error log contains records of errors.
	ExitErrorLog ExitStatus = 1 << 6
	// ExitSelfTestLog: the self-test log contains records of errors
	// (the newest self-test of each kind failed, or an older one did).
	ExitSelfTestLog ExitStatus = 1 << 7
)

var exitNames = [8]string{
	"command_line",
	"device_open_failed",
	"smart_command_failed",
	"disk_failing",
	"prefail_below_threshold",
	"past_below_threshold",
	"error_log_has_errors",
	"self_test_log_has_errors",
}

// Has reports whether every bit of f is set in e.
func (e ExitStatus) Has(f ExitStatus) bool { return e&f == f }

// Flags names the bits set, lowest first ("device_open_failed", ...).
// It returns nil for 0.
func (e ExitStatus) Flags() []string {
	var out []string
	for i, n := range exitNames {
		if e&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// String is the flags joined by "|", or "0".
func (e ExitStatus) String() string {
	if e == 0 {
		return "0"
	}
	return strings.Join(e.Flags(), "|")
}

// exitJSON is how an ExitStatus looks in JSON: the number and its names.
type exitJSON struct {
	Value uint8    `json:"value"`
	Flags []string `json:"flags,omitempty"`
}

// MarshalJSON writes {"value": N, "flags": [...]}.
func (e ExitStatus) MarshalJSON() ([]byte, error) {
	return json.Marshal(exitJSON{Value: uint8(e), Flags: e.Flags()})
}

// UnmarshalJSON reads what MarshalJSON writes, or a bare number.
func (e *ExitStatus) UnmarshalJSON(b []byte) error {
	var n uint8
	if err := json.Unmarshal(b, &n); err == nil {
		*e = ExitStatus(n)
		return nil
	}
	var j exitJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("smart: exit status: %w", err)
	}
	*e = ExitStatus(j.Value)
	return nil
}
