package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/osd/engine"
	"github.com/stowage/stowage/osd/zone"
)

// RepairResult says what Repair found and did.
type RepairResult struct {
	Damage   []Damage // bad fragments found
	Repaired []int    // slots whose fragment was rewritten
	Failed   []int    // slots that could not be rewritten (no drive, write failed)
}

// Repair reads every fragment of key, checks it against the engine's
// CRC, the block's SHA-256 and the parity, and rewrites the bad ones from
// the others.
func (v *Volume) Repair(ctx context.Context, key Key) (RepairResult, error) {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return RepairResult{}, err
	}
	res, _, err := v.repairLocked(ctx, slots, key)
	return res, err
}

func (v *Volume) repairLocked(ctx context.Context, slots []*slot, key Key) (RepairResult, int64, error) {
	r, err := v.readBlock(ctx, slots, key, true)
	if err != nil {
		return RepairResult{}, 0, err
	}
	res := RepairResult{Damage: r.damage}
	if len(r.damage) == 0 {
		return res, r.bytes, nil
	}
	var errs []error
	for _, d := range r.damage {
		s := slots[d.Slot]
		if s == nil {
			res.Failed = append(res.Failed, d.Slot)
			continue
		}
		if err := v.rewrite(ctx, s.eng, key, d.Slot, d.Kind, r.size, r.shards[d.Slot]); err != nil {
			res.Failed = append(res.Failed, d.Slot)
			errs = append(errs, err)
			continue
		}
		res.Repaired = append(res.Repaired, d.Slot)
	}
	v.log.Info("volume: repaired", "key", fmt.Sprintf("%x", key), "repaired", res.Repaired, "failed", res.Failed)
	return res, r.bytes, errors.Join(errs...)
}

// rewrite replaces slot's fragment of key. The engine appends only and
// keeps the first record of an ID, so a bad record is deleted (tombstone)
// before the good one is appended; a crash in between leaves the
// fragment missing, which the next read or scrub repairs again.
func (v *Volume) rewrite(ctx context.Context, e *engine.Engine, key Key, slot int, kind DamageKind, size int, shard []byte) error {
	id := fragID(key, slot)
	if kind != Missing && kind != Lost {
		if err := e.Delete(ctx, id); err != nil && !errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("volume: slot %d: delete bad fragment: %w", slot, err)
		}
	}
	if err := e.PutMeta(ctx, id, uint32(size), shard); err != nil {
		return fmt.Errorf("volume: slot %d: rewrite fragment: %w", slot, err)
	}
	return nil
}

// Progress is how far a long job is.
type Progress struct {
	Done, Total int // keys
	Bytes       int64
}

// RebuildResult says what Rebuild did.
type RebuildResult struct {
	Keys    int // keys looked at
	Written int // fragments written onto the new drive
	Present int // fragments the new drive already held (a resumed rebuild)
	Gone    int // keys deleted meanwhile
	Failed  int // keys with fewer than k good fragments elsewhere
}

// RebuildOptions configure Rebuild.
type RebuildOptions struct {
	// Progress, if set, is called after each key (serially).
	Progress func(Progress)
	// Workers is the number of keys rebuilt at once. Default 4.
	Workers int
}

// Rebuild makes dev the drive of slot, replacing whatever drive held it
// (lost or not), and writes onto it every fragment of the slot,
// reconstructed from the other slots. dev must be free (or the
// replacement of an interrupted Rebuild of the same slot, which resumes).
// The slot is marked rebuilding in every label until all fragments are
// written; then the volume is whole again. The old drive, if any, stays
// open: the caller closes it.
func (v *Volume) Rebuild(ctx context.Context, slotIdx int, dev zone.Device, o RebuildOptions) (RebuildResult, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if dev == nil {
		return RebuildResult{}, errors.New("volume: rebuild onto a nil device")
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return RebuildResult{}, ErrClosed
	}
	if slotIdx < 0 || slotIdx >= v.k+v.m {
		v.mu.Unlock()
		return RebuildResult{}, fmt.Errorf("volume: rebuild slot %d outside 0..%d", slotIdx, v.k+v.m-1)
	}
	if v.rebuilding {
		v.mu.Unlock()
		return RebuildResult{}, errors.New("volume: a rebuild is already running")
	}
	v.rebuilding = true
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.rebuilding = false
		v.mu.Unlock()
	}()

	v.mu.RLock()
	cur := v.layout.Clone()
	same := v.slots[slotIdx]
	v.mu.RUnlock()
	if same != nil && same.dev != dev {
		same = nil
	}
	// Resuming on the drive already in the slot (same process): its
	// engine stays; a second engine on one device would corrupt it.
	var a *label.Area
	var err error
	if same != nil && same.area != nil {
		a = same.area
	} else if a, err = label.Open(ctx, dev, label.Options{}); err != nil {
		return RebuildResult{}, fmt.Errorf("volume: rebuild: %w", err)
	}
	member := Member{Drive: NewUUID(), State: SlotRebuilding}
	if rec, ok := a.Current(); ok && rec.Owner == Owner {
		l, _, err := DecodeLayout(rec.Payload)
		resume := err == nil && l.Volume == cur.Volume && l.Slot == slotIdx &&
			cur.Members[slotIdx].Drive == l.Members[slotIdx].Drive && cur.Members[slotIdx].State == SlotRebuilding
		if !resume {
			return RebuildResult{}, fmt.Errorf("%w: %s holds another volume member", ErrInUse, dev.Info().Path)
		}
		member.Drive = l.Members[slotIdx].Drive
	} else if err := claim(a, dev.Info().Path); err != nil {
		return RebuildResult{}, err
	}

	// Record the new member everywhere before writing any fragment.
	nl := cur.Clone()
	nl.Generation++
	nl.Members[slotIdx] = member
	dl := nl.Clone()
	dl.Slot, dl.ZoneSize, dl.FirstZone = slotIdx, dev.Info().ZoneSize, firstZone(dev)
	var e *engine.Engine
	if same != nil {
		e = same.eng
	} else if e, err = v.openEngine(ctx, dev, dl); err != nil {
		return RebuildResult{}, fmt.Errorf("volume: rebuild: %w", err)
	}
	if err := writeLayout(ctx, a, dl); err != nil {
		if same == nil {
			e.Close()
		}
		return RebuildResult{}, fmt.Errorf("volume: rebuild: label: %w", err)
	}
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		if same == nil {
			e.Close()
		}
		return RebuildResult{}, ErrClosed
	}
	// A membership change meanwhile (MarkLost of another slot) is kept:
	// the new generation is built on the layout as it is now, and then
	// written to every member, the new drive included.
	merged := v.layout.Generation != cur.Generation
	if merged {
		nl = v.layout.Clone()
		nl.Generation++
		nl.Members[slotIdx] = member
	}
	old := v.slots[slotIdx]
	v.slots[slotIdx] = &slot{dev: dev, area: a, eng: e, rebuilding: true}
	v.layout = nl
	v.mu.Unlock()
	if old != nil && old != same {
		if err := old.eng.Close(); err != nil {
			v.log.Warn("volume: rebuild: old engine close", "slot", slotIdx, "err", err)
		}
	}
	skip := slotIdx
	if merged {
		skip = -1
	}
	_ = v.writeLabels(ctx, nl, skip) // logged; the final generation is written again
	v.log.Info("volume: rebuild started", "slot", slotIdx, "device", dev.Info().Path, "generation", nl.Generation)

	slots, err := v.snapshot()
	if err != nil {
		return RebuildResult{}, err
	}
	counts, err := v.fragmentCounts(ctx, slots, slotIdx)
	if err != nil {
		return RebuildResult{}, err
	}
	keys := make([]Key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys) // a resumed rebuild finds its done keys first
	res, firstErr := v.eachKey(ctx, keys, o, func(k Key) (byte, int64, error) { return v.rebuildKey(ctx, k, slotIdx) })
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("volume: rebuild of slot %d: %d keys failed (first: %w); the slot stays rebuilding", slotIdx, res.Failed, firstErr)
	}
	v.mu.Lock()
	s := v.slots[slotIdx]
	if s == nil || s.eng != e {
		// The new drive was lost (MarkLost) after its last key: the
		// slot stays lost.
		v.mu.Unlock()
		return res, fmt.Errorf("%w: slot %d lost during the rebuild", ErrDegraded, slotIdx)
	}
	fin := v.layout.Clone()
	fin.Generation++
	fin.Members[slotIdx].State = SlotOK
	v.layout = fin
	if s.rebuilding {
		done := *s
		done.rebuilding = false
		v.slots[slotIdx] = &done
	}
	v.mu.Unlock()
	_ = v.writeLabels(ctx, fin, -1) // logged; Open brings a stale copy up to date
	v.log.Info("volume: rebuild done", "slot", slotIdx, "written", res.Written, "present", res.Present)
	return res, nil
}

// rebuildKey writes slot's fragment of key from the other slots. The
// outcome is 'w' written, 'p' already present, 'g' gone (deleted), 'f'
// failed.
func (v *Volume) rebuildKey(ctx context.Context, key Key, slotIdx int) (byte, int64, error) {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return 'f', 0, err
	}
	if slots[slotIdx] == nil {
		return 'f', 0, fmt.Errorf("%w: slot %d lost during the rebuild", ErrDegraded, slotIdx)
	}
	e := slots[slotIdx].eng
	if has, err := e.Has(ctx, fragID(key, slotIdx)); err == nil && has {
		return 'p', 0, nil
	}
	// The data fragments (reconstructed where needed) and the block's
	// SHA-256 are enough: a parity fragment is encoded from them. Reading
	// only what is needed keeps the other drives' load at k fragments.
	r, err := v.readBlock(ctx, slots, key, false)
	if errors.Is(err, ErrNotFound) {
		return 'g', 0, nil
	}
	if err != nil {
		return 'f', 0, err
	}
	defer r.release()
	frag, err := v.slotFragment(r, slotIdx)
	if err != nil {
		return 'f', r.bytes, err
	}
	if err := e.PutMeta(ctx, fragID(key, slotIdx), uint32(r.size), frag); err != nil {
		return 'f', r.bytes, err
	}
	return 'w', r.bytes, nil
}

// ErrLabelsNotUpdated is wrapped by the error of a membership change
// (MarkLost) whose new layout generation did not reach the label of some
// member: the change holds in memory, and on the members that took it.
var ErrLabelsNotUpdated = errors.New("volume: layout not written to every member's label")

// writeLabels writes l into every slot's label except skip's. A failure
// is logged and the others are still written; the returned error joins
// the failures (each wrapping ErrLabelsNotUpdated).
func (v *Volume) writeLabels(ctx context.Context, l Layout, skip int) error {
	slots, err := v.snapshot()
	if err != nil {
		return err
	}
	var errs []error
	for i, s := range slots {
		if s == nil || s.area == nil || i == skip {
			continue
		}
		dl := l.Clone()
		dl.Slot, dl.ZoneSize, dl.FirstZone = i, s.dev.Info().ZoneSize, firstZone(s.dev)
		if err := writeLayout(ctx, s.area, dl); err != nil {
			v.log.Warn("volume: label not updated", "slot", i, "generation", l.Generation, "err", err)
			errs = append(errs, fmt.Errorf("%w: slot %d: %w", ErrLabelsNotUpdated, i, err))
		}
	}
	return errors.Join(errs...)
}

// ScrubOptions configure Scrub.
type ScrubOptions struct {
	// BytesPerSecond limits the fragment bytes read per second; 0: no limit.
	BytesPerSecond int64
	// Progress, if set, is called after each key.
	Progress func(Progress)
	// NoRepair makes Scrub only count what it finds.
	NoRepair bool
	// Now and Sleep are the clock (tests inject one). Default time.Now and
	// a context-aware sleep.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// ScrubReport counts what a scrub found.
type ScrubReport struct {
	Keys          int   // blocks checked
	Bytes         int64 // fragment bytes read
	Damaged       int   // blocks with at least one bad fragment
	Missing       int   // fragments by kind
	Corrupt       int
	IOErrors      int
	Lost          int
	Mismatched    int
	Repaired      int // fragments rewritten
	RepairFailed  int // fragments that could not be rewritten
	Unrecoverable int // blocks with fewer than k good fragments
	Gone          int // keys found deleted (or never completely put)
	Orphans       int // leftover fragments of such keys, deleted
}

// dropOrphans deletes what is left of a key that has more than m
// fragments missing: a block deleted while a drive was away, or a Put
// that failed part way and was never acknowledged. The caller holds the
// key's lock, so no Put of it is in progress.
func (v *Volume) dropOrphans(ctx context.Context, slots []*slot, key Key) int {
	n := 0
	for i, s := range slots {
		if s == nil {
			continue
		}
		err := s.eng.Delete(ctx, fragID(key, i))
		switch {
		case err == nil:
			n++
		case !errors.Is(err, engine.ErrNotFound):
			v.log.Warn("volume: scrub: orphan fragment not deleted", "key", fmt.Sprintf("%x", key), "slot", i, "err", err)
		}
	}
	if n > 0 {
		v.log.Info("volume: scrub: orphan fragments deleted", "key", fmt.Sprintf("%x", key), "fragments", n)
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Scrub reads every fragment of every block, checks it (engine CRC32C,
// the block's SHA-256, parity agreement) and rewrites bad fragments from
// the others, at most BytesPerSecond.
func (v *Volume) Scrub(ctx context.Context, o ScrubOptions) (ScrubReport, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	slots, err := v.snapshot()
	if err != nil {
		return ScrubReport{}, err
	}
	counts, err := v.fragmentCounts(ctx, slots, -1)
	if err != nil {
		return ScrubReport{}, err
	}
	keys := make([]Key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	var rep ScrubReport
	start := o.Now()
	for i, key := range keys {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		n, err := v.scrubKey(ctx, key, o.NoRepair, &rep)
		if err != nil {
			return rep, err
		}
		rep.Bytes += n
		if o.Progress != nil {
			o.Progress(Progress{Done: i + 1, Total: len(keys), Bytes: rep.Bytes})
		}
		if o.BytesPerSecond > 0 {
			due := start.Add(time.Duration(float64(rep.Bytes) / float64(o.BytesPerSecond) * float64(time.Second)))
			if d := due.Sub(o.Now()); d > 0 {
				if err := o.Sleep(ctx, d); err != nil {
					return rep, err
				}
			}
		}
	}
	v.log.Info("volume: scrub done", "keys", rep.Keys, "bytes", rep.Bytes, "damaged", rep.Damaged, "repaired", rep.Repaired, "unrecoverable", rep.Unrecoverable)
	return rep, nil
}

func compareKeys(a, b Key) int {
	for i := range a {
		if a[i] != b[i] {
			return int(a[i]) - int(b[i])
		}
	}
	return 0
}

func (v *Volume) scrubKey(ctx context.Context, key Key, noRepair bool, rep *ScrubReport) (int64, error) {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return 0, err
	}
	r, err := v.readBlock(ctx, slots, key, true)
	switch {
	case errors.Is(err, ErrNotFound):
		rep.Gone++
		if !noRepair {
			rep.Orphans += v.dropOrphans(ctx, slots, key)
		}
		return 0, nil
	case errors.Is(err, ErrUnrecoverable):
		rep.Keys++
		rep.Unrecoverable++
		v.log.Error("volume: scrub: block unrecoverable", "key", fmt.Sprintf("%x", key), "err", err)
		return 0, nil
	case err != nil:
		return 0, err
	}
	rep.Keys++
	if len(r.damage) == 0 {
		return r.bytes, nil
	}
	rep.Damaged++
	v.report(r.damage)
	for _, d := range r.damage {
		switch d.Kind {
		case Missing:
			rep.Missing++
		case Corrupt:
			rep.Corrupt++
		case IOError:
			rep.IOErrors++
		case Lost:
			rep.Lost++
		case Mismatch:
			rep.Mismatched++
		}
		if noRepair {
			continue
		}
		s := slots[d.Slot]
		if s == nil {
			rep.RepairFailed++
			continue
		}
		if err := v.rewrite(ctx, s.eng, key, d.Slot, d.Kind, r.size, r.shards[d.Slot]); err != nil {
			if ctx.Err() != nil {
				return r.bytes, ctx.Err()
			}
			v.log.Warn("volume: scrub: repair failed", "key", fmt.Sprintf("%x", key), "slot", d.Slot, "err", err)
			rep.RepairFailed++
			continue
		}
		rep.Repaired++
	}
	return r.bytes, nil
}

// SlotStatus describes one slot.
type SlotStatus struct {
	Slot   int
	Drive  UUID
	State  string // "ok", "rebuilding" or "lost"
	Device string // path, empty when lost
	Serial string // from the drive's label
	WWN    string
	// ReadErrors counts fragment reads of this slot that failed with an
	// I/O error since Open (the drive, not the data: a hint for hwmgr).
	ReadErrors int64
	// From the slot's engine (zero when lost): fragments held, bytes of
	// all extents, free bytes, bytes of live records.
	Fragments                 int
	Capacity, Free, LiveBytes int64
}

// Status describes the volume.
type Status struct {
	ID         UUID
	K, M       int
	Generation uint64
	Slots      []SlotStatus
	Degraded   bool // some slot is lost or rebuilding
}

// Status returns the volume's membership and health.
func (v *Volume) Status() Status {
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := Status{ID: v.layout.Volume, K: v.k, M: v.m, Generation: v.layout.Generation}
	for i, m := range v.layout.Members {
		ss := SlotStatus{Slot: i, Drive: m.Drive, State: m.State.String(), ReadErrors: v.ioErrors[i].Load()}
		if s := v.slots[i]; s == nil {
			ss.State = "lost"
		} else {
			ss.Device = s.dev.Info().Path
			es := s.eng.Stats()
			ss.Fragments, ss.Capacity, ss.Free, ss.LiveBytes = es.Blocks, es.Capacity, es.FreeBytes, es.LiveBytes
			if s.area != nil {
				if rec, ok := s.area.Current(); ok {
					ss.Serial, ss.WWN = rec.Serial, rec.WWN
				}
			}
		}
		if ss.State != "ok" {
			st.Degraded = true
		}
		st.Slots = append(st.Slots, ss)
	}
	return st
}

// Degraded reports Status().Degraded without building the status: some
// slot has no drive or a member that is not in service.
func (v *Volume) Degraded() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for i, m := range v.layout.Members {
		if v.slots[i] == nil || m.State.String() != "ok" {
			return true
		}
	}
	return false
}

// MarkLost takes slot's drive out of the volume (hwmgr found it failed or
// pulled): its engine is closed, reads reconstruct its fragments without
// touching it, and writes fail with ErrDegraded until Rebuild gives the
// slot a drive again. The loss is durable: a new layout generation with
// the slot SlotLost is written to the labels of the other members (never
// to the lost drive's), so a restart that finds the lost drive again
// leaves it out as stale and opens the volume degraded. If some of those
// label writes fail, MarkLost logs them and returns an error wrapping
// ErrLabelsNotUpdated; the slot is lost in memory all the same. The
// device stays open (the caller's).
func (v *Volume) MarkLost(ctx context.Context, slotIdx int) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	if slotIdx < 0 || slotIdx >= v.k+v.m {
		v.mu.Unlock()
		return fmt.Errorf("volume: slot %d outside 0..%d", slotIdx, v.k+v.m-1)
	}
	s := v.slots[slotIdx]
	if s == nil && v.layout.Members[slotIdx].State == SlotLost {
		v.mu.Unlock()
		return nil
	}
	v.slots[slotIdx] = nil
	nl := v.layout.Clone()
	nl.Generation++
	nl.Members[slotIdx].State = SlotLost
	v.layout = nl
	v.mu.Unlock()
	if s != nil {
		v.log.Warn("volume: slot marked lost", "slot", slotIdx, "device", s.dev.Info().Path, "generation", nl.Generation)
		if err := s.eng.Close(); err != nil {
			v.log.Warn("volume: engine close", "slot", slotIdx, "err", err)
		}
	}
	if err := v.writeLabels(ctx, nl, slotIdx); err != nil {
		return fmt.Errorf("volume: loss of slot %d (generation %d): %w", slotIdx, nl.Generation, err)
	}
	return nil
}
