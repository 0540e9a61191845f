package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stowage/stowage/osd/index"
	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// request is one record on its way to the disk. The caller builds the
// payload into buf (aligned, padded); the writer fills in the header.
type request struct {
	hdr  record.Header
	buf  []byte
	id   ID
	done chan error

	pooled *[]byte // buf's backing buffer, from bigBuffers

	target uint64 // tombstone: the record it deletes
	// Set by the writer.
	loc uint64
	ext *extent
	err error
}

// bigRecord is the buffer size of the pool for large records: a 4 MiB
// block with its header, padded.
var bigRecord = int(record.Align(record.HeaderSize + MaxBlock))

// bigBuffers recycles record buffers of more than 1 MiB: fresh 4 MiB
// allocations cost page faults and zeroing that show in CPU per GB.
var bigBuffers = sync.Pool{New: func() any { b := zone.AlignedBlock(bigRecord); return &b }}

func newRequest(h record.Header, payload []byte) *request {
	h.Length = uint32(len(payload))
	size := int(h.Size())
	var buf []byte
	var pooled *[]byte
	if size > 1<<20 && size <= bigRecord {
		pooled = bigBuffers.Get().(*[]byte)
		buf = (*pooled)[:size]
		clear(buf[:record.HeaderSize])
		clear(buf[record.HeaderSize+len(payload):])
	} else {
		buf = zone.AlignedBlock(size)
	}
	copy(buf[record.HeaderSize:], payload)
	h.PayloadCRC = record.Checksum(buf[record.HeaderSize : record.HeaderSize+len(payload)])
	return &request{hdr: h, buf: buf, pooled: pooled, done: make(chan error, 1)}
}

// release recycles r's buffer once nobody reads it any more.
func (r *request) release() {
	if r.pooled != nil {
		bigBuffers.Put(r.pooled)
		r.pooled, r.buf = nil, nil
	}
}

// submit queues r and waits until it is durable (or failed).
func (e *Engine) submit(r *request) error {
	if err := e.enqueue(r); err != nil {
		r.release()
		return err
	}
	err := <-r.done
	r.release()
	return err
}

func (e *Engine) enqueue(r *request) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closing {
		return ErrClosed
	}
	if e.failed != nil {
		return fmt.Errorf("engine: %s: refusing writes after an earlier write error: %w", e.info.Path, e.failed)
	}
	e.queue = append(e.queue, r)
	e.qcond.Signal()
	return nil
}

// writer is the single goroutine that writes: it takes everything queued
// (up to MaxBatchBytes) and appends it at the open extent's write pointer,
// then hands the batch to the flusher and goes on with the next batch
// while the flush runs (a pipelined group commit).
func (e *Engine) writer() {
	flushes := make(chan []*request, 2)
	flusherDone := make(chan struct{})
	go e.flusher(flushes, flusherDone)
	defer func() {
		close(flushes)
		<-flusherDone
		close(e.done)
	}()
	stage := zone.AlignedBlock(8 << 20)
	for {
		e.mu.Lock()
		for len(e.queue) == 0 && !e.closing {
			e.qcond.Wait()
		}
		if len(e.queue) == 0 {
			e.mu.Unlock()
			return
		}
		n, bytes := 0, 0
		for n < len(e.queue) && (n == 0 || bytes+len(e.queue[n].buf) <= e.opts.MaxBatchBytes) {
			bytes += len(e.queue[n].buf)
			n++
		}
		batch := append([]*request(nil), e.queue[:n]...)
		e.queue = append(e.queue[:0:0], e.queue[n:]...)
		failed := e.failed
		e.mu.Unlock()
		if failed == nil {
			if err := e.commit(batch, stage); err != nil {
				e.fail(err)
			}
		}
		if e.opts.serial {
			e.finish(batch) // tests: device operations in a fixed order
			continue
		}
		flushes <- batch
	}
}

// flush flushes the device's cache. Flushes never overlap: a flush
// covers the writes completed before it was issued, and one at a time
// keeps that true of what block-layer tracers such as dm-log-writes
// record (two overlapping flushes may credit a write to the later one).
// Overlapping flushes would buy nothing anyway.
func (e *Engine) flush(ctx context.Context) error {
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	return e.dev.Flush(ctx)
}

// fail makes err sticky: the engine takes no more writes.
func (e *Engine) fail(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.failed == nil {
		e.failed = err
		e.log.Error("write failed; the engine takes no more writes until reopened", "err", err)
	}
}

// flusher makes written batches durable with one Flush each, in order,
// then publishes their records in the index and acknowledges them.
func (e *Engine) flusher(batches <-chan []*request, done chan<- struct{}) {
	defer close(done)
	for batch := range batches {
		e.finish(batch)
	}
}

// finish flushes a written batch, publishes it and acknowledges it.
func (e *Engine) finish(batch []*request) {
	e.mu.Lock()
	failed := e.failed
	e.mu.Unlock()
	if failed == nil {
		if err := e.flush(context.Background()); err != nil {
			e.fail(fmt.Errorf("engine: flushing %s: %w", e.info.Path, err))
		}
	}
	e.mu.Lock()
	failed = e.failed
	if failed == nil {
		for _, r := range batch {
			if r.err == nil {
				e.publish(r)
			}
		}
	}
	e.mu.Unlock()
	for _, r := range batch {
		switch {
		case r.err != nil:
			r.done <- r.err
		case failed != nil:
			r.done <- fmt.Errorf("engine: %s: write not durable: %w", e.info.Path, failed)
		default:
			r.done <- nil
		}
	}
}

// publish applies a durable record to the index and the space accounting.
// e.mu is held.
func (e *Engine) publish(r *request) {
	size := int64(len(r.buf))
	fp := index.Fingerprint(&r.hdr.Key, r.hdr.Frag)
	switch r.hdr.Type {
	case record.TypeBlock:
		if r.hdr.Flags&record.FlagCopy != 0 {
			if !e.idx.Remove(fp, r.hdr.Ref) {
				// Cannot happen: the compactor holds the ID's lock.
				e.log.Error("compaction copy of a record no longer live", "id", r.id, "from", r.hdr.Ref)
				return
			}
			e.extentOf(r.hdr.Ref).live -= size
		}
		if err := e.idx.Insert(fp, r.loc); err != nil {
			e.log.Error("index insert", "err", err) // location checked at Open
			return
		}
		r.ext.live += size
	case record.TypeTombstone:
		if r.hdr.Flags&record.FlagCopy == 0 && e.idx.Remove(fp, r.target) {
			e.extentOf(r.target).live -= int64(r.hdr.Meta) * record.BlockSize
		}
		if t := e.extentOf(r.hdr.Ref); t != nil {
			r.ext.addTomb(t.slot, size)
		}
	}
}

// extentOf returns the extent that holds device block loc. e.mu is held
// or the extent list is not changing.
func (e *Engine) extentOf(loc uint64) *extent {
	z := e.info.ZoneOf(int64(loc) * record.BlockSize)
	s := (z - e.opts.FirstZone) / e.opts.ZonesPerExtent
	if z < e.opts.FirstZone || s >= len(e.exts) {
		return nil
	}
	return e.exts[s]
}

// commit writes batch (the flusher makes it durable). An error return
// means the device state is unknown. Per-request errors (no space) are
// left in r.err.
func (e *Engine) commit(batch []*request, stage []byte) error {
	var (
		x        *extent
		runStart int64 // logical start of the staged bytes in x
		staged   int
	)
	flushStage := func() error {
		if staged == 0 {
			return nil
		}
		err := x.write(e.dev, stage[:staged], runStart)
		runStart += int64(staged)
		staged = 0
		return err
	}
	e.mu.Lock()
	x = e.open
	if x != nil {
		runStart = x.used
	}
	e.mu.Unlock()
	for _, r := range batch {
		size := int64(len(r.buf))
		if x == nil || !x.fits(size) {
			if err := flushStage(); err != nil {
				return err
			}
			if x != nil {
				if err := e.closeExtent(x); err != nil {
					return err
				}
			}
			// Tombstones and compaction copies may take the last free
			// extent; new blocks may not, so that a full drive can
			// still delete and compact its way back to free space.
			nx, err := e.openExtent(r.hdr.Type == record.TypeTombstone || r.hdr.Flags&record.FlagCopy != 0)
			if errors.Is(err, ErrFull) {
				x = nil
				r.err = err
				continue
			}
			if err != nil {
				return err
			}
			x = nx
			runStart = x.used
			if !x.fits(size) {
				r.err = fmt.Errorf("%w: a %d-byte record does not fit an empty %d-byte extent", ErrTooLarge, size, x.total)
				continue
			}
		}
		e.mu.Lock()
		r.hdr.Seq = e.nextSeq
		e.nextSeq++
		r.hdr.Extent = uint32(x.slot)
		r.hdr.Incarnation = x.inc
		l := x.used
		x.used += size
		r.loc = x.loc(e.info, l)
		r.ext = x
		x.entries = append(x.entries, entryOf(&r.hdr, l))
		e.mu.Unlock()
		r.hdr.Encode(r.buf)
		if size >= 1<<20 {
			if err := flushStage(); err != nil {
				return err
			}
			if err := x.write(e.dev, r.buf, l); err != nil {
				return err
			}
			runStart = l + size
			continue
		}
		if staged+len(r.buf) > len(stage) {
			if err := flushStage(); err != nil {
				return err
			}
		}
		copy(stage[staged:], r.buf)
		staged += len(r.buf)
	}
	return flushStage()
}

func entryOf(h *record.Header, l int64) record.Entry {
	return record.Entry{Type: h.Type, Flags: h.Flags, Frag: h.Frag, Length: h.Length, Meta: h.Meta,
		Off: uint32(l / record.BlockSize), Seq: h.Seq, Ref: h.Ref, RefInc: h.RefInc, Key: h.Key}
}

// openExtent takes a free slot (the last one only with useReserve), resets its zones if a zoned device still
// holds data there, and writes the extent header (durable with the next
// flush; an extent whose header is lost is simply free again).
func (e *Engine) openExtent(useReserve bool) (*extent, error) {
	e.mu.Lock()
	var x *extent
	free := 0
	for _, c := range e.exts {
		if c.state == stateFree && !c.busy {
			if x == nil {
				x = c
			}
			free++
		}
	}
	if x == nil || (free == 1 && !useReserve) {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w on %s (%d free extents, one kept for deletes and compaction)", ErrFull, e.info.Path, free)
	}
	x.busy = true
	seq := e.nextSeq
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		x.busy = false
		e.mu.Unlock()
	}()
	ctx := context.Background()
	if e.zoned {
		if err := e.resetZones(ctx, x, true); err != nil {
			return nil, err
		}
	} else {
		// Whatever the slot held before (a never-used slot was not
		// reset by us): no old trailer, no old first record, durable
		// before the new header exists.
		if err := e.zeroTrailers(x); err != nil {
			return nil, err
		}
		if err := x.write(e.dev, e.zeros[:record.BlockSize], record.BlockSize); err != nil {
			return nil, fmt.Errorf("engine: clearing the first record of extent %d: %w", x.slot, err)
		}
		if err := e.flush(ctx); err != nil {
			return nil, fmt.Errorf("engine: flushing %s: %w", e.info.Path, err)
		}
	}
	inc := e.opts.Incarnation()
	zones := make([]uint32, len(x.zones))
	for i, z := range x.zones {
		zones[i] = uint32(z)
	}
	h := record.ExtentHeader{Extent: uint32(x.slot), Incarnation: inc, FirstSeq: seq, ZoneSize: uint64(e.info.ZoneSize), Zones: zones}
	b := zone.AlignedBlock(record.BlockSize)
	if err := h.Encode(b); err != nil {
		return nil, err
	}
	if err := x.write(e.dev, b, 0); err != nil {
		return nil, fmt.Errorf("engine: writing the header of extent %d: %w", x.slot, err)
	}
	e.mu.Lock()
	x.state = stateOpen
	x.inc = inc
	x.firstSeq = seq
	x.used = record.BlockSize
	x.entries = nil
	x.footer = false
	x.live = 0
	x.tombs = nil
	x.interrupted = false
	e.open = x
	e.mu.Unlock()
	e.log.Debug("extent opened", "extent", x.slot, "incarnation", inc, "first_seq", seq)
	return x, nil
}

// resetZones resets x's zones, the header zone first, and flushes. With
// onlyDirty it asks the device first and skips empty zones (zoned
// devices). On emulated zones, where a reset only zeroes a zone's first
// block, it also zeroes every trailer candidate (the last block of each
// zone) once the zeroed header is durable, so that no stale trailer
// outlives its incarnation: recovery may then trust a trailer to salvage
// an extent whose header was damaged.
func (e *Engine) resetZones(ctx context.Context, x *extent, onlyDirty bool) error {
	var zs []zone.Zone
	if onlyDirty {
		var err error
		if zs, err = e.dev.ReportZones(ctx, x.zones[0], len(x.zones)); err != nil {
			return fmt.Errorf("engine: zones of extent %d: %w", x.slot, err)
		}
	}
	flush := func() error {
		if err := e.flush(ctx); err != nil {
			return fmt.Errorf("engine: flushing %s after resetting extent %d: %w", e.info.Path, x.slot, err)
		}
		return nil
	}
	did := false
	for k, z := range x.zones {
		if zs != nil && zs[k].Cond == zone.CondEmpty {
			continue
		}
		if err := e.dev.Reset(ctx, z); err != nil {
			return fmt.Errorf("engine: resetting zone %d of extent %d: %w", z, x.slot, err)
		}
		did = true
		if k == 0 && !e.zoned {
			// The zeroed header must be durable before the trailers
			// go: zeroing a trailer candidate also zeroes record
			// bytes, which must never be read as a live extent.
			if err := flush(); err != nil {
				return err
			}
			if err := e.zeroTrailers(x); err != nil {
				return err
			}
		}
	}
	if !did {
		return nil
	}
	return flush()
}

// zeroTrailers overwrites the trailer candidates of x (emulated zones).
func (e *Engine) zeroTrailers(x *extent) error {
	z := e.zeros[:record.BlockSize]
	for k := range x.zones {
		if err := x.write(e.dev, z, x.start[k]+x.caps[k]-record.BlockSize); err != nil {
			return fmt.Errorf("engine: clearing the trailer candidates of extent %d: %w", x.slot, err)
		}
	}
	return nil
}

// closeExtent makes x's records durable, appends its footer and trailer,
// finishes its unused zones and flushes: x is closed.
func (e *Engine) closeExtent(x *extent) error {
	ctx := context.Background()
	if err := e.flush(ctx); err != nil { // records before the footer that lists them
		return fmt.Errorf("engine: flushing %s: %w", e.info.Path, err)
	}
	e.mu.Lock()
	entries := x.entries
	seq := e.nextSeq
	e.nextSeq++
	l := x.used
	e.mu.Unlock()
	payload := record.AppendFooter(make([]byte, 0, record.FooterLen(len(entries))), entries)
	r := newRequest(record.Header{Type: record.TypeFooter, Extent: uint32(x.slot), Incarnation: x.inc, Seq: seq}, payload)
	r.hdr.Encode(r.buf)
	if err := x.write(e.dev, r.buf, l); err != nil {
		return fmt.Errorf("engine: writing the footer of extent %d: %w", x.slot, err)
	}
	end := l + int64(len(r.buf))
	t := x.trailerAt(end)
	if e.zoned {
		for p := end; p < t; {
			n := min(t-p, int64(len(e.zeros)))
			if err := x.write(e.dev, e.zeros[:n], p); err != nil {
				return fmt.Errorf("engine: padding extent %d: %w", x.slot, err)
			}
			p += n
		}
	}
	tb := zone.AlignedBlock(record.BlockSize)
	tr := record.Trailer{Extent: uint32(x.slot), Incarnation: x.inc, FooterOff: uint64(l), FooterSize: uint64(len(r.buf)), LastSeq: seq}
	tr.Encode(tb)
	if err := x.write(e.dev, tb, t); err != nil {
		return fmt.Errorf("engine: writing the trailer of extent %d: %w", x.slot, err)
	}
	if e.zoned {
		for k := x.zoneAt(t) + 1; k < len(x.zones); k++ {
			if err := e.dev.Finish(ctx, x.zones[k]); err != nil {
				return fmt.Errorf("engine: finishing zone %d of extent %d: %w", x.zones[k], x.slot, err)
			}
		}
	}
	if err := e.flush(ctx); err != nil {
		return fmt.Errorf("engine: flushing %s: %w", e.info.Path, err)
	}
	e.mu.Lock()
	x.state = stateClosed
	x.footer = true
	x.entries = nil
	x.used = end
	if e.open == x {
		e.open = nil
	}
	e.mu.Unlock()
	e.log.Debug("extent closed", "extent", x.slot, "records", len(entries), "footer_offset", x.device(e.info, l))
	return nil
}
