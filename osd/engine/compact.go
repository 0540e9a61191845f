package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/stowage/stowage/osd/index"
	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// Compaction and why a crash at any point is safe.
//
// Compacting closed extent X: every live block record of X is rewritten
// into the open extent as a copy (flag copy, ref = its old location and
// X's incarnation); every tombstone of X whose target's extent
// incarnation still exists is rewritten as a copy too; tombstones whose
// target extent is gone (reset or reused: different incarnation) are
// dropped, since nothing they delete can come back. Only after all copies
// are durable (flushed) are X's zones reset, the header zone first, and
// flushed.
//
//   - Crash before the copies are durable: X is intact and authoritative.
//   - Crash after, before the header zone's reset is durable: both X and
//     the copies exist. Recovery sees each copy's ref naming X's live
//     incarnation and removes the X entry (a move, not a duplicate); it
//     then finishes the compaction of X before serving, so no stale copy
//     of a block outlives its move (a later tombstone names only the new
//     location).
//   - Crash after: X has no header, so none of its bytes count.
//
// A compaction that stops half-way (no space, an I/O error, Close) leaves
// its extent marked interrupted, and Compact finishes it before it
// compacts anything else, so no extent holding a moved copy is reset
// while the original still exists. A record whose checksum fails is not
// copied: it is dropped from the index (its bytes are lost on this drive
// either way) and the volume layer restores it from parity.
//
// A deleted block never comes back because its tombstone is kept as long
// as the incarnation of the extent holding the deleted record exists, and
// because every block record on disk is either live in the index or named
// by such a tombstone (compaction copies move entries; Put never writes a
// second record for a stored ID). Per-ID locks order a Delete and a
// compaction copy of the same ID.

// compactWindow bounds the copies in flight (and so the memory) of one
// compaction.
const compactWindow = 64 << 20

// Compact compacts the closed extent with the most reclaimable bytes (its
// size minus its live bytes), if that is at least minGarbage bytes. It
// reports whether it compacted one. An interrupted compaction is finished
// first; an extent closed without a footer (after a torn write on a zoned
// drive) counts as all garbage, so that it is rewritten soon.
func (e *Engine) Compact(ctx context.Context, minGarbage int64) (bool, error) {
	e.compactMu.Lock()
	defer e.compactMu.Unlock()
	e.mu.Lock()
	var best *extent
	var bestGarbage int64 = -1
	for _, x := range e.exts {
		if x.state != stateClosed || x.busy {
			continue
		}
		g := x.total - x.live
		if !x.footer {
			g = x.total // no footer: rescanned at every start until rewritten
		}
		if x.interrupted {
			// Finish an interrupted compaction before any other: until
			// then its moved records exist twice, and resetting the
			// extent that holds a copy would bring the original back.
			best, bestGarbage = x, x.total
			break
		}
		if g > bestGarbage {
			best, bestGarbage = x, g
		}
	}
	e.mu.Unlock()
	if best == nil || bestGarbage < minGarbage {
		return false, nil
	}
	if err := e.compactExtent(ctx, best); err != nil {
		return false, err
	}
	return true, nil
}

// compactExtent moves x's live records into the open extent and resets x.
func (e *Engine) compactExtent(ctx context.Context, x *extent) error {
	e.mu.Lock()
	if x.state != stateClosed || x.busy {
		e.mu.Unlock()
		return fmt.Errorf("engine: %s: extent %d is not a closed, idle extent", e.info.Path, x.slot)
	}
	x.busy = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		x.busy = false
		e.mu.Unlock()
	}()
	entries, inc, err := e.entries(ctx, x)
	if err != nil {
		return err
	}
	copied, dropped, lost := 0, 0, 0
	defer func() {
		if copied > 0 {
			e.mu.Lock()
			if x.state == stateClosed {
				x.interrupted = true // some records moved, the rest did not
			}
			e.mu.Unlock()
		}
	}()
	type inflight struct {
		r  *request
		id ID // locked, for blocks
	}
	var window []inflight
	var windowBytes int64
	wait := func() error {
		var first error
		for _, f := range window {
			if err := <-f.r.done; err != nil && first == nil {
				first = err
			}
			f.r.release()
			if f.r.hdr.Type == record.TypeBlock {
				e.unlock(f.id)
			}
		}
		window, windowBytes = window[:0], 0
		return first
	}
	for i := range entries {
		en := &entries[i]
		loc := x.loc(e.info, int64(en.Off)*record.BlockSize)
		switch en.Type {
		case record.TypeBlock:
			id := ID{en.Key, en.Frag}
			fp := index.Fingerprint(&id.Key, id.Frag)
			if err := e.lock(ctx, id); err != nil {
				wait()
				return err
			}
			e.mu.Lock()
			live := e.idx.Contains(fp, loc)
			e.mu.Unlock()
			if !live {
				e.unlock(id)
				continue
			}
			payload, err := e.readRecord(x, inc, loc, en)
			if errors.Is(err, record.ErrCorrupt) {
				// Its bytes are gone on this drive either way: drop it
				// from the index so that Has says so and the volume
				// layer's scrub restores it from parity.
				e.mu.Lock()
				if e.idx.Remove(fp, loc) {
					x.live -= en.Size()
				}
				e.mu.Unlock()
				e.unlock(id)
				e.log.Error("dropping a corrupt record while compacting", "extent", x.slot, "id", id, "offset", int64(loc)*record.BlockSize, "err", err)
				lost++
				continue
			}
			if err != nil {
				e.unlock(id)
				wait()
				return err
			}
			r := newRequest(record.Header{Type: record.TypeBlock, Flags: record.FlagCopy, Frag: en.Frag, Meta: en.Meta,
				Key: en.Key, Ref: loc, RefInc: inc}, payload)
			r.id = id
			if err := e.enqueue(r); err != nil {
				r.release()
				e.unlock(id)
				wait()
				return err
			}
			window = append(window, inflight{r, id})
			windowBytes += int64(len(r.buf))
			copied++
		case record.TypeTombstone:
			e.mu.Lock()
			t := e.extentOf(en.Ref)
			keep := t != nil && t != x && t.state != stateFree && t.inc == en.RefInc
			e.mu.Unlock()
			if !keep {
				dropped++
				continue
			}
			r := newRequest(record.Header{Type: record.TypeTombstone, Flags: record.FlagCopy, Frag: en.Frag, Meta: en.Meta,
				Key: en.Key, Ref: en.Ref, RefInc: en.RefInc}, nil)
			if err := e.enqueue(r); err != nil {
				wait()
				return err
			}
			window = append(window, inflight{r: r})
			windowBytes += int64(len(r.buf))
		}
		if windowBytes >= compactWindow || e.opts.serial {
			if err := wait(); err != nil {
				return err
			}
		}
	}
	if err := wait(); err != nil {
		return err
	}
	// Every copy is durable: the old incarnation can go.
	if err := e.resetZones(ctx, x, false); err != nil {
		return err
	}
	e.mu.Lock()
	x.state = stateFree
	x.entries = nil
	x.footer = false
	x.live = 0
	x.inc = 0
	x.tombs = nil
	x.interrupted = false
	for _, o := range e.exts { // tombstones for x's records are garbage now
		if b, ok := o.tombs[x.slot]; ok {
			o.live -= b
			delete(o.tombs, x.slot)
		}
	}
	e.mu.Unlock()
	e.log.Info("extent compacted", "extent", x.slot, "copied", copied, "tombstones_dropped", dropped, "corrupt_dropped", lost)
	copied = 0
	return nil
}

// readRecord reads the block record described by en at loc and checks it
// fully: header fields against the entry, payload CRC.
func (e *Engine) readRecord(x *extent, inc uint64, loc uint64, en *record.Entry) ([]byte, error) {
	b := zone.AlignedBlock(int(en.Size()))
	off := int64(loc) * record.BlockSize
	id := ID{en.Key, en.Frag}
	if err := x.read(e.dev, b, x.logical(e.info, off)); err != nil {
		return nil, &CorruptionError{Device: e.info.Path, Offset: off, ID: id, Err: err}
	}
	h, err := record.DecodeHeader(b)
	if err == nil && (h.Incarnation != inc || h.Key != en.Key || h.Frag != en.Frag || h.Length != en.Length || h.Seq != en.Seq) {
		err = fmt.Errorf("%w: header does not match the footer entry", record.ErrCorrupt)
	}
	if err == nil {
		err = h.CheckPayload(b[record.HeaderSize : record.HeaderSize+int(h.Length)])
	}
	if err != nil {
		return nil, &CorruptionError{Device: e.info.Path, Offset: off, ID: id, Err: err}
	}
	return b[record.HeaderSize : record.HeaderSize+int(h.Length)], nil
}
