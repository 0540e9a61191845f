package volume

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// TargetPayload is the label payload (owner Owner) of a drive being
// filled by Replace: claimed, but not a member of any volume yet. A
// restart that finds it knows the drive holds nothing a volume needs.
const TargetPayload = "stowage-osd-target"

// barrier waits for every operation holding a key lock to finish.
func (v *Volume) barrier() {
	for i := range v.keyLocks {
		v.keyLocks[i].Lock()
		v.keyLocks[i].Unlock() //lint:ignore SA2001 a barrier: only waiting for the holders
	}
}

// Replace moves slot's fragments onto dev while the slot's current drive
// keeps serving (a drain): the volume never has fewer than k+m good
// fragments of a block. New Puts and Deletes go to both drives; every
// fragment already stored is copied from the current drive (CRC-checked;
// reconstructed from the other slots if bad or missing); then, under
// every key lock, dev takes the slot in a new layout generation written
// first to dev's label, then to the others. The old drive's engine is
// closed; its label is the caller's to change (it is a stale member
// now). dev must be free and empty; during the copy its label says
// owner Owner with TargetPayload.
func (v *Volume) Replace(ctx context.Context, slotIdx int, dev zone.Device, o RebuildOptions) (RebuildResult, error) {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if dev == nil {
		return RebuildResult{}, errors.New("volume: replace onto a nil device")
	}
	v.mu.Lock()
	switch {
	case v.closed:
		v.mu.Unlock()
		return RebuildResult{}, ErrClosed
	case slotIdx < 0 || slotIdx >= v.k+v.m:
		v.mu.Unlock()
		return RebuildResult{}, fmt.Errorf("volume: replace slot %d outside 0..%d", slotIdx, v.k+v.m-1)
	case v.rebuilding:
		v.mu.Unlock()
		return RebuildResult{}, errors.New("volume: a rebuild or replace is already running")
	case v.slots[slotIdx] == nil || v.slots[slotIdx].rebuilding:
		v.mu.Unlock()
		return RebuildResult{}, fmt.Errorf("%w: slot %d has no whole drive to replace (rebuild it instead)", ErrDegraded, slotIdx)
	}
	v.rebuilding = true
	cur := v.layout.Clone()
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.rebuilding = false
		v.mu.Unlock()
	}()

	a, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		return RebuildResult{}, fmt.Errorf("volume: replace: %w", err)
	}
	if err := claim(a, dev.Info().Path); err != nil {
		return RebuildResult{}, err
	}
	dl := cur.Clone()
	dl.Slot, dl.ZoneSize, dl.FirstZone = slotIdx, dev.Info().ZoneSize, firstZone(dev)
	e, err := v.openEngine(ctx, dev, dl)
	if err != nil {
		return RebuildResult{}, fmt.Errorf("volume: replace: %w", err)
	}
	if n := e.Stats().Blocks; n > 0 {
		e.Close()
		return RebuildResult{}, fmt.Errorf("%w: %s holds %d blocks", ErrInUse, dev.Info().Path, n)
	}
	if _, err := a.Update(ctx, func(r *label.Record) error {
		r.Owner, r.State, r.Payload = Owner, lifecycle.InService, []byte(TargetPayload)
		return nil
	}); err != nil {
		e.Close()
		return RebuildResult{}, fmt.Errorf("volume: replace: label: %w", err)
	}
	// Mirror from now on; the barrier lets every Put that took its
	// snapshot before finish, so each block is either listed below or
	// written to the mirror too.
	setMirror := func(m bool) bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		s := v.slots[slotIdx]
		if s == nil {
			return false
		}
		ns := *s
		ns.mirror = nil
		if m {
			ns.mirror = e
		}
		v.slots[slotIdx] = &ns
		return true
	}
	abort := func(err error) (RebuildResult, error) {
		setMirror(false)
		v.barrier()
		e.Close()
		return RebuildResult{}, err
	}
	if !setMirror(true) {
		return abort(fmt.Errorf("%w: slot %d lost", ErrDegraded, slotIdx))
	}
	v.barrier()
	v.log.Info("volume: replace started", "slot", slotIdx, "device", dev.Info().Path)

	slots, err := v.snapshot()
	if err != nil {
		return abort(err)
	}
	counts, err := v.fragmentCounts(ctx, slots, -1)
	if err != nil {
		return abort(err)
	}
	keys := make([]Key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	res, firstErr := v.eachKey(ctx, keys, o, func(k Key) (byte, int64, error) { return v.copyKey(ctx, k, slotIdx) })
	if err := ctx.Err(); err != nil {
		return abort(err)
	}
	if res.Failed > 0 {
		r := res
		_, err := abort(fmt.Errorf("volume: replace of slot %d: %d keys failed (first: %w)", slotIdx, res.Failed, firstErr))
		return r, err
	}

	// Switch, with no Put or Delete in flight.
	for i := range v.keyLocks {
		v.keyLocks[i].Lock()
	}
	v.mu.Lock()
	old := v.slots[slotIdx]
	if old == nil || old.mirror != e {
		v.mu.Unlock()
		for i := range v.keyLocks {
			v.keyLocks[i].Unlock()
		}
		e.Close()
		return res, fmt.Errorf("%w: slot %d lost during the replace", ErrDegraded, slotIdx)
	}
	nl := v.layout.Clone()
	nl.Generation++
	nl.Members[slotIdx] = Member{Drive: NewUUID(), State: SlotOK}
	dl = nl.Clone()
	dl.Slot, dl.ZoneSize, dl.FirstZone = slotIdx, dev.Info().ZoneSize, firstZone(dev)
	err = writeLayout(ctx, a, dl)
	if err == nil {
		v.slots[slotIdx] = &slot{dev: dev, area: a, eng: e}
		v.layout = nl
	} else {
		ns := *old
		ns.mirror = nil
		v.slots[slotIdx] = &ns
	}
	v.mu.Unlock()
	for i := range v.keyLocks {
		v.keyLocks[i].Unlock()
	}
	if err != nil {
		e.Close()
		return res, fmt.Errorf("volume: replace: label: %w", err)
	}
	if err := old.eng.Close(); err != nil {
		v.log.Warn("volume: replace: old engine close", "slot", slotIdx, "err", err)
	}
	_ = v.writeLabels(ctx, nl, slotIdx) // logged; Open brings a stale copy up to date
	v.log.Info("volume: replace done", "slot", slotIdx, "device", dev.Info().Path, "copied", res.Written, "generation", nl.Generation)
	return res, nil
}

// copyKey copies slot's fragment of key from the slot's drive to its
// mirror, or reconstructs it from the other slots when the drive's copy
// is bad or missing. Outcomes as rebuildKey's.
func (v *Volume) copyKey(ctx context.Context, key Key, slotIdx int) (byte, int64, error) {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return 'f', 0, err
	}
	s := slots[slotIdx]
	if s == nil || s.mirror == nil {
		return 'f', 0, fmt.Errorf("%w: slot %d lost during the replace", ErrDegraded, slotIdx)
	}
	id := fragID(key, slotIdx)
	if has, err := s.mirror.Has(ctx, id); err == nil && has {
		return 'p', 0, nil
	}
	if b, meta, err := s.eng.GetMeta(ctx, id); err == nil && int(meta) >= 1 && len(b) == v.fragSize(int(meta)) {
		if err := s.mirror.PutMeta(ctx, id, meta, b); err != nil {
			return 'f', int64(len(b)), err
		}
		return 'w', int64(len(b)), nil
	}
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
	if err := s.mirror.PutMeta(ctx, id, uint32(r.size), frag); err != nil {
		return 'f', r.bytes, err
	}
	return 'w', r.bytes, nil
}

// slotFragment returns slot's fragment of a block read with good data
// shards (a parity fragment is encoded from them).
func (v *Volume) slotFragment(r *blockRead, slotIdx int) ([]byte, error) {
	if slotIdx < v.k {
		return r.shards[slotIdx], nil
	}
	sh := make([][]byte, v.k+v.m)
	copy(sh, r.shards[:v.k])
	for i := v.k; i < len(sh); i++ {
		sh[i] = make([]byte, len(sh[0]))
	}
	if err := v.enc.Encode(sh); err != nil {
		return nil, fmt.Errorf("volume: encode: %w", err)
	}
	return sh[slotIdx], nil
}

// eachKey runs fn on every key with o.Workers workers (stopping when ctx
// ends) and counts the outcomes ('w' written, 'p' present, 'g' gone,
// else failed), reporting progress after each key. It returns the first
// failure's error.
func (v *Volume) eachKey(ctx context.Context, keys []Key, o RebuildOptions, fn func(Key) (byte, int64, error)) (RebuildResult, error) {
	var (
		res      RebuildResult
		mu       sync.Mutex
		done     int
		bytes    int64
		next     atomic.Int64
		firstErr error
		wg       sync.WaitGroup
	)
	res.Keys = len(keys)
	for range o.Workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(keys) || ctx.Err() != nil {
					return
				}
				outcome, n, err := fn(keys[i])
				mu.Lock()
				switch outcome {
				case 'w':
					res.Written++
				case 'p':
					res.Present++
				case 'g':
					res.Gone++
				default:
					res.Failed++
					if firstErr == nil {
						firstErr = err
					}
				}
				done++
				bytes += n
				if o.Progress != nil {
					o.Progress(Progress{Done: done, Total: len(keys), Bytes: bytes})
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res, firstErr
}
