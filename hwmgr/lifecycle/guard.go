package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors a refused request wraps; callers branch on them with errors.Is.
var (
	// ErrNotAllowed: the action has no edge from the drive's state.
	ErrNotAllowed = errors.New("lifecycle: transition not allowed")
	// ErrInService: a destructive action on an in-service drive. No
	// request can override this; drain the drive first.
	ErrInService = errors.New("lifecycle: drive is in service")
	// ErrSerialRequired: the drive holds data (an owner payload or a
	// foreign signature), or is a ready drive asked to burn in again, and
	// the request does not name the drive's serial.
	ErrSerialRequired = errors.New("lifecycle: request must name the drive's serial")
	// ErrSerialMismatch: the request names a serial that is not this
	// drive's.
	ErrSerialMismatch = errors.New("lifecycle: serial in request does not match the drive")
	// ErrNoSerial: the drive holds data but reports no serial, so no
	// request can confirm it.
	ErrNoSerial = errors.New("lifecycle: drive reports no serial to confirm")
)

// Drive is what the guard rails need to know about a drive.
type Drive struct {
	Serial string
	WWN    string
	Model  string
	State  State
	// OwnerPayload is true when the drive's label carries an owner
	// payload (the OSD's superblock): the drive may hold blocks.
	OwnerPayload bool
	// Foreign lists the foreign signatures found on the drive (e.g.
	// "gpt", "ext4"); non-empty means something not ours is on it.
	Foreign []string
}

// HoldsData reports whether the drive may hold someone's data.
func (d Drive) HoldsData() bool { return d.OwnerPayload || len(d.Foreign) > 0 }

// Request asks for an action on a drive.
type Request struct {
	Action Action
	// Serial confirms which drive a destructive action is meant for. It
	// must equal the drive's serial when Guard says so.
	Serial string
	Actor  string // who asks: "api:admin", "health", "burnin", "osd"
	Reason string // free text, kept in the event and the label history
}

// RefusedError says why a request was refused. It wraps one of the Err*
// values above.
type RefusedError struct {
	Serial string // the drive's serial
	State  State
	Action Action
	Err    error // ErrNotAllowed, ErrInService, ErrSerialRequired, ...
	Detail string
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("drive %q (%s): %s refused: %v", e.Serial, e.State, e.Action, e.Err)
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Guard checks the guard rails of a destructive action (burn-in write
// passes, erase, adopt) on d, confirmed by serial (the serial the request
// names, possibly empty). It returns nil for non-destructive actions. The
// rules, in order:
//
//  1. never an in-service drive (ErrInService), whatever the request says;
//  2. adopt, a drive that holds data (owner payload or foreign signature),
//     and a ready drive asked to burn in again, only when serial equals the
//     drive's serial: ErrNoSerial if the drive has none, ErrSerialRequired
//     if the request names none, ErrSerialMismatch if it names another.
//
// Serials are compared exactly after trimming surrounding spaces (ATA
// serials come space-padded).
func Guard(d Drive, a Action, serial string) error {
	if !a.Destructive() {
		return nil
	}
	refuse := func(err error, detail string) error {
		return &RefusedError{Serial: d.Serial, State: d.State, Action: a, Err: err, Detail: detail}
	}
	if d.State == InService {
		return refuse(ErrInService, "drain it first")
	}
	needSerial := d.HoldsData() || a == ActAdopt || (a == ActBurnIn && d.State == Ready)
	if !needSerial {
		return nil
	}
	why := "drive holds data"
	switch {
	case d.OwnerPayload:
		why = "drive carries an owner payload"
	case len(d.Foreign) > 0:
		why = "foreign signatures: " + strings.Join(d.Foreign, ", ")
	case a == ActAdopt:
		why = "adopt always names the drive"
	case d.State == Ready:
		why = "drive already passed burn-in"
	}
	have := strings.TrimSpace(d.Serial)
	want := strings.TrimSpace(serial)
	switch {
	case have == "":
		return refuse(ErrNoSerial, why)
	case want == "":
		return refuse(ErrSerialRequired, why)
	case want != have:
		return refuse(ErrSerialMismatch, fmt.Sprintf("%s; request names %q", why, want))
	}
	return nil
}

// Event is one transition of one drive. It goes to the label history, the
// log, the API's event stream and the metrics.
type Event struct {
	Serial string    `json:"serial"`
	WWN    string    `json:"wwn,omitempty"`
	Model  string    `json:"model,omitempty"`
	From   State     `json:"from"`
	To     State     `json:"to"`
	Action Action    `json:"action"`
	Reason string    `json:"reason,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	Time   time.Time `json:"time"`
}

// Transition decides req on d: the guard rails first (for destructive
// actions), then the transition table. On success it returns the event the
// caller publishes once the new state is durable on the drive; otherwise a
// *RefusedError. It changes nothing itself.
func Transition(d Drive, req Request, now time.Time) (Event, error) {
	if err := Guard(d, req.Action, req.Serial); err != nil {
		return Event{}, err
	}
	to, err := Next(d.State, req.Action)
	if err != nil {
		return Event{}, &RefusedError{Serial: d.Serial, State: d.State, Action: req.Action, Err: ErrNotAllowed}
	}
	return Event{
		Serial: d.Serial, WWN: d.WWN, Model: d.Model,
		From: d.State, To: to, Action: req.Action,
		Reason: req.Reason, Actor: req.Actor, Time: now,
	}, nil
}
