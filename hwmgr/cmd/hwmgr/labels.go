package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/osd/zone"
)

// signatureDetector finds what is on a drive that is not ours (partition
// tables, filesystems, RAID and volume-manager signatures).
type signatureDetector interface {
	Detect(ctx context.Context, id node.Identity) ([]string, error)
}

// labelStore is node.LabelStore over the on-drive label (hwmgr/label), the
// lifecycle rules (hwmgr/lifecycle) and foreign-signature detection. A
// drive without our label that carries a foreign signature is foreign and
// is never written until adopted; one with neither is new, and gets its
// first label record with its first transition.
type labelStore struct {
	sysRoot string
	detect  signatureDetector
	now     func() time.Time

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per device: one writer at a time
}

func newLabelStore(sysRoot string, detect signatureDetector, now func() time.Time) *labelStore {
	return &labelStore{sysRoot: sysRoot, detect: detect, now: now, locks: map[string]*sync.Mutex{}}
}

func (s *labelStore) lock(dev string) func() {
	s.mu.Lock()
	m, ok := s.locks[dev]
	if !ok {
		m = &sync.Mutex{}
		s.locks[dev] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// state is what a drive carries: its label area, the newest record (if
// any) and the foreign signatures found when it has none.
type driveState struct {
	dev     zone.Device
	area    *label.Area
	rec     label.Record
	labeled bool
	foreign []string
}

func (s *labelStore) open(ctx context.Context, id node.Identity) (*driveState, error) {
	dev, area, err := openArea(ctx, id, s.sysRoot, s.now)
	if err != nil {
		// A device we may not open for writing (mounted, in use) may still
		// be read: if it carries a foreign signature, it is foreign.
		if sigs, derr := s.detect.Detect(ctx, id); derr == nil && len(sigs) > 0 {
			return &driveState{foreign: sigs}, nil
		}
		return nil, err
	}
	st := &driveState{dev: dev, area: area}
	st.rec, st.labeled = area.Current()
	if !st.labeled {
		if st.foreign, err = s.detect.Detect(ctx, id); err != nil {
			dev.Close()
			return nil, fmt.Errorf("foreign signatures on %s: %w", id.DevPath, err)
		}
	}
	return st, nil
}

// openArea opens a drive's label area: zones 0 and 1 of a zoned drive,
// else two fixed regions at its start.
func openArea(ctx context.Context, id node.Identity, sysRoot string, now func() time.Time) (zone.Device, *label.Area, error) {
	if id.Zoned == "host-managed" || id.Zoned == "host-aware" {
		dev, err := zone.Open(id.DevPath, zone.Options{SysRoot: sysRoot})
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", id.DevPath, err)
		}
		area, err := label.Open(ctx, dev, label.Options{Now: now})
		if err != nil {
			dev.Close()
			return nil, nil, fmt.Errorf("label area of %s: %w", id.DevPath, err)
		}
		return dev, area, nil
	}
	if id.SizeBytes < 2*label.RegionSize {
		return nil, nil, fmt.Errorf("%s: %d bytes, the label area needs %d", id.DevPath, id.SizeBytes, 2*label.RegionSize)
	}
	// Only positioned I/O is used: the zone size just has to divide.
	dev, err := zone.OpenEmulated(id.DevPath, zone.EmulatedOptions{ZoneSize: label.RegionSize})
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", id.DevPath, err)
	}
	area, err := label.OpenConventional(ctx, dev, label.Options{Now: now})
	if err != nil {
		dev.Close()
		return nil, nil, fmt.Errorf("label area of %s: %w", id.DevPath, err)
	}
	return dev, area, nil
}

func (st *driveState) close() {
	if st.dev != nil {
		st.dev.Close()
	}
}

func (st *driveState) state() lifecycle.State {
	if st.labeled {
		return st.rec.State
	}
	return lifecycle.Initial("", len(st.foreign) > 0)
}

func (st *driveState) view() node.Label {
	l := node.Label{State: node.State(st.state()), Foreign: slices.Clone(st.foreign)}
	if st.labeled {
		l.Owner, l.HoldsData, l.Generation = st.rec.Owner, len(st.rec.Payload) > 0, st.rec.Generation
		for _, e := range st.rec.History {
			switch e.Kind {
			case label.KindTransition:
				l.History = append(l.History, node.HistoryEntry{Time: e.Time, From: node.State(e.From), To: node.State(e.To), Reason: e.Detail, Actor: e.Actor})
			case label.KindBurnIn, label.KindErase:
				l.Results = append(l.Results, node.ResultEntry{Time: e.Time, Kind: e.Kind, Result: e.Result, Detail: e.Detail})
			}
		}
		if t := st.rec.Task; t.Kind != "" {
			l.Task = &node.Task{Kind: t.Kind, Step: t.Step, Done: t.Done, Total: t.Total, Started: t.Started, Updated: t.Updated}
		}
	}
	return l
}

func (s *labelStore) Read(ctx context.Context, id node.Identity) (node.Label, error) {
	defer s.lock(id.DevPath)()
	st, err := s.open(ctx, id)
	if err != nil {
		return node.Label{}, err
	}
	st.close()
	return st.view(), nil
}

// withArea opens the drive's label area afresh (so the label is read from
// the device again: the OSD writes its owner payload into the same label
// from another process), runs fn on it under the device's lock and
// returns the label as fn left it. A foreign or unwritable drive is
// refused.
func (s *labelStore) withArea(ctx context.Context, id node.Identity, fn func(a *label.Area) error) (node.Label, error) {
	defer s.lock(id.DevPath)()
	st, err := s.open(ctx, id)
	if err != nil {
		return node.Label{}, err
	}
	defer st.close()
	if st.area == nil || (!st.labeled && len(st.foreign) > 0) {
		return node.Label{}, fmt.Errorf("%w: %s carries no label of ours (foreign: %v)", node.ErrInvalidTransition, id.DevPath, st.foreign)
	}
	if err := fn(st.area); err != nil {
		return node.Label{}, err
	}
	st.rec, st.labeled = st.area.Current()
	return st.view(), nil
}

// update changes the drive's current label record with fn (read from the
// device just before, so fields fn does not touch, such as the OSD's owner
// payload, stay as the device holds them).
func (s *labelStore) update(ctx context.Context, id node.Identity, fn func(r *label.Record) error) (node.Label, error) {
	return s.withArea(ctx, id, func(a *label.Area) error {
		_, err := a.Update(ctx, fn)
		return err
	})
}

// record reads the drive's current label record.
func (s *labelStore) record(ctx context.Context, id node.Identity) (label.Record, bool, error) {
	defer s.lock(id.DevPath)()
	st, err := s.open(ctx, id)
	if err != nil {
		return label.Record{}, false, err
	}
	st.close()
	return st.rec, st.labeled, nil
}

// confirmSerial is the serial the lifecycle compares a request with: the
// drive's serial, else (a device that reports none, such as a loop
// device) its API ID, which the node's guard accepts instead.
func confirmSerial(id node.Identity) string {
	if id.Serial != "" {
		return id.Serial
	}
	if id.WWN != "" {
		return id.WWN
	}
	return id.ID()
}

// lifecycleErr maps the lifecycle's refusals to the node's errors, keeping
// both in the chain.
func lifecycleErr(err error) error {
	var to error
	switch {
	case errors.Is(err, lifecycle.ErrNotAllowed):
		to = node.ErrInvalidTransition
	case errors.Is(err, lifecycle.ErrInService):
		to = node.ErrInService
	case errors.Is(err, lifecycle.ErrSerialRequired):
		to = node.ErrSerialRequired
	case errors.Is(err, lifecycle.ErrSerialMismatch), errors.Is(err, lifecycle.ErrNoSerial):
		to = node.ErrSerialMismatch
	default:
		return err
	}
	return fmt.Errorf("%w: %w", to, err)
}

func (s *labelStore) Apply(ctx context.Context, id node.Identity, t node.Transition) (node.Label, error) {
	defer s.lock(id.DevPath)()
	st, err := s.open(ctx, id)
	if err != nil {
		return node.Label{}, err
	}
	defer st.close()
	from := st.state()
	if from == lifecycle.Foreign && t.Action != node.ActionAdopt {
		return node.Label{}, fmt.Errorf("%w: %s is foreign (%v) and is never written until adopted", node.ErrInvalidTransition, id.DevPath, st.foreign)
	}
	if st.area == nil {
		return node.Label{}, fmt.Errorf("%s cannot be opened for writing", id.DevPath)
	}
	serial := t.Serial
	if t.Actor == "health-policy" {
		serial = confirmSerial(id) // the policy acts on the drive it judged
	}
	ld := lifecycle.Drive{Serial: confirmSerial(id), WWN: id.WWN, Model: id.Model, State: from,
		OwnerPayload: st.labeled && len(st.rec.Payload) > 0, Foreign: st.foreign}
	ev, err := lifecycle.Transition(ld, lifecycle.Request{Action: lifecycle.Action(t.Action), Serial: serial, Actor: t.Actor, Reason: t.Reason}, s.now())
	if err != nil {
		return node.Label{}, lifecycleErr(err)
	}
	rec, err := st.area.Update(ctx, func(r *label.Record) error {
		r.State = ev.To
		if id.WWN != "" {
			r.WWN = id.WWN
		}
		if id.Serial != "" {
			r.Serial = id.Serial
		}
		if id.Model != "" {
			r.Model = id.Model
		}
		r.AddEntry(label.EntryFromEvent(ev))
		return nil
	})
	if err != nil {
		return node.Label{}, fmt.Errorf("write label on %s: %w", id.DevPath, err)
	}
	st.rec, st.labeled, st.foreign = rec, true, nil
	return st.view(), nil
}
