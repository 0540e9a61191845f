// Package lifecycle is the drive state machine of hwmgr: the states a drive
// goes through from arrival to retirement, the actions that move it between
// them, the guard rails that keep destructive actions off drives holding
// data, and the events every transition produces.
//
// The package is pure: it neither reads nor writes drives. The daemon reads
// a drive's label and foreign signatures, asks Transition whether a request
// may proceed, persists the new state in the label, and only then publishes
// the Event on a Bus. Burn-in and erase call Guard again right before they
// touch the device.
package lifecycle

import (
	"fmt"
	"slices"
)

// State is a drive's lifecycle state. The strings are stored in the
// on-drive label and never change.
type State string

// The states (DESIGN.md "Drive ownership and lifecycle").
const (
	New       State = "new"        // blank (or just adopted): nothing of ours yet
	BurnIn    State = "burnin"     // being burned in
	Ready     State = "ready"      // passed burn-in (or erased): free for the OSD
	Failed    State = "failed"     // failed burn-in or the health policy
	InService State = "in-service" // claimed by the OSD; holds live data
	Draining  State = "draining"   // the OSD is moving its data off
	Drained   State = "drained"    // holds no live data any more
	Erasing   State = "erasing"    // being erased
	Retired   State = "retired"    // erased and leaving the fleet
	Foreign   State = "foreign"    // holds something not ours; never written until adopted
)

var allStates = []State{New, BurnIn, Ready, Failed, InService, Draining, Drained, Erasing, Retired, Foreign}

// States returns every state, in lifecycle order.
func States() []State { return slices.Clone(allStates) }

// Valid reports whether s is one of the states.
func (s State) Valid() bool { return slices.Contains(allStates, s) }

// ParseState returns the state named s.
func ParseState(s string) (State, error) {
	if st := State(s); st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("lifecycle: unknown state %q", s)
}

// Action is a request that moves a drive from one state to another.
type Action string

// The actions. Each one's edges are in the transition table (see edges and
// README.md).
const (
	ActBurnIn       Action = "burnin"        // new|ready → burnin (destructive)
	ActBurnInPass   Action = "burnin-pass"   // burnin → ready
	ActBurnInFail   Action = "burnin-fail"   // burnin → failed
	ActClaim        Action = "claim"         // ready → in-service (the OSD takes it)
	ActDrain        Action = "drain"         // in-service → draining
	ActDrainDone    Action = "drain-done"    // draining → drained
	ActErase        Action = "erase"         // drained|ready|new → erasing (destructive)
	ActEraseDone    Action = "erase-done"    // erasing → ready
	ActRetire       Action = "retire"        // erasing → retired (erased, leaving)
	ActFail         Action = "fail"          // any but failed → failed (health policy)
	ActMarkRepaired Action = "mark-repaired" // failed → new (burn in again)
	ActAdopt        Action = "adopt"         // foreign → new (destructive: ours from now on)
)

var allActions = []Action{ActBurnIn, ActBurnInPass, ActBurnInFail, ActClaim, ActDrain, ActDrainDone,
	ActErase, ActEraseDone, ActRetire, ActFail, ActMarkRepaired, ActAdopt}

// Actions returns every action.
func Actions() []Action { return slices.Clone(allActions) }

// Valid reports whether a is one of the actions.
func (a Action) Valid() bool { return slices.Contains(allActions, a) }

// ParseAction returns the action named s.
func ParseAction(s string) (Action, error) {
	if a := Action(s); a.Valid() {
		return a, nil
	}
	return "", fmt.Errorf("lifecycle: unknown action %q", s)
}

// Destructive reports whether a overwrites what is on the drive: burn-in
// write passes, erase, and adopt (after which hwmgr writes its label over
// whatever was there).
func (a Action) Destructive() bool {
	return a == ActBurnIn || a == ActErase || a == ActAdopt
}

// edge is one allowed transition.
type edge struct {
	from   State
	action Action
	to     State
}

// edges is the whole transition table; Next consults nothing else. ActFail
// is added for every state but Failed by next.
var edges = []edge{
	{New, ActBurnIn, BurnIn},
	{Ready, ActBurnIn, BurnIn},
	{BurnIn, ActBurnInPass, Ready},
	{BurnIn, ActBurnInFail, Failed},
	{Ready, ActClaim, InService},
	{InService, ActDrain, Draining},
	{Draining, ActDrainDone, Drained},
	{Drained, ActErase, Erasing},
	{Ready, ActErase, Erasing},
	{New, ActErase, Erasing},
	{Erasing, ActEraseDone, Ready},
	{Erasing, ActRetire, Retired},
	{Failed, ActMarkRepaired, New},
	{Foreign, ActAdopt, New},
}

// Next returns the state action a leads to from state from, or an error
// wrapping ErrNotAllowed.
func Next(from State, a Action) (State, error) {
	if !from.Valid() {
		return "", fmt.Errorf("%w: unknown state %q", ErrNotAllowed, from)
	}
	if !a.Valid() {
		return "", fmt.Errorf("%w: unknown action %q", ErrNotAllowed, a)
	}
	if a == ActFail && from != Failed {
		return Failed, nil
	}
	for _, e := range edges {
		if e.from == from && e.action == a {
			return e.to, nil
		}
	}
	return "", fmt.Errorf("%w: %s from %s", ErrNotAllowed, a, from)
}

// Initial is the state of a drive seen for the first time in this boot:
// Foreign if anything not ours was found on it (foreignFound is
// hwmgr/foreign's Report.Foreign(), which already ignores leftovers outside
// the label area of a labelled drive, so a foreign finding here means
// someone wrote where our label lives), else the state its label records
// (labelState non-empty), else New.
func Initial(labelState State, foreignFound bool) State {
	switch {
	case foreignFound:
		return Foreign
	case labelState != "":
		return labelState
	}
	return New
}
