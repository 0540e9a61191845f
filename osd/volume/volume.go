// Package volume stores blocks erasure-coded across the k+m single-drive
// engines (osd/engine) of one volume: a block is split into k data
// fragments, m parity fragments are computed with klauspost/reedsolomon,
// and fragment i is appended to the engine of slot i. A Put returns only
// when all k+m fragments are durable, so every acknowledged block survives
// the loss of any m drives. Reads verify every fragment (the engine's
// CRC32C) and the block's SHA-256, and reconstruct bad or missing
// fragments from parity; Repair, Rebuild and Scrub write them back.
//
// The volume's layout (volume id, code, slot, member drives, geometry) is
// the owner payload of each member drive's label (hwmgr/label), so Open
// finds the volume again from its drives alone. layout.go draws the format.
package volume

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/klauspost/reedsolomon"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/engine"
	"github.com/stowage/stowage/osd/zone"
)

// Owner is the label owner name of a drive in a volume.
const Owner = "osd"

// Errors callers branch on.
var (
	ErrNotFound      = errors.New("volume: block not found")
	ErrKeyMismatch   = errors.New("volume: SHA-256 of the data does not match the key")
	ErrEmpty         = errors.New("volume: empty block")
	ErrTooLarge      = errors.New("volume: block larger than the volume's maximum")
	ErrUnrecoverable = errors.New("volume: block unrecoverable: fewer than k good fragments")
	ErrDegraded      = errors.New("volume: a slot has no drive; writes need all k+m")
	ErrInUse         = errors.New("volume: drive belongs to a volume or is not free")
	ErrClosed        = errors.New("volume: closed")
)

// Key is a block's SHA-256.
type Key = [32]byte

// DamageKind says what was wrong with a fragment.
type DamageKind int

// Damage kinds.
const (
	Missing  DamageKind = iota + 1 // the engine does not hold the fragment
	Corrupt                        // the engine's CRC or header check failed
	IOError                        // the drive failed the read
	Lost                           // the slot has no drive
	Mismatch                       // checksums good, but it disagrees with the block's SHA-256 or the parity
)

func (k DamageKind) String() string {
	switch k {
	case Missing:
		return "missing"
	case Corrupt:
		return "corrupt"
	case IOError:
		return "io-error"
	case Lost:
		return "lost"
	case Mismatch:
		return "mismatch"
	}
	return fmt.Sprintf("DamageKind(%d)", int(k))
}

// Damage is one bad fragment found by a read.
type Damage struct {
	Key  Key
	Slot int
	Kind DamageKind
	Err  error // the engine's error, if any
}

func (d Damage) String() string {
	return fmt.Sprintf("%x slot %d: %v", d.Key[:8], d.Slot, d.Kind)
}

// Options configure Create and Open. The zero value is the documented
// defaults.
type Options struct {
	// K and M are the code of a new volume (Create). Default 4+2.
	K, M int
	// ZonesPerExtent is the engine's extent size in zones (Create; Open
	// takes it from the layout). Default engine.DefaultZonesPerExtent.
	ZonesPerExtent int
	// MaxBlock is the largest block (Create). Default engine.MaxBlock.
	MaxBlock int
	// ID picks the volume Open assembles when the devices hold several.
	ID UUID
	// OnDamage, if set, is called (synchronously) for every bad fragment
	// a read finds: the repair queue hook. Get still returns the block.
	OnDamage func(Damage)
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Engine is passed to every engine (FirstZone and ZonesPerExtent are
	// set by the volume).
	Engine engine.Options
}

type slot struct {
	dev  zone.Device
	area *label.Area // nil when the label could not be read
	eng  *engine.Engine
	// rebuilding: a replacement still being filled; its missing
	// fragments say nothing about whether a block exists.
	rebuilding bool
	// mirror, during Replace: the engine of the drive taking over the
	// slot; Puts and Deletes go to it too.
	mirror *engine.Engine
}

// Volume is a set of k+m engines holding erasure-coded blocks. It is safe
// for concurrent use.
type Volume struct {
	k, m     int
	maxBlock int
	enc      reedsolomon.Encoder
	log      *slog.Logger
	onDamage func(Damage)
	engOpts  engine.Options

	mu         sync.RWMutex
	layout     Layout  // Slot is meaningless here
	slots      []*slot // nil entry: no drive (lost)
	rebuilding bool
	closed     bool

	keyLocks [256]sync.Mutex
	ioErrors [MaxK + MaxM]atomic.Int64 // failed fragment reads per slot
	// bufs recycles Put's fragment buffers of large blocks (the engine
	// copies what it writes, so a buffer is free once PutMeta returns).
	bufs sync.Pool
	// readBufs recycles aligned buffers that reads of fragments go into
	// (engine.ReadBufSize of the largest fragment each); a Block gives
	// them back on Release.
	readBufs sync.Pool
	// reading counts each slot's fragment reads in flight: a read picks
	// the k least busy slots.
	reading [MaxK + MaxM]atomic.Int32
	// lastRec is the record size (engine.ReadBufSize) of the last
	// fragment read, and streak how many reads in a row found that size:
	// once the sizes are steady (a run of 4 MiB blocks), reads guess it
	// and fetch each fragment in one I/O (engine.GetMetaBuf).
	lastRec atomic.Int64
	streak  atomic.Int32
}

// steadyReads is the streak of same-sized fragment reads after which a
// read guesses the size: a mixed workload, whose wrong guesses would
// read more than needed, rarely gets there.
const steadyReads = 16

// guess returns the record size a fragment read should guess (0: none).
func (v *Volume) guess() int {
	if v.streak.Load() < steadyReads {
		return 0
	}
	return int(v.lastRec.Load())
}

// sawRecord notes the record size of a fragment read.
func (v *Volume) sawRecord(payload int) {
	rec := int64(engine.ReadBufSize(payload))
	if v.lastRec.Swap(rec) != rec {
		v.streak.Store(0)
	} else if v.streak.Load() < steadyReads {
		v.streak.Add(1)
	}
}

// poolMin is the smallest block whose fragment buffer comes from the pool.
const poolMin = 256 << 10

func (o *Options) defaults() {
	if o.K == 0 && o.M == 0 {
		o.K, o.M = 4, 2
	}
	if o.ZonesPerExtent == 0 {
		o.ZonesPerExtent = engine.DefaultZonesPerExtent
	}
	if o.MaxBlock == 0 {
		o.MaxBlock = engine.MaxBlock
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// firstZone is the first zone the engine may use on d: the label takes
// zones 0 and 1 of a zoned drive and its first 2 MiB otherwise.
func firstZone(d zone.Device) int {
	in := d.Info()
	if in.Kind == zone.KindZoned {
		return 2
	}
	return int((2*label.RegionSize + in.ZoneSize - 1) / in.ZoneSize)
}

func (v *Volume) init(o Options, l Layout) error {
	enc, err := reedsolomon.New(l.K, l.M)
	if err != nil {
		return fmt.Errorf("volume: reed-solomon %d+%d: %w", l.K, l.M, err)
	}
	v.k, v.m, v.maxBlock, v.enc = l.K, l.M, l.MaxBlock, enc
	v.log, v.onDamage, v.engOpts = o.Logger.With("volume", l.Volume.String()), o.OnDamage, o.Engine
	v.layout = l.Clone()
	v.slots = make([]*slot, l.K+l.M)
	return nil
}

func (v *Volume) openEngine(ctx context.Context, dev zone.Device, l Layout) (*engine.Engine, error) {
	eo := v.engOpts
	eo.FirstZone = l.FirstZone
	eo.ZonesPerExtent = l.ZonesPerExtent
	eo.VerifyKey = false
	if eo.Logger == nil {
		eo.Logger = v.log.With("slot", l.Slot)
	}
	return engine.Open(ctx, dev, eo)
}

// claim checks that the drive behind a is free for a new member: no owner,
// and a state the OSD may take (blank, new or ready).
func claim(a *label.Area, path string) error {
	rec, ok := a.Current()
	if !ok {
		return nil
	}
	if rec.Owner != "" {
		return fmt.Errorf("%w: %s is owned by %q", ErrInUse, path, rec.Owner)
	}
	switch rec.State {
	case "", lifecycle.New, lifecycle.Ready:
		return nil
	}
	return fmt.Errorf("%w: %s is %s", ErrInUse, path, rec.State)
}

func writeLayout(ctx context.Context, a *label.Area, l Layout) error {
	p, err := l.Encode()
	if err != nil {
		return err
	}
	_, err = a.Update(ctx, func(r *label.Record) error {
		r.Owner = Owner
		r.State = lifecycle.InService
		r.Payload = p
		return nil
	})
	return err
}

// Create makes a new volume on devs (K+M of them, slot i on devs[i]),
// writing its layout into each drive's label. The drives must be free
// (no label owner; state blank, new or ready) and hold no blocks. The
// devices stay owned by the caller: close them after Volume.Close.
func Create(ctx context.Context, devs []zone.Device, o Options) (*Volume, error) {
	o.defaults()
	l := Layout{Version: LayoutVersion, Generation: 1, Volume: NewUUID(), K: o.K, M: o.M,
		ZonesPerExtent: o.ZonesPerExtent, MaxBlock: o.MaxBlock, Members: make([]Member, o.K+o.M)}
	if o.K < 1 || o.K > MaxK || o.M < 1 || o.M > MaxM {
		return nil, fmt.Errorf("volume: code %d+%d: want k in 1..%d and m in 1..%d", o.K, o.M, MaxK, MaxM)
	}
	if len(devs) != o.K+o.M {
		return nil, fmt.Errorf("volume: %d devices for a %d+%d code", len(devs), o.K, o.M)
	}
	if o.MaxBlock < 1 || o.MaxBlock > engine.MaxBlock*o.K {
		return nil, fmt.Errorf("volume: max block %d outside 1..%d", o.MaxBlock, engine.MaxBlock*o.K)
	}
	for i, d := range devs {
		if d == nil {
			return nil, fmt.Errorf("volume: slot %d: no device", i)
		}
	}
	for i := range l.Members {
		l.Members[i].Drive = NewUUID()
	}
	v := &Volume{}
	if err := v.init(o, l); err != nil {
		return nil, err
	}
	areas := make([]*label.Area, len(devs))
	for i, d := range devs {
		a, err := label.Open(ctx, d, label.Options{})
		if err != nil {
			return nil, fmt.Errorf("volume: slot %d: %w", i, err)
		}
		if err := claim(a, d.Info().Path); err != nil {
			return nil, err
		}
		areas[i] = a
	}
	for i, d := range devs {
		dl := l.Clone()
		dl.Slot, dl.ZoneSize, dl.FirstZone = i, d.Info().ZoneSize, firstZone(d)
		e, err := v.openEngine(ctx, d, dl)
		if err != nil {
			v.Close()
			return nil, fmt.Errorf("volume: slot %d: %w", i, err)
		}
		v.slots[i] = &slot{dev: d, area: areas[i], eng: e}
		if n := e.Stats().Blocks; n > 0 {
			v.Close()
			return nil, fmt.Errorf("%w: %s holds %d blocks", ErrInUse, d.Info().Path, n)
		}
		if err := writeLayout(ctx, areas[i], dl); err != nil {
			v.Close()
			return nil, fmt.Errorf("volume: slot %d: label: %w", i, err)
		}
	}
	v.log.Info("volume created", "k", l.K, "m", l.M)
	return v, nil
}

// Found is what ReadLayout finds on a device.
type Found struct {
	Layout Layout
	Area   *label.Area
}

// ReadLayout reads the volume layout from dev's label.
func ReadLayout(ctx context.Context, dev zone.Device) (Found, error) {
	a, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		return Found{}, err
	}
	rec, ok := a.Current()
	if !ok || rec.Owner != Owner {
		return Found{}, fmt.Errorf("volume: %s holds no volume (label owner %q)", dev.Info().Path, rec.Owner)
	}
	l, _, err := DecodeLayout(rec.Payload)
	if err != nil {
		return Found{}, fmt.Errorf("volume: %s: %w", dev.Info().Path, err)
	}
	return Found{Layout: l, Area: a}, nil
}

// Open assembles a volume from the devices that hold it, in any order,
// from their labels. The newest layout (highest generation) names the
// members; a device holding an older member of a slot, or the member of
// a slot the newest layout says lost (MarkLost), is stale: left out and
// never written.
// Slots whose drive is absent or unreadable are lost: the volume serves
// degraded while at least k slots remain.
func Open(ctx context.Context, devs []zone.Device, o Options) (*Volume, error) {
	o.defaults()
	type cand struct {
		dev zone.Device
		f   Found
	}
	var cands []cand
	var newest *Layout
	for i, d := range devs {
		if d == nil {
			return nil, fmt.Errorf("volume: device %d is nil", i)
		}
		f, err := ReadLayout(ctx, d)
		if err != nil {
			o.Logger.Warn("volume: device left out", "device", d.Info().Path, "err", err)
			continue
		}
		if !o.ID.IsZero() && f.Layout.Volume != o.ID {
			continue
		}
		if newest != nil && newest.Volume != f.Layout.Volume {
			return nil, fmt.Errorf("volume: devices hold volumes %s and %s: set Options.ID", newest.Volume, f.Layout.Volume)
		}
		cands = append(cands, cand{d, f})
		if newest == nil || f.Layout.Generation > newest.Generation {
			l := f.Layout.Clone()
			newest = &l
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("volume: none of the %d devices holds a volume", len(devs))
	}
	v := &Volume{}
	if err := v.init(o, *newest); err != nil {
		return nil, err
	}
	for _, c := range cands {
		l := c.f.Layout
		if l.Members[l.Slot].Drive != newest.Members[l.Slot].Drive || newest.Members[l.Slot].State == SlotLost {
			// Replaced since, or taken out (MarkLost): never written.
			v.log.Warn("volume: stale member left out", "device", c.dev.Info().Path, "slot", l.Slot,
				"generation", l.Generation, "newest", newest.Generation)
			continue
		}
		if v.slots[l.Slot] != nil {
			v.Close()
			return nil, fmt.Errorf("volume: two devices hold slot %d (%s and %s)", l.Slot, v.slots[l.Slot].dev.Info().Path, c.dev.Info().Path)
		}
		e, err := v.openEngine(ctx, c.dev, l)
		if err != nil {
			v.log.Error("volume: slot lost: engine does not open", "slot", l.Slot, "device", c.dev.Info().Path, "err", err)
			continue
		}
		v.slots[l.Slot] = &slot{dev: c.dev, area: c.f.Area, eng: e, rebuilding: newest.Members[l.Slot].State == SlotRebuilding}
		if l.Generation < newest.Generation {
			nl := newest.Clone()
			nl.Slot, nl.ZoneSize, nl.FirstZone = l.Slot, l.ZoneSize, l.FirstZone
			if err := writeLayout(ctx, c.f.Area, nl); err != nil {
				v.log.Warn("volume: label not brought up to date", "slot", l.Slot, "err", err)
			}
		}
	}
	have := 0
	for _, s := range v.slots {
		if s != nil {
			have++
		}
	}
	if have < v.k {
		v.Close()
		return nil, fmt.Errorf("%w: %d of %d slots found", ErrUnrecoverable, have, v.k+v.m)
	}
	v.log.Info("volume opened", "k", v.k, "m", v.m, "slots", have, "generation", newest.Generation)
	return v, nil
}

// Close closes every engine. The devices stay open (the caller's).
func (v *Volume) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	var errs []error
	for i, s := range v.slots {
		if s != nil && s.eng != nil {
			if err := s.eng.Close(); err != nil {
				errs = append(errs, fmt.Errorf("slot %d: %w", i, err))
			}
		}
	}
	return errors.Join(errs...)
}

// snapshot returns the current slots (nil: lost).
func (v *Volume) snapshot() ([]*slot, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.closed {
		return nil, ErrClosed
	}
	return slices.Clone(v.slots), nil
}

func (v *Volume) lock(key Key) *sync.Mutex { return &v.keyLocks[key[0]] }

func fragID(key Key, slot int) engine.ID { return engine.ID{Key: key, Frag: uint16(slot + 1)} }

// Put stores data under key, which must be its SHA-256, and returns once
// all k+m fragments are durable. It reports whether it stored the block
// (false: the block was already stored whole, nothing written).
func (v *Volume) Put(ctx context.Context, key Key, data []byte) (stored bool, err error) {
	if len(data) > 0 && len(data) <= v.maxBlock && sha256.Sum256(data) != key {
		return false, fmt.Errorf("%w: key %x", ErrKeyMismatch, key[:8])
	}
	return v.PutVerified(ctx, key, data)
}

// PutVerified is Put for a caller that has already checked that key is
// the SHA-256 of data (osd/node does, once for all its volumes): it does
// not hash the block again.
func (v *Volume) PutVerified(ctx context.Context, key Key, data []byte) (stored bool, err error) {
	if len(data) == 0 {
		return false, ErrEmpty
	}
	if len(data) > v.maxBlock {
		return false, fmt.Errorf("%w: %d bytes > %d", ErrTooLarge, len(data), v.maxBlock)
	}
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return false, err
	}
	all := true
	for i, s := range slots {
		if s == nil {
			return false, fmt.Errorf("%w: slot %d", ErrDegraded, i)
		}
		if all {
			has, err := s.eng.Has(ctx, fragID(key, i))
			if err != nil {
				return false, fmt.Errorf("volume: slot %d: %w", i, err)
			}
			all = has
		}
	}
	if all {
		return false, nil
	}
	shards, buf, err := v.encode(data)
	if err != nil {
		return false, err
	}
	if buf != nil {
		defer v.bufs.Put(buf)
	}
	errs := make([]error, 2*len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		wg.Go(func() {
			if err := s.eng.PutMeta(ctx, fragID(key, i), uint32(len(data)), shards[i]); err != nil {
				errs[i] = fmt.Errorf("volume: slot %d: %w", i, err)
			}
		})
		if s.mirror != nil {
			wg.Go(func() {
				if err := s.mirror.PutMeta(ctx, fragID(key, i), uint32(len(data)), shards[i]); err != nil {
					errs[len(slots)+i] = fmt.Errorf("volume: slot %d: replacement: %w", i, err)
				}
			})
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return false, err
	}
	return true, nil
}

// fragSize is the fragment size of a block of n bytes.
func (v *Volume) fragSize(n int) int { return (n + v.k - 1) / v.k }

// encode splits data into k zero-padded fragments and adds m parity ones.
// When data splits evenly (a 4 MiB block does), the data shards are
// slices of data itself (not copied). A non-nil pooled buffer backs the
// other shards: give it back to v.bufs when they are no longer used.
func (v *Volume) encode(data []byte) (shards [][]byte, pooled *[]byte, err error) {
	fs := v.fragSize(len(data))
	n := (v.k + v.m) * fs
	alias := len(data) == v.k*fs
	if alias {
		n = v.m * fs
	}
	var buf []byte
	if len(data) >= poolMin {
		if p, ok := v.bufs.Get().(*[]byte); ok && cap(*p) >= n {
			pooled = p
		} else {
			b := make([]byte, (v.k+v.m)*v.fragSize(v.maxBlock))
			pooled = &b
		}
		buf = (*pooled)[:n]
	} else {
		buf = make([]byte, n)
	}
	shards = make([][]byte, v.k+v.m)
	if alias {
		for i := range v.k {
			shards[i] = data[i*fs : (i+1)*fs : (i+1)*fs]
		}
		for i := range v.m {
			shards[v.k+i] = buf[i*fs : (i+1)*fs : (i+1)*fs]
		}
	} else {
		copy(buf, data)
		clear(buf[len(data) : v.k*fs]) // padding; parity is overwritten
		for i := range shards {
			shards[i] = buf[i*fs : (i+1)*fs : (i+1)*fs]
		}
	}
	if err := v.enc.Encode(shards); err != nil {
		if pooled != nil {
			v.bufs.Put(pooled)
		}
		return nil, nil, fmt.Errorf("volume: encode: %w", err)
	}
	return shards, pooled, nil
}

// Get returns the block stored under key, verified against its SHA-256,
// reconstructing bad or missing fragments from parity (each reported to
// Options.OnDamage).
func (v *Volume) Get(ctx context.Context, key Key) ([]byte, error) {
	b, _, err := v.Read(ctx, key)
	return b, err
}

// GetBlock is Get returning the block in pooled buffers, without copying
// it: the caller writes it out and then releases it.
func (v *Volume) GetBlock(ctx context.Context, key Key) (*Block, error) {
	b, _, err := v.ReadBlock(ctx, key)
	return b, err
}

// ReadReport says how a read went.
type ReadReport struct {
	Damage        []Damage // bad fragments found
	Reconstructed bool     // parity was needed (bad fragments, or a data slot lost or rebuilding), not merely used to spread the load
}

// Read is Get that also returns what it found wrong.
func (v *Volume) Read(ctx context.Context, key Key) ([]byte, ReadReport, error) {
	b, rep, err := v.ReadBlock(ctx, key)
	if err != nil {
		return nil, rep, err
	}
	defer b.Release()
	return b.Bytes(), rep, nil
}

// ReadBlock is Read returning the block in pooled buffers (GetBlock).
//
// It reads k fragments: those of the k slots with the fewest reads in
// flight, data slots first when as busy (so an idle volume reads no
// parity), and decodes the data fragments it skipped from the parity
// ones, so that every drive, parity included, serves reads. It reads the
// other fragments only when one it read is bad or the block's SHA-256
// does not match.
func (v *Volume) ReadBlock(ctx context.Context, key Key) (*Block, ReadReport, error) {
	slots, err := v.snapshot()
	if err != nil {
		return nil, ReadReport{}, err
	}
	r, err := v.readBlock(ctx, slots, key, false)
	if err != nil {
		return nil, ReadReport{}, err
	}
	v.report(r.damage)
	return newBlock(r.shards, r.size, r.release), ReadReport{Damage: r.damage, Reconstructed: r.reconstructed}, nil
}

func (v *Volume) report(ds []Damage) {
	for _, d := range ds {
		v.log.Warn("volume: bad fragment", "key", fmt.Sprintf("%x", d.Key), "slot", d.Slot, "kind", d.Kind.String(), "err", d.Err)
		if v.onDamage != nil {
			v.onDamage(d)
		}
	}
}

type frag struct {
	data    []byte
	meta    uint32
	err     error
	fetched bool
	kind    DamageKind // 0: good
	buf     *[]byte    // pooled buffer data is read into (nil: none)
}

type blockRead struct {
	shards        [][]byte
	size          int
	damage        []Damage
	reconstructed bool
	bytes         int64 // fragment bytes read
	// bufs are the pooled buffers the shards may live in; release gives
	// them back.
	bufs []*[]byte
	v    *Volume
}

// release gives the read's pooled buffers back: its shards are unusable
// afterwards.
func (r *blockRead) release() {
	for _, b := range r.bufs {
		r.v.readBufs.Put(b)
	}
	r.bufs = nil
}

// readBuf returns a pooled aligned buffer that holds any fragment record
// of this volume.
func (v *Volume) readBuf() *[]byte {
	if p, ok := v.readBufs.Get().(*[]byte); ok {
		return p
	}
	b := zone.AlignedBlock(engine.ReadBufSize(v.fragSize(v.maxBlock)))
	return &b
}

// fetch reads the fragments of the slots idx into fr, into pooled
// buffers when pooled.
func (v *Volume) fetch(ctx context.Context, slots []*slot, key Key, idx []int, fr []frag, pooled bool) {
	var wg sync.WaitGroup
	for _, i := range idx {
		fr[i].fetched = true
		if slots[i] == nil {
			fr[i].kind = Lost
			continue
		}
		var buf []byte
		guess := 0
		if pooled {
			fr[i].buf = v.readBuf()
			buf = *fr[i].buf
			guess = v.guess()
		}
		v.reading[i].Add(1)
		wg.Go(func() {
			defer v.reading[i].Add(-1)
			b, meta, err := slots[i].eng.GetMetaBuf(ctx, fragID(key, i), buf, guess)
			fr[i].data, fr[i].meta, fr[i].err = b, meta, err
			if err == nil {
				v.sawRecord(len(b))
			}
			var ce *engine.CorruptionError
			var errno syscall.Errno
			switch {
			case err == nil:
			case errors.Is(err, engine.ErrNotFound):
				fr[i].kind = Missing
			case errors.As(err, &errno) && ctx.Err() == nil:
				// The engine wraps a failed device read in a
				// CorruptionError too; an errno means the drive.
				fr[i].kind = IOError
				v.ioErrors[i].Add(1)
			case errors.As(err, &ce):
				fr[i].kind = Corrupt
			case ctx.Err() != nil:
				fr[i].kind = IOError // the caller gave up; not the drive's fault
			default:
				fr[i].kind = IOError
				v.ioErrors[i].Add(1)
			}
		})
	}
	wg.Wait()
}

// geometry picks the block size most good fragments agree on and marks
// the good fragments that disagree as mismatched.
func (v *Volume) geometry(fr []frag) (size int, ok bool) {
	votes := map[[2]int]int{}
	for _, f := range fr {
		if f.fetched && f.kind == 0 {
			votes[[2]int{int(f.meta), len(f.data)}]++
		}
	}
	var best [2]int
	for g, n := range votes {
		if n > votes[best] || (n == votes[best] && (g[0] < best[0] || best[0] == 0)) {
			best = g
		}
	}
	if best[0] < 1 || best[0] > v.maxBlock || best[1] != v.fragSize(best[0]) {
		for i := range fr {
			if fr[i].fetched && fr[i].kind == 0 {
				fr[i].kind = Mismatch
			}
		}
		return 0, false
	}
	for i := range fr {
		if fr[i].fetched && fr[i].kind == 0 && (int(fr[i].meta) != best[0] || len(fr[i].data) != best[1]) {
			fr[i].kind = Mismatch
		}
	}
	return best[0], true
}

// decode fills shards' data shards from the fragments idx (k of them,
// all good: else it reports false), decoding the data fragments not among
// them into pooled buffers (added to held).
func (v *Volume) decode(fr []frag, idx []int, shards [][]byte, held *[]*[]byte) bool {
	parity := false
	for _, i := range idx {
		if fr[i].kind != 0 {
			return false
		}
		shards[i] = fr[i].data
		parity = parity || i >= v.k
	}
	if !parity {
		return true
	}
	for i := range v.k {
		if shards[i] == nil {
			p := v.readBuf()
			*held = append(*held, p)
			shards[i] = (*p)[:0]
		}
	}
	return v.enc.ReconstructData(shards) == nil
}

func (v *Volume) shaOK(shards [][]byte, size int, key Key) bool {
	h := sha256.New()
	left := size
	for _, s := range shards[:v.k] {
		n := min(len(s), left)
		h.Write(s[:n])
		left -= n
	}
	return [32]byte(h.Sum(nil)) == key
}

// pick returns the k slots a read fetches first: the ones with the fewest
// fragment reads in flight, lost and rebuilding slots last, and on a tie
// the lower slot (data before parity: nothing to decode).
func (v *Volume) pick(slots []*slot) []int {
	n := v.k + v.m
	idx := make([]int, n)
	var busy [MaxK + MaxM]int32
	for i := range idx {
		idx[i] = i
		busy[i] = v.reading[i].Load()
		if s := slots[i]; s == nil || s.rebuilding {
			busy[i] = math.MaxInt32
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(busy[a], busy[b]) })
	return idx[:v.k]
}

// readBlock reads key's fragments and returns the block's shards, every
// fragment it found bad, and whether it needed parity. With full it reads
// all k+m fragments, checks the parity against the data and returns all
// shards whole (for repair); else it reads k fragments (pick), decodes
// the data from them, and reads the others only when one of them is bad
// or the SHA-256 does not match; it returns good data shards, in pooled
// buffers that r.release gives back.
func (v *Volume) readBlock(ctx context.Context, slots []*slot, key Key, full bool) (*blockRead, error) {
	fr := make([]frag, v.k+v.m)
	var held []*[]byte // pooled buffers of decoded shards
	r, err := v.readFrags(ctx, slots, key, full, fr, &held)
	for _, f := range fr {
		if f.buf != nil {
			held = append(held, f.buf)
		}
	}
	if err != nil {
		for _, b := range held {
			v.readBufs.Put(b)
		}
		return nil, err
	}
	r.bufs, r.v = held, v
	return r, nil
}

func (v *Volume) readFrags(ctx context.Context, slots []*slot, key Key, full bool, fr []frag, held *[]*[]byte) (*blockRead, error) {
	n := v.k + v.m
	var first []int
	if full {
		for i := range n {
			first = append(first, i)
		}
	} else {
		first = v.pick(slots)
	}
	v.fetch(ctx, slots, key, first, fr, !full)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	size, ok := v.geometry(fr)
	r := &blockRead{shards: make([][]byte, n)}
	if !full && ok && v.decode(fr, first, r.shards, held) && v.shaOK(r.shards, size, key) {
		r.shards = r.shards[:v.k]
		r.size = size
		r.bytes = int64(v.k * v.fragSize(size))
		for i := range v.k {
			// A data fragment decoded for want of its drive, not by
			// choice: a degraded read.
			if s := slots[i]; s == nil || s.rebuilding {
				r.reconstructed = true
			}
		}
		return r, nil
	}
	if !full {
		var rest []int
		for i := range n {
			if !fr[i].fetched {
				rest = append(rest, i)
			}
		}
		v.fetch(ctx, slots, key, rest, fr, true)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range fr {
			if fr[i].kind == Mismatch {
				fr[i].kind = 0
			}
		}
		size, ok = v.geometry(fr)
	}
	good := 0
	for _, f := range fr {
		if f.kind == 0 {
			good++
			r.bytes += int64(len(f.data))
		}
	}
	// An acknowledged block had all k+m fragments, and only a delete
	// removes more than one: more than m missing means deleted (or a Put
	// that never completed), whatever is left.
	settled := 0
	for i, f := range fr {
		if f.kind == Missing && !slots[i].rebuilding {
			settled++
		}
	}
	if settled > v.m {
		return nil, fmt.Errorf("%w: %x", ErrNotFound, key[:8])
	}
	if !ok || good < v.k {
		return nil, fmt.Errorf("%w: key %x: %d good of %d", ErrUnrecoverable, key[:8], good, n)
	}
	try := func(exclude int) ([][]byte, bool) {
		sh := make([][]byte, n)
		for i, f := range fr {
			if f.kind == 0 && i != exclude {
				sh[i] = f.data
			}
		}
		var err error
		if full {
			err = v.enc.Reconstruct(sh)
		} else {
			err = v.enc.ReconstructData(sh)
		}
		return sh, err == nil && v.shaOK(sh, size, key)
	}
	sh, okSHA := try(-1)
	if !okSHA && good > v.k {
		for j := range fr {
			if fr[j].kind != 0 {
				continue
			}
			if s, ok := try(j); ok {
				fr[j].kind, sh, okSHA = Mismatch, s, true
				break
			}
		}
	}
	if !okSHA {
		return nil, fmt.Errorf("%w: key %x: no %d fragments give its SHA-256", ErrUnrecoverable, key[:8], v.k)
	}
	if full {
		// Parity must agree with the data: recompute it and compare.
		chk := make([][]byte, n)
		copy(chk, sh[:v.k])
		for i := v.k; i < n; i++ {
			chk[i] = make([]byte, len(sh[0]))
		}
		if err := v.enc.Encode(chk); err != nil {
			return nil, fmt.Errorf("volume: encode: %w", err)
		}
		for i := v.k; i < n; i++ {
			if fr[i].kind == 0 && !bytes.Equal(fr[i].data, chk[i]) {
				fr[i].kind = Mismatch
			}
			sh[i] = chk[i]
		}
	}
	r.shards, r.size = sh, size
	for i, f := range fr {
		if f.fetched && f.kind != 0 {
			r.damage = append(r.damage, Damage{Key: key, Slot: i, Kind: f.kind, Err: f.err})
			r.reconstructed = true
		}
	}
	if !full {
		r.reconstructed = true
	}
	return r, nil
}

// Delete removes the block from every slot (durable tombstones). It
// returns ErrNotFound when no slot held it.
func (v *Volume) Delete(ctx context.Context, key Key) error {
	l := v.lock(key)
	l.Lock()
	defer l.Unlock()
	slots, err := v.snapshot()
	if err != nil {
		return err
	}
	found := make([]bool, len(slots))
	errs := make([]error, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		if s == nil {
			continue
		}
		wg.Go(func() {
			err := s.eng.Delete(ctx, fragID(key, i))
			switch {
			case err == nil:
				found[i] = true
			case !errors.Is(err, engine.ErrNotFound):
				errs[i] = fmt.Errorf("volume: slot %d: %w", i, err)
			}
			if s.mirror != nil {
				if err := s.mirror.Delete(ctx, fragID(key, i)); err != nil && !errors.Is(err, engine.ErrNotFound) && errs[i] == nil {
					errs[i] = fmt.Errorf("volume: slot %d: replacement: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !slices.Contains(found, true) {
		return fmt.Errorf("%w: %x", ErrNotFound, key[:8])
	}
	return nil
}

// BlockInfo describes a stored block from its fragment headers.
type BlockInfo struct {
	Size         int // the block's bytes
	FragmentSize int
	Fragments    int   // fragments found (of k+m)
	Absent       []int // slots without a readable fragment header
}

// Stat returns what the fragment headers say about key (payloads are not
// read). ErrNotFound when no slot holds a fragment.
func (v *Volume) Stat(ctx context.Context, key Key) (BlockInfo, error) {
	slots, err := v.snapshot()
	if err != nil {
		return BlockInfo{}, err
	}
	var bi BlockInfo
	for i, s := range slots {
		if s == nil {
			bi.Absent = append(bi.Absent, i)
			continue
		}
		in, err := s.eng.Stat(ctx, fragID(key, i))
		if err != nil {
			if ctx.Err() != nil {
				return BlockInfo{}, ctx.Err()
			}
			bi.Absent = append(bi.Absent, i)
			continue
		}
		bi.Fragments++
		if bi.Size == 0 {
			bi.Size, bi.FragmentSize = int(in.Meta), in.Size
		}
	}
	if bi.Fragments == 0 {
		return BlockInfo{}, fmt.Errorf("%w: %x", ErrNotFound, key[:8])
	}
	return bi, nil
}

// Has reports whether at least k fragments of key are stored.
func (v *Volume) Has(ctx context.Context, key Key) (bool, error) {
	bi, err := v.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bi.Fragments >= v.k, nil
}

// fragmentCounts scans the engines (except skip) and counts each key's
// fragments.
func (v *Volume) fragmentCounts(ctx context.Context, slots []*slot, skip int) (map[Key]int, error) {
	counts := make(map[Key]int)
	var mu sync.Mutex
	errs := make([]error, len(slots))
	var wg sync.WaitGroup
	for i, s := range slots {
		if s == nil || i == skip {
			continue
		}
		wg.Go(func() {
			var keys []Key
			err := s.eng.Scan(ctx, func(id engine.ID, _ engine.Info) error {
				if int(id.Frag) == i+1 {
					keys = append(keys, id.Key)
				}
				return nil
			})
			if err != nil {
				errs[i] = fmt.Errorf("volume: slot %d: scan: %w", i, err)
				return
			}
			mu.Lock()
			for _, k := range keys {
				counts[k]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	var failed []error
	ok := 0
	for i, err := range errs {
		if err != nil {
			v.log.Warn("volume: scan failed", "slot", i, "err", err)
			failed = append(failed, err)
		} else if slots[i] != nil && i != skip {
			ok++
		}
	}
	if ok == 0 && len(failed) > 0 {
		return nil, errors.Join(failed...)
	}
	return counts, ctx.Err()
}

// List returns up to limit keys greater than after (the zero key: from
// the start), in ascending order, of the blocks with at least k fragments
// on the engines. It scans every engine: O(blocks) per call.
func (v *Volume) List(ctx context.Context, after Key, limit int) ([]Key, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("volume: list limit %d, want > 0", limit)
	}
	slots, err := v.snapshot()
	if err != nil {
		return nil, err
	}
	counts, err := v.fragmentCounts(ctx, slots, -1)
	if err != nil {
		return nil, err
	}
	var keys []Key
	for k, n := range counts {
		if n >= v.k && bytes.Compare(k[:], after[:]) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
	if len(keys) > limit {
		keys = keys[:limit]
	}
	return keys, nil
}
