// Package engine is the OSD's single-drive storage engine: it stores
// immutable blocks (or erasure-coded fragments of them) keyed by SHA-256
// in append-only extents of whole zones on one zone.Device, keeps a compact
// in-memory index, recovers after a crash, deletes with tombstones and
// reclaims space by compaction.
//
// The on-disk format is drawn in ../record/FORMAT.md. In short: the
// drive's zones from Options.FirstZone on are cut into extent slots of
// Options.ZonesPerExtent zones; one extent at a time is open for appends;
// each record carries the extent's random incarnation and a drive-wide
// sequence number; a closed extent ends with a footer index and a trailer.
//
// Guarantees:
//   - Put, Delete return only when the record is durable (write + Flush);
//     concurrent calls share one Flush (group commit).
//   - One writer goroutine: at most one write in flight, at the write
//     pointer of the open extent, and one open extent, whose zones fill
//     in order: one zone is active at a time (the zoned tests run with
//     MaxOpen = MaxActive = 1).
//   - Open recovers every acknowledged record; a torn tail is dropped.
//   - A crash at any point of a compaction loses no live block and
//     resurrects no deleted one (see compact.go for the argument).
package engine

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/stowage/stowage/osd/index"
	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// MaxBlock is the largest block (or fragment) the engine stores.
const MaxBlock = 4 << 20

// DefaultZonesPerExtent is the extent size in zones: 4 × 256 MiB = 1 GiB.
const DefaultZonesPerExtent = 4

// seqGap is added to the highest sequence number seen when the engine
// opens: any record of an unacknowledged batch that survived a crash behind
// a torn one has a lower number than every record written after the
// restart, so a scan, which demands increasing numbers, never accepts it.
const seqGap = 1 << 32

// Errors callers branch on.
var (
	ErrNotFound    = errors.New("engine: not found")
	ErrFull        = errors.New("engine: no free extent")
	ErrTooLarge    = errors.New("engine: block larger than 4 MiB")
	ErrEmpty       = errors.New("engine: empty block")
	ErrKeyMismatch = errors.New("engine: SHA-256 of the data does not match the key")
	ErrClosed      = errors.New("engine: closed")
)

// CorruptionError says that the bytes of a stored record are bad: the
// volume layer reconstructs the block from parity when it sees one.
type CorruptionError struct {
	Device string
	Offset int64 // byte offset of the record on the device
	ID     ID
	Err    error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("engine: corrupt record for %v on %s at offset %d: %v", e.ID, e.Device, e.Offset, e.Err)
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// ID names what the engine stores: a block's SHA-256 and a fragment
// number (0 for a whole block; the volume layer numbers fragments).
type ID struct {
	Key  [32]byte
	Frag uint16
}

func (id ID) String() string { return fmt.Sprintf("%x/%d", id.Key[:8], id.Frag) }

// BlockID returns the ID of a whole block: its SHA-256 and fragment 0.
func BlockID(data []byte) ID { return ID{Key: sha256.Sum256(data)} }

// Options configure Open. The zero value is the documented defaults.
type Options struct {
	// FirstZone is the first zone the engine may use; the zones below it
	// are reserved (hwmgr's drive label: two zones on a zoned drive, the
	// first on an emulated one).
	FirstZone int
	// ZonesPerExtent is the extent size in zones. Default 4. It must
	// match what the drive was written with.
	ZonesPerExtent int
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// VerifyKey makes Put check SHA-256(data) == key for whole blocks
	// (fragment 0). Fragments cannot be checked here.
	VerifyKey bool
	// MaxBatchBytes bounds the bytes of one group commit. Default 64 MiB.
	MaxBatchBytes int
	// Incarnation draws the random incarnation of a newly opened extent.
	// Default: crypto/rand. Tests set it to replay a seed exactly.
	Incarnation func() uint64

	// serial makes the writer flush each batch itself before writing the
	// next, so that device operations come in an order fixed by the
	// workload (crash tests replay a seed exactly).
	serial bool
}

// Stats is a snapshot of the engine's state.
type Stats struct {
	Blocks        int   // live blocks in the index
	IndexBytes    int   // memory the index holds
	Extents       int   // extent slots
	FreeExtents   int   // slots free for new extents
	ClosedExtents int   // slots holding closed extents
	LiveBytes     int64 // on-disk bytes of live records (blocks and needed tombstones)
	Capacity      int64 // bytes of all extents
	FreeBytes     int64 // bytes of free extents plus the open extent's unwritten rest
	Seq           uint64
}

// Engine stores blocks on one device. It is safe for concurrent use.
type Engine struct {
	dev   zone.Device
	info  zone.Info
	opts  Options
	log   *slog.Logger
	zoned bool

	mu      sync.Mutex
	idx     *index.Table
	exts    []*extent
	open    *extent // the extent appends go to; nil until the first one
	nextSeq uint64
	busy    map[ID]chan struct{} // one write per ID in flight
	queue   []*request
	qcond   *sync.Cond
	closing bool
	failed  error // sticky: after a failed write the engine takes no more writes

	compactMu sync.Mutex // one compaction at a time
	flushMu   sync.Mutex // one device flush at a time
	done      chan struct{}
	zeros     []byte // aligned zero buffer for padding on zoned devices
}

// Open recovers the engine's state from dev and starts serving. dev stays
// owned by the caller: close it after Engine.Close.
func Open(ctx context.Context, dev zone.Device, opts Options) (*Engine, error) {
	if opts.ZonesPerExtent == 0 {
		opts.ZonesPerExtent = DefaultZonesPerExtent
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBatchBytes == 0 {
		opts.MaxBatchBytes = 64 << 20
	}
	if opts.Incarnation == nil {
		opts.Incarnation = randomIncarnation
	}
	info := dev.Info()
	if info.BlockSize > record.BlockSize || record.BlockSize%info.BlockSize != 0 {
		return nil, fmt.Errorf("engine: %s: block size %d does not divide %d", info.Path, info.BlockSize, record.BlockSize)
	}
	if opts.ZonesPerExtent < 1 || opts.ZonesPerExtent > record.MaxExtentZones || opts.FirstZone < 0 {
		return nil, fmt.Errorf("engine: %s: bad geometry: first zone %d, %d zones per extent", info.Path, opts.FirstZone, opts.ZonesPerExtent)
	}
	if n := (info.NumZones - opts.FirstZone) / opts.ZonesPerExtent; n < 2 {
		return nil, fmt.Errorf("engine: %s: %d zones from zone %d hold %d extents of %d zones, need at least 2", info.Path, info.NumZones, opts.FirstZone, n, opts.ZonesPerExtent)
	}
	if info.Size/record.BlockSize > index.MaxLocation {
		return nil, fmt.Errorf("engine: %s: %d bytes is more than the index can address", info.Path, info.Size)
	}
	e := &Engine{
		dev:   dev,
		info:  info,
		opts:  opts,
		log:   opts.Logger.With("device", info.Path),
		zoned: info.Kind == zone.KindZoned,
		busy:  map[ID]chan struct{}{},
		done:  make(chan struct{}),
		zeros: zone.AlignedBlock(1 << 20),
	}
	e.qcond = sync.NewCond(&e.mu)
	interrupted, err := e.recover(ctx)
	if err != nil {
		return nil, err
	}
	go e.writer()
	for _, x := range interrupted {
		e.log.Info("finishing an interrupted compaction", "extent", x.slot)
		if err := e.compactExtent(ctx, x); err != nil {
			// Serve anyway: x stays marked interrupted, which keeps every
			// tombstone until a later compaction of x succeeds.
			e.log.Error("finishing an interrupted compaction failed", "extent", x.slot, "err", err)
		}
	}
	return e, nil
}

func randomIncarnation() uint64 {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic(fmt.Sprintf("engine: crypto/rand failed: %v", err)) // crypto/rand does not fail on Linux
		}
		if v := binary.LittleEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Close stops the writer after the queued writes. It leaves the open
// extent open (recovery replays it) and does not close the device.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil
	}
	e.closing = true
	e.qcond.Broadcast()
	e.mu.Unlock()
	<-e.done
	// A running compaction's copies fail with ErrClosed now; wait until it
	// has stopped touching the device.
	e.compactMu.Lock()
	defer e.compactMu.Unlock()
	return nil
}

// Stats returns a snapshot of the engine's state.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Blocks: e.idx.Len(), IndexBytes: e.idx.Bytes(), Extents: len(e.exts), Seq: e.nextSeq}
	for _, x := range e.exts {
		s.Capacity += x.total
		switch x.state {
		case stateFree:
			s.FreeExtents++
			s.FreeBytes += x.total
		case stateOpen:
			s.FreeBytes += x.total - x.used
		case stateClosed:
			s.ClosedExtents++
		}
		s.LiveBytes += x.live
	}
	return s
}

// lock takes the per-ID write lock.
func (e *Engine) lock(ctx context.Context, id ID) error {
	for {
		e.mu.Lock()
		ch, ok := e.busy[id]
		if !ok {
			e.busy[id] = make(chan struct{})
			e.mu.Unlock()
			return nil
		}
		e.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (e *Engine) unlock(id ID) {
	e.mu.Lock()
	ch := e.busy[id]
	delete(e.busy, id)
	e.mu.Unlock()
	close(ch)
}

// Put stores data under id and returns once it is durable. Putting an ID
// that is already stored is a no-op (blocks are immutable).
func (e *Engine) Put(ctx context.Context, id ID, data []byte) error {
	return e.PutMeta(ctx, id, 0, data)
}

// PutMeta is Put with 32 bits of caller metadata kept in the record header
// (the volume layer stores the whole block's length there).
func (e *Engine) PutMeta(ctx context.Context, id ID, meta uint32, data []byte) error {
	if len(data) == 0 {
		return ErrEmpty
	}
	if len(data) > MaxBlock {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	if e.opts.VerifyKey && id.Frag == 0 && sha256.Sum256(data) != id.Key {
		return fmt.Errorf("%w: %v", ErrKeyMismatch, id)
	}
	if err := e.lock(ctx, id); err != nil {
		return err
	}
	defer e.unlock(id)
	if _, _, err := e.find(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		var ce *CorruptionError
		if !errors.As(err, &ce) {
			return err
		}
		// A corrupt copy: store a good one; the new record wins.
	}
	r := newRequest(record.Header{Type: record.TypeBlock, Frag: id.Frag, Meta: meta, Key: id.Key}, data)
	r.id = id
	return e.submit(r)
}

// Delete appends a durable tombstone for id. It returns ErrNotFound when
// id is not stored.
func (e *Engine) Delete(ctx context.Context, id ID) error {
	if err := e.lock(ctx, id); err != nil {
		return err
	}
	defer e.unlock(id)
	loc, h, err := e.find(ctx, id)
	var ce *CorruptionError
	switch {
	case errors.As(err, &ce):
		loc = uint64(ce.Offset / record.BlockSize) // delete what the index points at
		h = &record.Header{}
	case err != nil:
		return err
	}
	e.mu.Lock()
	x := e.extentOf(loc)
	inc := x.inc
	e.mu.Unlock()
	r := newRequest(record.Header{Type: record.TypeTombstone, Frag: id.Frag, Key: id.Key,
		Ref: loc, RefInc: inc, Meta: uint32(h.Size() / record.BlockSize)}, nil)
	r.id = id
	r.target = loc
	return e.submit(r)
}

// Info describes a stored record.
type Info struct {
	Size int    // payload bytes
	Meta uint32 // caller metadata (PutMeta)
	Seq  uint64
}

// Stat returns what the record for id holds, checking its header (not its
// payload).
func (e *Engine) Stat(ctx context.Context, id ID) (Info, error) {
	_, h, err := e.find(ctx, id)
	if err != nil {
		return Info{}, err
	}
	return Info{Size: int(h.Length), Meta: h.Meta, Seq: h.Seq}, nil
}

// Has reports whether id is stored.
func (e *Engine) Has(ctx context.Context, id ID) (bool, error) {
	_, _, err := e.find(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Get returns the data stored under id, its payload CRC and key checked.
// Bad bytes give a *CorruptionError.
func (e *Engine) Get(ctx context.Context, id ID) ([]byte, error) {
	data, _, err := e.get(ctx, id, nil)
	return data, err
}

// GetMeta is Get that also returns the record's metadata.
func (e *Engine) GetMeta(ctx context.Context, id ID) ([]byte, uint32, error) {
	return e.get(ctx, id, nil)
}

// GetMetaBuf is GetMeta reading the record into buf, which must be
// aligned for O_DIRECT (zone.AlignedBlock): the payload returned is a
// slice of buf when the whole record (header and payload, ReadBufSize)
// fits, else of a new buffer. buf is the caller's again once it no longer
// uses the payload, so that reads of large fragments allocate nothing.
//
// guess > 0 is the record's likely size (ReadBufSize of the payload): the
// first read then takes that much (within buf and what the extent holds)
// instead of the header block alone, so that a right guess reads the
// record in one I/O rather than two. The header and the payload CRC are
// checked the same way; anything unexpected falls back to the two reads.
func (e *Engine) GetMetaBuf(ctx context.Context, id ID, buf []byte, guess int) ([]byte, uint32, error) {
	if guess > record.BlockSize && len(buf) >= guess {
		if data, meta, ok := e.getOnce(ctx, id, buf[:guess]); ok {
			return data, meta, nil
		}
	}
	return e.get(ctx, id, buf)
}

// getOnce reads id's record with one read of up to len(buf) bytes from
// its start; ok is false when that did not give the whole record, good.
func (e *Engine) getOnce(ctx context.Context, id ID, buf []byte) (data []byte, meta uint32, ok bool) {
	if ctx.Err() != nil {
		return nil, 0, false
	}
	fp := index.Fingerprint(&id.Key, id.Frag)
	var lb [4]uint64
	e.mu.Lock()
	locs := e.idx.Lookup(fp, lb[:0])
	if len(locs) != 1 {
		e.mu.Unlock()
		return nil, 0, false
	}
	loc := locs[0]
	x := e.extentOf(loc)
	if x == nil || x.state == stateFree {
		e.mu.Unlock()
		return nil, 0, false
	}
	off := int64(loc) * record.BlockSize
	l := x.logical(e.info, off)
	end := x.total
	if x.state == stateOpen {
		end = x.used
	}
	inc := x.inc
	e.mu.Unlock()
	n := min(int64(len(buf)), end-l) &^ (record.BlockSize - 1)
	if n < record.BlockSize {
		return nil, 0, false
	}
	b := buf[:n]
	if err := x.read(e.dev, b, l); err != nil {
		return nil, 0, false
	}
	h, err := record.DecodeHeader(b)
	if err != nil || h.Type != record.TypeBlock || h.Incarnation != inc || h.Key != id.Key || h.Frag != id.Frag || h.Size() > n {
		return nil, 0, false
	}
	p := b[record.HeaderSize : record.HeaderSize+int(h.Length)]
	if h.CheckPayload(p) != nil {
		return nil, 0, false
	}
	return p, h.Meta, true
}

// ReadBufSize is the buffer GetMetaBuf needs for a payload of n bytes.
func ReadBufSize(n int) int { return int(record.Align(record.HeaderSize + int64(n))) }

func (e *Engine) get(ctx context.Context, id ID, buf []byte) ([]byte, uint32, error) {
	for attempt := 0; ; attempt++ {
		loc, h, first, err := e.findBlock(ctx, id, buf)
		if err != nil {
			return nil, 0, err
		}
		data, err := e.readPayload(loc, h, first, buf)
		if err == nil {
			return data, h.Meta, nil
		}
		if attempt < 3 && e.moved(id, loc) {
			continue // compaction moved it between the lookup and the read
		}
		return nil, 0, err
	}
}

func (e *Engine) moved(id ID, loc uint64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.idx.Contains(index.Fingerprint(&id.Key, id.Frag), loc)
}

// find returns the location and header of id's live record.
func (e *Engine) find(ctx context.Context, id ID) (uint64, *record.Header, error) {
	loc, h, _, err := e.findBlock(ctx, id, nil)
	return loc, h, err
}

// findBlock is find that also returns the record's first block, read into
// buf when it has room (else into a new buffer).
func (e *Engine) findBlock(ctx context.Context, id ID, buf []byte) (uint64, *record.Header, []byte, error) {
	fp := index.Fingerprint(&id.Key, id.Frag)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return 0, nil, nil, err
		}
		e.mu.Lock()
		var lb [4]uint64
		locs := e.idx.Lookup(fp, lb[:0])
		incs := make([]uint64, len(locs))
		for i, l := range locs {
			incs[i] = e.extentOf(l).inc
		}
		e.mu.Unlock()
		var bad error
		retry := false
		for i, loc := range locs {
			h, first, err := e.readHeader(loc, incs[i], buf)
			if err != nil {
				if e.moved(id, loc) {
					retry = true
					continue
				}
				if bad == nil {
					bad = &CorruptionError{Device: e.info.Path, Offset: int64(loc) * record.BlockSize, ID: id, Err: err}
				}
				continue
			}
			if h.Key == id.Key && h.Frag == id.Frag {
				return loc, h, first, nil
			}
		}
		if retry && attempt < 3 {
			continue
		}
		if bad != nil {
			return 0, nil, nil, bad
		}
		return 0, nil, nil, ErrNotFound
	}
}

// readHeader reads and checks the header of the record at loc, which
// belongs to an extent of incarnation inc, into buf when it has room.
func (e *Engine) readHeader(loc, inc uint64, buf []byte) (*record.Header, []byte, error) {
	b := buf
	if len(b) >= record.BlockSize {
		b = b[:record.BlockSize]
	} else {
		b = zone.AlignedBlock(record.BlockSize)
	}
	off := int64(loc) * record.BlockSize
	if _, err := e.dev.ReadAt(b, off); err != nil {
		return nil, nil, fmt.Errorf("reading record header at offset %d: %w", off, err)
	}
	h, err := record.DecodeHeader(b)
	if err != nil {
		return nil, nil, err
	}
	if h.Type != record.TypeBlock || h.Incarnation != inc {
		return nil, nil, fmt.Errorf("%w: record at offset %d: type %v, incarnation %#x, want a block of incarnation %#x", record.ErrCorrupt, off, h.Type, h.Incarnation, inc)
	}
	return &h, b, nil
}

// readPayload reads the rest of the record at loc whose header is h (first
// holds its first block, already read) into buf (nil or too small: a new
// buffer) and checks its payload CRC.
func (e *Engine) readPayload(loc uint64, h *record.Header, first, buf []byte) ([]byte, error) {
	e.mu.Lock()
	x := e.extentOf(loc)
	e.mu.Unlock()
	b := first
	off := int64(loc) * record.BlockSize
	if h.Size() > record.BlockSize {
		if int64(len(buf)) >= h.Size() {
			b = buf[:h.Size()] // first is its start already
		} else {
			b = zone.AlignedBlock(int(h.Size()))
			copy(b, first)
		}
		if err := x.read(e.dev, b[record.BlockSize:], x.logical(e.info, off)+record.BlockSize); err != nil {
			return nil, &CorruptionError{Device: e.info.Path, Offset: off, ID: ID{h.Key, h.Frag}, Err: err}
		}
	}
	p := b[record.HeaderSize : record.HeaderSize+int(h.Length)]
	if err := h.CheckPayload(p); err != nil {
		return nil, &CorruptionError{Device: e.info.Path, Offset: off, ID: ID{h.Key, h.Frag}, Err: err}
	}
	return p, nil
}

// Scan calls fn for every live block, extent by extent in disk order, until
// fn returns an error, which Scan returns. Compaction waits while a Scan
// runs, so no block is missed by moving; blocks put or deleted during the
// scan may or may not be seen. fn must not call Compact or Close.
func (e *Engine) Scan(ctx context.Context, fn func(id ID, info Info) error) error {
	e.compactMu.Lock()
	defer e.compactMu.Unlock()
	e.mu.Lock()
	exts := append([]*extent(nil), e.exts...)
	e.mu.Unlock()
	for _, x := range exts {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, _, err := e.entries(ctx, x)
		if err != nil {
			return err
		}
		for i := range entries {
			en := &entries[i]
			if en.Type != record.TypeBlock {
				continue
			}
			e.mu.Lock()
			live := e.idx.Contains(index.Fingerprint(&en.Key, en.Frag), x.loc(e.info, int64(en.Off)*record.BlockSize))
			e.mu.Unlock()
			if !live {
				continue
			}
			if err := fn(ID{en.Key, en.Frag}, Info{Size: int(en.Length), Meta: en.Meta, Seq: en.Seq}); err != nil {
				return err
			}
		}
	}
	return nil
}
