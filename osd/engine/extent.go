package engine

import (
	"context"
	"fmt"

	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

type extentState int

const (
	stateFree extentState = iota
	stateOpen
	stateClosed
)

// extent is one slot: a run of whole zones. Its logical address space is
// the concatenation of its zones' capacities.
type extent struct {
	slot  int
	zones []int   // device zones
	caps  []int64 // writable bytes of each zone
	start []int64 // logical offset where each zone starts
	total int64   // logical bytes

	state    extentState
	inc      uint64
	firstSeq uint64
	used     int64          // open: logical bytes written (header included)
	entries  []record.Entry // open, or closed without a usable footer: every record
	footer   bool           // closed: the footer is on disk (else entries holds them)
	live     int64          // bytes of live blocks and of tombstones still needed
	busy     bool           // being compacted (or opened)
	// tombs counts the bytes of this extent's tombstones by the slot of
	// the extent holding the record each deletes: when that extent is
	// reset they become garbage.
	tombs map[int]int64
	// interrupted: a compaction copied records out of this extent and did
	// not finish; until it does, no tombstone may be dropped.
	interrupted bool
}

func (x *extent) addTomb(target int, size int64) {
	if x.tombs == nil {
		x.tombs = map[int]int64{}
	}
	x.tombs[target] += size
	x.live += size
}

// logical maps a device byte offset inside the extent to a logical one.
func (x *extent) logical(info zone.Info, off int64) int64 {
	z := info.ZoneOf(off)
	k := z - x.zones[0]
	return x.start[k] + off - info.ZoneStart(z)
}

// device maps a logical offset to a device byte offset.
func (x *extent) device(info zone.Info, l int64) int64 {
	k := x.zoneAt(l)
	return info.ZoneStart(x.zones[k]) + l - x.start[k]
}

// zoneAt returns the index (in x.zones) of the zone holding logical l.
func (x *extent) zoneAt(l int64) int {
	k := len(x.start) - 1
	for k > 0 && x.start[k] > l {
		k--
	}
	return k
}

// loc returns the index location (device block number) of logical l.
func (x *extent) loc(info zone.Info, l int64) uint64 {
	return uint64(x.device(info, l) / record.BlockSize)
}

// io runs fn over the pieces of the logical range [l, l+len(p)) that lie
// in one zone each.
func (x *extent) io(info zone.Info, p []byte, l int64, fn func(p []byte, off int64) error) error {
	if l < 0 || l+int64(len(p)) > x.total {
		return fmt.Errorf("%w: logical range [%d, %d) of extent %d (%d bytes)", zone.ErrOutOfRange, l, l+int64(len(p)), x.slot, x.total)
	}
	for len(p) > 0 {
		k := x.zoneAt(l)
		n := min(int64(len(p)), x.start[k]+x.caps[k]-l)
		if err := fn(p[:n], info.ZoneStart(x.zones[k])+l-x.start[k]); err != nil {
			return err
		}
		p, l = p[n:], l+n
	}
	return nil
}

func (x *extent) read(dev zone.Device, p []byte, l int64) error {
	info := dev.Info()
	return x.io(info, p, l, func(p []byte, off int64) error {
		if _, err := dev.ReadAt(p, off); err != nil {
			return fmt.Errorf("reading %d bytes at offset %d of %s: %w", len(p), off, info.Path, err)
		}
		return nil
	})
}

func (x *extent) write(dev zone.Device, p []byte, l int64) error {
	info := dev.Info()
	return x.io(info, p, l, func(p []byte, off int64) error {
		if _, err := dev.WriteAt(p, off); err != nil {
			return fmt.Errorf("writing %d bytes at offset %d of %s: %w", len(p), off, info.Path, err)
		}
		return nil
	})
}

// fits reports whether a record of size bytes can be appended while
// keeping room for the footer (listing one more entry) and the trailer.
func (x *extent) fits(size int64) bool {
	footer := record.Align(record.HeaderSize + int64(record.FooterLen(len(x.entries)+1)))
	return x.used+size+footer+record.BlockSize <= x.total
}

// trailerAt returns the logical offset of the trailer for a footer that
// ends at logical end.
func (x *extent) trailerAt(end int64) int64 {
	k := x.zoneAt(end)
	return x.start[k] + x.caps[k] - record.BlockSize
}

// entries returns the records of x: from memory for an open extent or a
// closed one without a footer, else from its footer on disk.
func (e *Engine) entries(ctx context.Context, x *extent) ([]record.Entry, uint64, error) {
	e.mu.Lock()
	state, inc, footer := x.state, x.inc, x.footer
	if state == stateFree {
		e.mu.Unlock()
		return nil, 0, nil
	}
	if state == stateOpen || !footer {
		es := append([]record.Entry(nil), x.entries...)
		e.mu.Unlock()
		return es, inc, nil
	}
	e.mu.Unlock()
	es, err := e.readFooter(ctx, x, inc)
	return es, inc, err
}

// readFooter finds the trailer of closed extent x and decodes its footer.
func (e *Engine) readFooter(_ context.Context, x *extent, inc uint64) ([]record.Entry, error) {
	tr, err := e.findTrailer(x, inc, nil)
	if err != nil {
		return nil, err
	}
	if tr == nil {
		return nil, fmt.Errorf("engine: %s: extent %d: no trailer", e.info.Path, x.slot)
	}
	return e.decodeFooterAt(x, inc, tr)
}

func (e *Engine) decodeFooterAt(x *extent, inc uint64, tr *record.Trailer) ([]record.Entry, error) {
	if tr.FooterOff < record.BlockSize || int64(tr.FooterOff+tr.FooterSize) > x.total || tr.FooterSize > 1<<31 {
		return nil, fmt.Errorf("engine: %s: extent %d: trailer points at [%d, +%d): %w", e.info.Path, x.slot, tr.FooterOff, tr.FooterSize, record.ErrCorrupt)
	}
	b := zone.AlignedBlock(int(tr.FooterSize))
	if err := x.read(e.dev, b, int64(tr.FooterOff)); err != nil {
		return nil, err
	}
	h, err := record.DecodeHeader(b)
	if err == nil && (h.Type != record.TypeFooter || h.Incarnation != inc || h.Extent != uint32(x.slot) || h.Size() != int64(tr.FooterSize)) {
		err = fmt.Errorf("%w: footer header %+v does not match the trailer", record.ErrCorrupt, h)
	}
	if err == nil {
		err = h.CheckPayload(b[record.HeaderSize : record.HeaderSize+int(h.Length)])
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %s: extent %d: footer at offset %d: %w", e.info.Path, x.slot, x.device(e.info, int64(tr.FooterOff)), err)
	}
	es, err := record.DecodeFooter(b[record.HeaderSize : record.HeaderSize+int(h.Length)])
	if err != nil {
		return nil, fmt.Errorf("engine: %s: extent %d: footer at offset %d: %w", e.info.Path, x.slot, x.device(e.info, int64(tr.FooterOff)), err)
	}
	return es, nil
}

// findTrailer looks for x's trailer in the last block of each of its
// zones, last zone first. zs, when not nil, is the zones' reported state.
func (e *Engine) findTrailer(x *extent, inc uint64, zs []zone.Zone) (*record.Trailer, error) {
	b := zone.AlignedBlock(record.BlockSize)
	for k := len(x.zones) - 1; k >= 0; k-- {
		if zs != nil && zs[k].Cond != zone.CondFull {
			continue // writing the trailer fills its zone
		}
		l := x.start[k] + x.caps[k] - record.BlockSize
		if err := x.read(e.dev, b, l); err != nil {
			return nil, fmt.Errorf("engine: extent %d: reading a trailer candidate: %w", x.slot, err)
		}
		tr, err := record.DecodeTrailer(b)
		if err != nil || tr.Extent != uint32(x.slot) || tr.Incarnation != inc {
			continue
		}
		return &tr, nil
	}
	return nil, nil
}
