package zone

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"syscall"
)

// ErrPowerCut is returned by every operation on a Mem after the power cut
// armed with CutPowerAfter. Errors that wrap it also wrap syscall.EIO.
var ErrPowerCut = errors.New("zone: power cut")

// DefaultSectorSize is the granularity at which a Mem tears a write in a
// crash: 512 B, the smallest atomic unit of a disk.
const DefaultSectorSize = 512

// MemOptions configure NewMem. Zero values are the documented defaults.
type MemOptions struct {
	// Path names the device in Info and in errors. Default "mem".
	Path string
	// Kind is KindFile (default), KindEmulated or KindZoned. File and
	// emulated devices keep no write pointers (ReportZones says
	// CondUnknown; Reset zeroes the zone's first block), exactly like
	// Emulated. A zoned device keeps write pointers and conditions the
	// way the Linux kernel and a ZBC/ZNS drive do.
	Kind Kind
	// ZoneSize is the distance between zone starts. Default 1 MiB.
	ZoneSize int64
	// NumZones is the number of zones. Default 16.
	NumZones int
	// BlockSize is the I/O alignment. Default 4096.
	BlockSize int64
	// SectorSize is the atomic write unit: a crash tears a write at a
	// multiple of it, and on a zoned device the write pointer after a
	// crash is a multiple of it (so it need not be BlockSize-aligned, as on
	// a 512e drive). Default DefaultSectorSize; it divides BlockSize.
	SectorSize int64
	// ZoneCapacity is the writable size of each sequential zone of a zoned
	// device (≤ ZoneSize, a multiple of BlockSize). Default ZoneSize.
	ZoneCapacity int64
	// ConvZones is the number of conventional (random-write) zones at the
	// start of a zoned device. Default 0.
	ConvZones int
	// MaxOpen and MaxActive limit open and active zones of a zoned device;
	// 0 means no limit.
	MaxOpen, MaxActive int
	// Flavor picks whose behaviour a zoned Mem copies where kernels and
	// drives differ. Default FlavorNullBlk.
	Flavor Flavor
	// StaleReads makes a zoned Mem return, past a zone's write pointer,
	// the bytes that were there before the zone's last reset, as null_blk
	// does, instead of zeros: a test with it on catches a reader that
	// trusts bytes past the write pointer.
	StaleReads bool
}

// Flavor names a zoned device whose corner cases a zoned Mem copies. The
// VM tests run one script on each real device and on a Mem of its flavor
// and require the same outcome at every step.
type Flavor int

// The flavors. They differ only here:
//
//   - closing an open zone with nothing written: null_blk and ZBC make it
//     empty; ZNS makes it closed (still active);
//   - closing an empty zone: an error (EIO) on null_blk and ZNS, nothing
//     on ZBC;
//   - opening an empty zone (implicitly or explicitly) at both the open and
//     the active limit: null_blk checks the active limit first and changes
//     nothing; ZNS (QEMU) first closes an implicitly open zone to make
//     room, then fails on the active limit;
//   - a write off the write pointer, past the capacity or into a full zone
//     fails with EIO, except on ZBC: EREMOTEIO (SCSI ILLEGAL REQUEST).
const (
	FlavorNullBlk Flavor = iota // Linux null_blk with zoned=1
	FlavorZBC                   // SCSI ZBC host-managed SMR, as scsi_debug zbc=managed
	FlavorZNS                   // NVMe ZNS, as QEMU's nvme-ns zoned=true
)

func (f Flavor) String() string {
	switch f {
	case FlavorNullBlk:
		return "null_blk"
	case FlavorZBC:
		return "zbc"
	case FlavorZNS:
		return "zns"
	}
	return fmt.Sprintf("Flavor(%d)", int(f))
}

func (o *MemOptions) fill() error {
	if o.Path == "" {
		o.Path = "mem"
	}
	if o.Kind == 0 {
		o.Kind = KindFile
	}
	if o.ZoneSize == 0 {
		o.ZoneSize = 1 << 20
	}
	if o.NumZones == 0 {
		o.NumZones = 16
	}
	if o.BlockSize == 0 {
		o.BlockSize = MinBlockSize
	}
	if o.SectorSize == 0 {
		o.SectorSize = DefaultSectorSize
	}
	if o.ZoneCapacity == 0 {
		o.ZoneCapacity = o.ZoneSize
	}
	switch {
	case o.Kind != KindFile && o.Kind != KindEmulated && o.Kind != KindZoned:
		return fmt.Errorf("zone: mem device: bad kind %v", o.Kind)
	case o.NumZones < 0 || o.ConvZones < 0 || o.ConvZones > o.NumZones || o.MaxOpen < 0 || o.MaxActive < 0:
		return fmt.Errorf("zone: mem device: bad zone counts %+v", *o)
	case o.SectorSize <= 0 || o.BlockSize <= 0 || o.BlockSize%o.SectorSize != 0:
		return fmt.Errorf("zone: mem device: sector size %d does not divide block size %d", o.SectorSize, o.BlockSize)
	case o.ZoneSize <= 0 || o.ZoneSize%o.BlockSize != 0:
		return fmt.Errorf("zone: mem device: zone size %d is not a positive multiple of block size %d", o.ZoneSize, o.BlockSize)
	case o.ZoneCapacity <= 0 || o.ZoneCapacity > o.ZoneSize || o.ZoneCapacity%o.BlockSize != 0:
		return fmt.Errorf("zone: mem device: zone capacity %d not a multiple of block size %d within zone size %d", o.ZoneCapacity, o.BlockSize, o.ZoneSize)
	case o.Flavor < FlavorNullBlk || o.Flavor > FlavorZNS:
		return fmt.Errorf("zone: mem device: bad flavor %v", o.Flavor)
	case o.Kind != KindZoned && (o.ConvZones != 0 || o.ZoneCapacity != o.ZoneSize || o.MaxOpen != 0 || o.MaxActive != 0 || o.StaleReads):
		return fmt.Errorf("zone: mem device: conventional zones, zone capacity, open limits and stale reads need KindZoned")
	}
	return nil
}

// memZone is one zone's contents and state. blocks maps a block's offset
// within the zone to BlockSize bytes; a stored slice is never modified, so
// states can share them.
type memZone struct {
	blocks map[int64][]byte
	wp     int64 // bytes from the zone start (sequential zones of a zoned device)
	cond   Cond
}

type memState struct{ zones []memZone }

func (s memState) clone() memState {
	c := memState{zones: make([]memZone, len(s.zones))}
	for i, z := range s.zones {
		m := make(map[int64][]byte, len(z.blocks))
		for k, v := range z.blocks {
			m[k] = v
		}
		c.zones[i] = memZone{blocks: m, wp: z.wp, cond: z.cond}
	}
	return c
}

type memOpKind int

const (
	memWrite memOpKind = iota + 1
	memReset
	memFinish
)

// memOp is a completed, not yet flushed change to the medium.
type memOp struct {
	kind memOpKind
	off  int64 // memWrite: device offset
	data []byte
	zone int // memReset, memFinish
}

// Mem is an in-memory Device that remembers which writes are durable, so
// that tests can cut the power at any point and look at what a real drive
// would hold afterwards (Crash, CrashAt). It plays the role of Pebble's
// crashable MemFS for raw zoned drives.
//
// A zoned Mem behaves like a Linux zoned block device (null_blk, or a SCSI
// ZBC or NVMe ZNS drive: see Flavor; the VM tests check it against all
// three): sequential zones accept a write only at the write pointer and
// within the zone capacity (else an error wrapping syscall.EIO); writing an
// empty or closed zone opens it implicitly, and at the MaxOpen limit the
// implicitly open zone with the lowest index is closed to make room, else
// the write fails with syscall.ETOOMANYREFS; a zone that is neither empty
// nor full counts as active and a write or open past MaxActive fails with
// syscall.EOVERFLOW; a zone written to capacity is full; Reset empties a
// zone (a Mem reads zeros past the write pointer; real devices need not);
// Finish makes it full, with the write pointer at its end as Linux reports
// it. Conventional zones take writes anywhere and refuse Reset and Finish.
//
// The crash model (CrashAt): let op₁ … opₙ be the writes, resets and
// finishes completed since the last successful Flush, in completion
// order. A crash keeps every flushed change, keeps op₁ … opₖ whole, and
// keeps the first s sectors (SectorSize bytes each) of opₖ₊₁ when it is a
// write, 0 ≤ s < its length in sectors; everything later is lost. (Zone
// resets and finishes are thus volatile until flushed too, which is the
// harsher assumption.) On a zoned Mem each write pointer afterwards sits
// just past the surviving data of its zone, and zones that were open come
// back closed (or empty, if nothing in them survived), as after a power
// cycle. Crash draws k uniformly from [0, n] and s uniformly from its
// range, from the given generator only, so a seed replays exactly.
// CrashReordered and CrashWith model a drive that writes unflushed changes
// back out of order.
type Mem struct {
	opts MemOptions
	info Info

	mu       sync.Mutex
	cur      memState // everything completed
	durable  memState // everything flushed
	pending  []memOp  // completed since the last flush, in order
	ops      int64    // operations started, for CutPowerAfter
	cutAfter int64    // operations allowed before the power goes; -1: never
	inFlight bool     // the write at the cut may land (CutPowerDuring)
	closed   bool
}

var _ Device = (*Mem)(nil)

// NewMem returns an empty in-memory device.
func NewMem(opts MemOptions) (*Mem, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	m := &Mem{
		opts: opts,
		info: Info{
			Path:      opts.Path,
			Kind:      opts.Kind,
			Size:      int64(opts.NumZones) * opts.ZoneSize,
			ZoneSize:  opts.ZoneSize,
			NumZones:  opts.NumZones,
			BlockSize: opts.BlockSize,
			MaxOpen:   opts.MaxOpen,
			MaxActive: opts.MaxActive,
		},
		cutAfter: -1,
	}
	m.cur = memState{zones: make([]memZone, opts.NumZones)}
	for i := range m.cur.zones {
		c := CondUnknown
		if opts.Kind == KindZoned {
			c = CondEmpty
			if i < opts.ConvZones {
				c = CondNotWP
			}
		}
		m.cur.zones[i] = memZone{blocks: map[int64][]byte{}, cond: c}
	}
	m.durable = m.cur.clone()
	return m, nil
}

// Options returns the options the device was made with, defaults filled.
func (m *Mem) Options() MemOptions { return m.opts }

// Info implements Device.
func (m *Mem) Info() Info { return m.info }

func (m *Mem) seq(i int) bool { return m.opts.Kind == KindZoned && i >= m.opts.ConvZones }

// begin counts an operation and fails it when the device is closed or the
// power is gone. m.mu is held.
func (m *Mem) begin(op string) error {
	if m.closed {
		return &os.PathError{Op: op, Path: m.info.Path, Err: os.ErrClosed}
	}
	if m.cutAfter >= 0 && m.ops >= m.cutAfter {
		m.ops++
		return fmt.Errorf("zone: %s on %s after %d operations: %w (%w)", op, m.info.Path, m.cutAfter, ErrPowerCut, syscall.EIO)
	}
	m.ops++
	return nil
}

// CutPowerAfter arms a power cut: the next n operations (ReportZones,
// ReadAt, WriteAt, Flush, Reset, Finish, OpenZone, CloseZone) run, and
// every one after them fails with an error wrapping ErrPowerCut and
// syscall.EIO and changes nothing. A negative n disarms it. Crash the
// device afterwards to see what survived.
func (m *Mem) CutPowerAfter(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight = false
	if n < 0 {
		m.cutAfter = -1
		return
	}
	m.cutAfter = m.ops + n
}

// CutPowerDuring arms a power cut like CutPowerAfter, except that the
// operation at the cut, when it is a write the device would have taken,
// was already in flight: it fails like every later operation and changes
// nothing the live device shows, but it joins the pending changes, so a
// crash may keep it whole or torn. That is how a drive behaves when the
// power goes during a write the host never saw complete.
func (m *Mem) CutPowerDuring(n int64) {
	m.CutPowerAfter(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight = n >= 0
}

// Ops returns how many operations the device has started, for choosing a
// power-cut point in a later run of the same workload.
func (m *Mem) Ops() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// Pending returns how many changes (writes, resets, finishes) are not yet
// flushed: the n of the crash model.
func (m *Mem) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending)
}

// PendingSectors returns the length in sectors of pending change i (0 ≤ i <
// Pending()), or 0 when it is not a write. With Pending it lets a test
// enumerate every crash point.
func (m *Mem) PendingSectors(i int) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i < 0 || i >= len(m.pending) || m.pending[i].kind != memWrite {
		return 0
	}
	return len(m.pending[i].data) / int(m.opts.SectorSize)
}

// CrashPoint says what survives a crash: the first Keep pending changes
// whole, and the first TornSectors sectors of the next one.
type CrashPoint struct {
	Keep        int
	TornSectors int
}

func (p CrashPoint) String() string {
	return fmt.Sprintf("keep %d pending changes, tear the next after %d sectors", p.Keep, p.TornSectors)
}

// PickCrash draws a crash point for the device's current pending changes:
// Keep uniform in [0, Pending()], TornSectors uniform in [0, sectors of the
// next write) or 0 when there is no next write.
func (m *Mem) PickCrash(rng *rand.Rand) CrashPoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := CrashPoint{Keep: rng.IntN(len(m.pending) + 1)}
	if p.Keep < len(m.pending) && m.pending[p.Keep].kind == memWrite {
		p.TornSectors = rng.IntN(len(m.pending[p.Keep].data) / int(m.opts.SectorSize))
	}
	return p
}

// Crash returns a new device holding what survives a power cut now, with a
// crash point drawn from rng (see Mem for the model). m is unchanged.
func (m *Mem) Crash(rng *rand.Rand) *Mem {
	return m.CrashAt(m.PickCrash(rng))
}

// CrashAt returns a new device holding what survives a power cut at p. Keep
// is clamped to [0, Pending()] and TornSectors to the next write's length.
// The new device has the same options, no pending changes and no armed
// power cut; m is unchanged.
func (m *Mem) CrashAt(p CrashPoint) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := min(max(p.Keep, 0), len(m.pending))
	plan := make(CrashPlan, len(m.pending))
	for i := range keep {
		plan[i] = m.sectors(m.pending[i])
	}
	if keep < len(plan) && m.pending[keep].kind == memWrite {
		plan[keep] = min(max(p.TornSectors, 0), m.sectors(m.pending[keep]))
	}
	return m.crash(plan)
}

// CrashPlan says what survives a crash, change by change: entry i is how
// many leading sectors of the i-th pending change survive when it is a
// write (0: none; its length in sectors or more: all), or whether it
// survives when it is a reset or finish (0: no; 1 or more: yes). Missing
// entries are 0. The prefix model of CrashAt is one shape of plan;
// PickReordered draws others.
type CrashPlan []int

// CrashWith returns a new device holding what survives a power cut that
// keeps what plan says, applied in the original order. On a zoned Mem the
// plan must keep a prefix of each sequential zone's changes (whole changes,
// then at most one partial write, then nothing), since a write pointer
// cannot skip a hole; otherwise it returns an error. m is unchanged.
func (m *Mem) CrashWith(plan CrashPlan) (*Mem, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(plan) > len(m.pending) {
		return nil, fmt.Errorf("zone: crash plan for %d changes, %d pending", len(plan), len(m.pending))
	}
	lost := map[int]int{} // zone → first change not kept whole
	for i, op := range m.pending {
		n := 0
		if i < len(plan) {
			n = plan[i]
		}
		if n < 0 {
			return nil, fmt.Errorf("zone: crash plan: change %d keeps %d sectors", i, n)
		}
		z := m.opZone(op)
		if !m.seq(z) {
			continue
		}
		if j, ok := lost[z]; ok && n > 0 {
			return nil, fmt.Errorf("zone: crash plan keeps change %d in zone %d after losing (part of) change %d: a write pointer cannot skip a hole", i, z, j)
		}
		if n < m.sectors(op) {
			if _, ok := lost[z]; !ok {
				lost[z] = i
			}
		}
	}
	full := make(CrashPlan, len(m.pending))
	copy(full, plan)
	return m.crash(full), nil
}

// PickReordered draws a crash plan in which the pending changes survive
// out of order, as a drive with a volatile cache may write them back:
// on emulated zones and conventional zones each change independently
// survives whole (probability ½) or else keeps a uniform number of its
// leading sectors in [0, length); on each sequential zone of a zoned Mem a
// prefix of that zone's changes survives, drawn as in PickCrash, since the
// write pointer keeps zones contiguous. Zones are independent of each other.
func (m *Mem) PickReordered(rng *rand.Rand) CrashPlan {
	m.mu.Lock()
	defer m.mu.Unlock()
	plan := make(CrashPlan, len(m.pending))
	perZone := map[int][]int{} // sequential zone → its changes, in order
	for i, op := range m.pending {
		if z := m.opZone(op); m.seq(z) {
			perZone[z] = append(perZone[z], i)
			continue
		}
		n := m.sectors(op)
		if rng.IntN(2) == 0 {
			plan[i] = n
		} else {
			plan[i] = rng.IntN(n)
		}
	}
	zones := make([]int, 0, len(perZone))
	for z := range perZone {
		zones = append(zones, z)
	}
	slices.Sort(zones) // map order is random; the draw must not be
	for _, z := range zones {
		ops := perZone[z]
		k := rng.IntN(len(ops) + 1)
		for _, i := range ops[:k] {
			plan[i] = m.sectors(m.pending[i])
		}
		if k < len(ops) && m.pending[ops[k]].kind == memWrite {
			plan[ops[k]] = rng.IntN(m.sectors(m.pending[ops[k]]))
		}
	}
	return plan
}

// CrashReordered returns a new device holding what survives a power cut
// with a plan drawn by PickReordered from rng. m is unchanged.
func (m *Mem) CrashReordered(rng *rand.Rand) *Mem {
	plan := m.PickReordered(rng)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crash(plan)
}

// sectors is the length of a change in sectors; resets and finishes count 1.
func (m *Mem) sectors(op memOp) int {
	if op.kind != memWrite {
		return 1
	}
	return len(op.data) / int(m.opts.SectorSize)
}

// opZone is the zone a change touches.
func (m *Mem) opZone(op memOp) int {
	if op.kind == memWrite {
		return m.info.ZoneOf(op.off)
	}
	return op.zone
}

// crash applies plan to the durable state and returns the device a power
// cycle leaves; changes past the plan are lost. m.mu is held.
func (m *Mem) crash(plan CrashPlan) *Mem {
	s := m.durable.clone()
	for i, op := range m.pending {
		if i >= len(plan) {
			break
		}
		n := plan[i]
		switch {
		case n <= 0:
			continue
		case op.kind == memWrite && n < m.sectors(op):
			op.data = op.data[:int64(n)*m.opts.SectorSize]
		}
		m.apply(&s, op)
	}
	for i := range s.zones {
		z := &s.zones[i]
		if z.cond == CondImpOpen || z.cond == CondExpOpen {
			z.cond = CondClosed
			if z.wp == 0 {
				z.cond = CondEmpty
			}
		}
	}
	return &Mem{opts: m.opts, info: m.info, cur: s, durable: s.clone(), cutAfter: -1}
}

// apply makes op's change to s. Validity was checked when op ran; a torn
// write may be shorter than a block and is merged into the old contents.
func (m *Mem) apply(s *memState, op memOp) {
	zs := m.opts.ZoneSize
	switch op.kind {
	case memReset:
		z := &s.zones[op.zone]
		if !m.opts.StaleReads {
			z.blocks = map[int64][]byte{}
		}
		z.wp, z.cond = 0, CondEmpty
	case memFinish:
		z := &s.zones[op.zone]
		z.wp, z.cond = m.opts.ZoneCapacity, CondFull
	case memWrite:
		i := int(op.off / zs)
		z := &s.zones[i]
		rel := op.off - int64(i)*zs
		bs := m.opts.BlockSize
		for done := int64(0); done < int64(len(op.data)); {
			at := rel + done
			bo := at - at%bs
			if at == bo && int64(len(op.data))-done >= bs {
				// A whole block: share the change's own copy, which
				// nothing modifies, between the states.
				z.blocks[bo] = op.data[done : done+bs : done+bs]
				done += bs
				continue
			}
			nb := make([]byte, bs)
			if old, ok := z.blocks[bo]; ok {
				copy(nb, old)
			}
			done += int64(copy(nb[at-bo:], op.data[done:]))
			z.blocks[bo] = nb
		}
		if m.seq(i) {
			z.wp = rel + int64(len(op.data))
			switch {
			case z.wp >= m.opts.ZoneCapacity:
				z.cond = CondFull
			case z.cond == CondEmpty || z.cond == CondClosed:
				z.cond = CondImpOpen
			}
		}
	}
}

// counts returns the open and active zones of the current state.
func (m *Mem) counts() (impOpen, open, active int) {
	for _, z := range m.cur.zones {
		switch z.cond {
		case CondImpOpen:
			impOpen++
			open++
			active++
		case CondExpOpen:
			open++
			active++
		case CondClosed:
			active++
		}
	}
	return
}

// makeOpen checks and takes the resources for opening zone i (empty or
// closed), closing an implicitly open zone at the open limit as a drive
// does. m.mu is held.
func (m *Mem) makeOpen(op string, i int) error {
	z := &m.cur.zones[i]
	checkActive := func() error {
		_, _, active := m.counts()
		if z.cond == CondEmpty && m.opts.MaxActive > 0 && active >= m.opts.MaxActive {
			return fmt.Errorf("zone: %s zone %d of %s: %d zones active (max %d): %w", op, i, m.info.Path, active, m.opts.MaxActive, syscall.EOVERFLOW)
		}
		return nil
	}
	if m.opts.Flavor != FlavorZNS {
		if err := checkActive(); err != nil {
			return err
		}
	}
	imp, open, _ := m.counts()
	if m.opts.MaxOpen > 0 && open >= m.opts.MaxOpen {
		if imp == 0 {
			return fmt.Errorf("zone: %s zone %d of %s: %d zones explicitly open (max %d): %w", op, i, m.info.Path, open, m.opts.MaxOpen, syscall.ETOOMANYREFS)
		}
		for j := range m.cur.zones {
			if o := &m.cur.zones[j]; o.cond == CondImpOpen {
				o.cond = CondClosed
				break
			}
		}
	}
	return checkActive()
}

func (m *Mem) zoneErr(op string, i int, format string, args ...any) error {
	return fmt.Errorf("zone: %s zone %d of %s: %s: %w", op, i, m.info.Path, fmt.Sprintf(format, args...), syscall.EIO)
}

// writeErr is zoneErr for a write the zone rules refuse.
func (m *Mem) writeErr(i int, format string, args ...any) error {
	errno := syscall.EIO
	if m.opts.Flavor == FlavorZBC {
		errno = syscall.EREMOTEIO
	}
	return fmt.Errorf("zone: write zone %d of %s: %s: %w", i, m.info.Path, fmt.Sprintf(format, args...), errno)
}

// ReportZones implements Device.
func (m *Mem) ReportZones(_ context.Context, first, n int) ([]Zone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("report zones"); err != nil {
		return nil, err
	}
	if n < 0 || CheckZone(m.info, first) != nil || first+n > m.info.NumZones {
		return nil, fmt.Errorf("%w: zones [%d, %d) on %s (%d zones)", ErrOutOfRange, first, first+n, m.info.Path, m.info.NumZones)
	}
	out := make([]Zone, n)
	for k := range out {
		i := first + k
		z := m.cur.zones[i]
		start := m.info.ZoneStart(i)
		zn := Zone{Index: i, Start: start, Len: m.opts.ZoneSize, Capacity: m.opts.ZoneSize, WP: start, Type: TypeSeqWriteRequired, Cond: z.cond}
		switch {
		case m.opts.Kind != KindZoned:
		case !m.seq(i):
			zn.Type = TypeConventional
			zn.WP = start + m.opts.ZoneSize
		default:
			zn.Capacity = m.opts.ZoneCapacity
			zn.WP = start + z.wp
			if z.cond == CondFull {
				zn.WP = start + m.opts.ZoneSize
			}
		}
		out[k] = zn
	}
	return out, nil
}

// ReadAt implements Device. Bytes never written, and bytes past a zoned
// zone's write pointer, read as zeros (or as the old bytes, with
// StaleReads).
func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("read"); err != nil {
		return 0, err
	}
	if err := CheckIO(m.info, off, len(p)); err != nil {
		return 0, err
	}
	bs, zs := m.opts.BlockSize, m.opts.ZoneSize
	for done := int64(0); done < int64(len(p)); done += bs {
		at := off + done
		i := int(at / zs)
		rel := at - int64(i)*zs
		q := p[done : done+bs]
		if b, ok := m.cur.zones[i].blocks[rel]; ok {
			copy(q, b)
		} else {
			clear(q)
		}
	}
	return len(p), nil
}

// WriteAt implements Device.
func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("write"); err != nil {
		if m.inFlight && m.ops == m.cutAfter+1 {
			m.writeInFlight(p, off)
		}
		return 0, err
	}
	if err := CheckIO(m.info, off, len(p)); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	i := m.info.ZoneOf(off)
	rel := off - m.info.ZoneStart(i)
	if rel+int64(len(p)) > m.opts.ZoneSize && m.opts.Kind == KindZoned {
		return 0, m.zoneErr("write", i, "%d bytes at offset %d cross the zone's end", len(p), off)
	}
	if m.seq(i) {
		z := &m.cur.zones[i]
		switch {
		case z.cond == CondFull || z.cond == CondReadOnly || z.cond == CondOffline:
			return 0, m.writeErr(i, "%d bytes at offset %d: zone is %v", len(p), off, z.cond)
		case rel != z.wp:
			return 0, m.writeErr(i, "%d bytes at offset %d: not at the write pointer %d", len(p), off, m.info.ZoneStart(i)+z.wp)
		case rel+int64(len(p)) > m.opts.ZoneCapacity:
			return 0, m.writeErr(i, "%d bytes at offset %d: past the zone capacity %d", len(p), off, m.opts.ZoneCapacity)
		case z.cond == CondEmpty || z.cond == CondClosed:
			if err := m.makeOpen("write", i); err != nil {
				return 0, err
			}
		}
	}
	op := memOp{kind: memWrite, off: off, data: append([]byte(nil), p...)}
	m.apply(&m.cur, op)
	m.pending = append(m.pending, op)
	return len(p), nil
}

// writeInFlight records the write cut by the power as a pending change if
// the device would have taken it (aligned, in range, at the write pointer
// of a writable zone, within capacity; open resources are not checked).
// m.mu is held.
func (m *Mem) writeInFlight(p []byte, off int64) {
	if CheckIO(m.info, off, len(p)) != nil || len(p) == 0 {
		return
	}
	i := m.info.ZoneOf(off)
	rel := off - m.info.ZoneStart(i)
	if m.opts.Kind == KindZoned && rel+int64(len(p)) > m.opts.ZoneSize {
		return
	}
	if m.seq(i) {
		z := m.cur.zones[i]
		if z.cond == CondFull || z.cond == CondReadOnly || z.cond == CondOffline || rel != z.wp || rel+int64(len(p)) > m.opts.ZoneCapacity {
			return
		}
	}
	m.pending = append(m.pending, memOp{kind: memWrite, off: off, data: append([]byte(nil), p...)})
}

// Flush implements Device: every change completed so far becomes durable.
func (m *Mem) Flush(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("flush"); err != nil {
		return err
	}
	for _, op := range m.pending {
		m.apply(&m.durable, op)
	}
	m.pending = nil
	return nil
}

// Reset implements Device. On a file or emulated Mem it zeroes the zone's
// first block (a write like any other); on a zoned Mem it empties the zone.
func (m *Mem) Reset(_ context.Context, i int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("reset"); err != nil {
		return err
	}
	if err := CheckZone(m.info, i); err != nil {
		return err
	}
	var op memOp
	switch {
	case m.opts.Kind != KindZoned:
		op = memOp{kind: memWrite, off: m.info.ZoneStart(i), data: make([]byte, m.opts.BlockSize)}
	case !m.seq(i):
		return m.zoneErr("reset", i, "conventional zone")
	default:
		if c := m.cur.zones[i].cond; c == CondReadOnly || c == CondOffline {
			return m.zoneErr("reset", i, "zone is %v", c)
		}
		op = memOp{kind: memReset, zone: i}
	}
	m.apply(&m.cur, op)
	m.pending = append(m.pending, op)
	return nil
}

// Finish implements Device. It does nothing on a file or emulated Mem.
func (m *Mem) Finish(_ context.Context, i int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("finish"); err != nil {
		return err
	}
	if err := CheckZone(m.info, i); err != nil {
		return err
	}
	switch {
	case m.opts.Kind != KindZoned:
		return nil
	case !m.seq(i):
		return m.zoneErr("finish", i, "conventional zone")
	}
	z := &m.cur.zones[i]
	switch z.cond {
	case CondFull:
		return nil
	case CondReadOnly, CondOffline:
		return m.zoneErr("finish", i, "zone is %v", z.cond)
	case CondEmpty:
		_, _, active := m.counts()
		if m.opts.MaxActive > 0 && active >= m.opts.MaxActive {
			return fmt.Errorf("zone: finish zone %d of %s: %d zones active (max %d): %w", i, m.info.Path, active, m.opts.MaxActive, syscall.EOVERFLOW)
		}
	}
	op := memOp{kind: memFinish, zone: i}
	m.apply(&m.cur, op)
	m.pending = append(m.pending, op)
	return nil
}

// OpenZone opens zone i explicitly (BLKOPENZONE): it stays open until
// closed, finished, filled or reset, and is never closed to make room. On a
// file or emulated Mem it only checks i.
func (m *Mem) OpenZone(_ context.Context, i int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("open zone"); err != nil {
		return err
	}
	if err := CheckZone(m.info, i); err != nil {
		return err
	}
	switch {
	case m.opts.Kind != KindZoned:
		return nil
	case !m.seq(i):
		return m.zoneErr("open", i, "conventional zone")
	}
	z := &m.cur.zones[i]
	switch z.cond {
	case CondExpOpen:
		return nil
	case CondImpOpen:
	case CondEmpty, CondClosed:
		if err := m.makeOpen("open", i); err != nil {
			return err
		}
	default:
		return m.zoneErr("open", i, "zone is %v", z.cond)
	}
	z.cond = CondExpOpen
	return nil
}

// CloseZone closes open zone i (BLKCLOSEZONE), releasing its open resource;
// it stays active unless nothing was written to it (see Flavor). Closing a
// closed zone does nothing; closing a full one is an error, and an empty
// one too except on FlavorZBC. On a file or emulated Mem it only checks i.
func (m *Mem) CloseZone(_ context.Context, i int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("close zone"); err != nil {
		return err
	}
	if err := CheckZone(m.info, i); err != nil {
		return err
	}
	switch {
	case m.opts.Kind != KindZoned:
		return nil
	case !m.seq(i):
		return m.zoneErr("close", i, "conventional zone")
	}
	z := &m.cur.zones[i]
	switch z.cond {
	case CondClosed:
	case CondImpOpen, CondExpOpen:
		z.cond = CondClosed
		if z.wp == 0 && m.opts.Flavor != FlavorZNS {
			z.cond = CondEmpty
		}
	case CondEmpty:
		if m.opts.Flavor != FlavorZBC {
			return m.zoneErr("close", i, "zone is %v", z.cond)
		}
	default:
		return m.zoneErr("close", i, "zone is %v", z.cond)
	}
	return nil
}

// Close implements Device. A closed Mem can still be crashed.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
