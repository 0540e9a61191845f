package label

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// RegionSize is the length of each label region on a conventional drive,
// and the most of a label zone the log uses on a zoned drive (so a scan
// never reads more than 2 × RegionSize). Region 0 starts at byte 0, region
// 1 at byte RegionSize (conventional) or at zone 1 (zoned).
const RegionSize = 1 << 20

// Device is the drive under a label area. osd/zone's zone.Device satisfies
// it, as does anything with positioned I/O and a cache flush. Offsets and
// lengths are multiples of BlockSize and buffers are aligned for O_DIRECT.
type Device interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Flush makes completed writes durable.
	Flush(ctx context.Context) error
}

// ZonedDevice is a Device whose label regions are zones 0 and 1, written
// only at their write pointers. zone.Device satisfies it.
type ZonedDevice interface {
	Device
	ReportZones(ctx context.Context, first, n int) ([]zone.Zone, error)
	Reset(ctx context.Context, i int) error
	Finish(ctx context.Context, i int) error
}

// region is one half of the label area.
type region struct {
	start int64 // byte offset on the device
	cap   int64 // bytes the log may use
	zone  int   // zone index on a zoned device, -1 for a fixed region
	seq   bool  // sequential-write zone: append only at wp
	wp    int64 // seq only: write pointer, relative to start

	newest Record // newest valid record in this region (Generation 0: none)
	end    int64  // relative end of that record
}

// Corruption is a block in a label region that starts with the label
// magic but does not decode (a torn or damaged record), or a region that
// could not be read at all (Offset is the region's start). It is reported,
// never fatal while the other region reads.
type Corruption struct {
	Offset int64 // byte offset on the device
	Err    error
}

// Area is a drive's label area. It is safe for concurrent use.
type Area struct {
	mu      sync.Mutex
	dev     Device
	zdev    ZonedDevice // nil on a conventional drive
	regions [2]region
	active  int // region holding the newest record
	newest  Record
	corrupt []Corruption
	maxGen  uint64 // highest generation in any record header seen, torn ones too
	stale   bool   // a write failed: rescan before the next one
	now     func() time.Time
	name    string // for errors
	// lockPath, when set, is the device node (or file) flock(2)ed around
	// every read-modify-write, so that label areas opened by other
	// processes (hwmgr and the OSD both open a drive's label) or by
	// other Areas in this one never write over each other's records.
	lockPath string
}

// Options configure an Area. The zero value is ready to use.
type Options struct {
	// Now is the clock for record times; nil means time.Now.
	Now func() time.Time
	// Name names the device in errors (Open uses the zone.Device's path).
	Name string
	// LockPath is the device node or file to flock(2) around each
	// update (Open uses the zone.Device's path). Every update then
	// re-reads the area first, so writers in several processes take
	// turns and each builds on the newest record. A path that is neither
	// a block device nor a regular file (an in-memory test device) is
	// not locked; then only one Area per device may write.
	LockPath string
}

// Open opens the label area of a zone.Device: zones 0 and 1 of a zoned
// device, else two fixed regions at bytes 0 and RegionSize.
func Open(ctx context.Context, d zone.Device, opts Options) (*Area, error) {
	if opts.Name == "" {
		opts.Name = d.Info().Path
	}
	if opts.LockPath == "" {
		opts.LockPath = d.Info().Path
	}
	if d.Info().Kind == zone.KindZoned {
		return OpenZoned(ctx, d, opts)
	}
	if d.Info().Size < 2*RegionSize {
		return nil, fmt.Errorf("label: %s: %d bytes, the label area needs %d", d.Info().Path, d.Info().Size, 2*RegionSize)
	}
	return OpenConventional(ctx, d, opts)
}

// OpenConventional opens the label area at bytes [0, 2×RegionSize) of a
// conventional device and finds its newest valid record.
func OpenConventional(ctx context.Context, d Device, opts Options) (*Area, error) {
	a := newArea(d, opts)
	a.regions[0] = region{start: 0, cap: RegionSize, zone: -1}
	a.regions[1] = region{start: RegionSize, cap: RegionSize, zone: -1}
	if err := a.scan(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// OpenZoned opens the label area in zones 0 and 1 of a zoned device and
// finds its newest valid record. A conventional zone among them is used
// like a fixed region.
func OpenZoned(ctx context.Context, d ZonedDevice, opts Options) (*Area, error) {
	a := newArea(d, opts)
	a.zdev = d
	zs, err := d.ReportZones(ctx, 0, 2)
	if err != nil {
		return nil, fmt.Errorf("label: %s: report zones 0-1: %w", a.name, err)
	}
	if len(zs) != 2 {
		return nil, fmt.Errorf("label: %s: device reports %d zones, the label area needs 2", a.name, len(zs))
	}
	for i, z := range zs {
		c := min(z.Capacity, RegionSize)
		if z.Capacity == 0 {
			c = min(z.Len, RegionSize)
		}
		c -= c % BlockSize
		if c < MaxRecordSize {
			return nil, fmt.Errorf("label: %s: zone %d holds %d bytes, a record may take %d", a.name, i, c, MaxRecordSize)
		}
		a.regions[i] = region{start: z.Start, cap: c, zone: i, seq: z.Type != zone.TypeConventional}
	}
	if err := a.scan(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

func newArea(d Device, opts Options) *Area {
	a := &Area{dev: d, now: opts.Now, name: opts.Name}
	if st, err := os.Stat(opts.LockPath); opts.LockPath != "" && err == nil &&
		(st.Mode().IsRegular() || (st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0)) {
		a.lockPath = opts.LockPath
	}
	if a.name == "" {
		a.name = "device"
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a
}

// scan reads both regions and finds the newest valid record.
func (a *Area) scan(ctx context.Context) error {
	a.corrupt = nil
	a.maxGen = 0
	a.newest = Record{}
	a.active = 0
	if a.zdev != nil {
		zs, err := a.zdev.ReportZones(ctx, 0, 2)
		if err != nil {
			return fmt.Errorf("label: %s: report zones 0-1: %w", a.name, err)
		}
		if len(zs) != 2 {
			return fmt.Errorf("label: %s: device reports %d zones, the label area needs 2", a.name, len(zs))
		}
		for i := range a.regions {
			if a.regions[i].seq {
				a.regions[i].wp = zs[i].WP - zs[i].Start
			}
		}
	}
	// Two fixed regions side by side (a conventional drive): one read for
	// both. If it fails, each region is read on its own, so that a medium
	// error in one does not hide the other.
	var pre [2][]byte
	r0, r1 := a.regions[0], a.regions[1]
	if !r0.seq && !r1.seq && r1.start == r0.start+r0.cap {
		buf := zone.AlignedBlock(int(r0.cap + r1.cap))
		if _, err := a.dev.ReadAt(buf, r0.start); err == nil {
			pre[0], pre[1] = buf[:r0.cap], buf[r0.cap:]
		}
	}
	var errs []error
	for i := range a.regions {
		if err := a.scanRegion(i, pre[i]); err != nil {
			// An unreadable region (a medium error) is noted and the
			// other one still counts; both unreadable is an error.
			a.corrupt = append(a.corrupt, Corruption{Offset: a.regions[i].start, Err: err})
			errs = append(errs, err)
			continue
		}
		if g := a.regions[i].newest.Generation; g > a.newest.Generation {
			a.newest, a.active = a.regions[i].newest, i
		}
	}
	if len(errs) == len(a.regions) {
		return errors.Join(errs...)
	}
	a.stale = false
	return nil
}

// candidate is a block that starts a record whose checksum holds.
type candidate struct {
	off int64 // relative to the region start
	n   int
	gen uint64
}

// scanRegion reads region i up to its readable end and walks it block by
// block: a block that starts a record with a good checksum is a candidate
// and the walk jumps past it; any other block is skipped (a torn or
// damaged record is noted in a.corrupt), so one bad record hides nothing
// after it. Only the newest candidate is decoded in full (and the next
// one if that fails), so a scan costs one CRC pass over the region.
//
// pre, when not nil, holds the region's bytes already read.
func (a *Area) scanRegion(i int, pre []byte) error {
	r := &a.regions[i]
	r.newest, r.end = Record{}, 0
	n := r.cap
	if r.seq {
		n = min(max(r.wp, 0), r.cap)
		n -= n % BlockSize
	}
	if n == 0 {
		return nil
	}
	buf := pre
	if int64(len(buf)) != n {
		buf = zone.AlignedBlock(int(n))
		if _, err := a.dev.ReadAt(buf, r.start); err != nil {
			return fmt.Errorf("label: %s: read region %d (%d bytes at offset %d): %w", a.name, i, n, r.start, err)
		}
	}
	var cands []candidate
	for off := int64(0); off < n; {
		blk := buf[off:]
		if !HasMagic(blk) {
			off += BlockSize
			continue
		}
		if g, ok := headerGeneration(blk); ok {
			a.maxGen = max(a.maxGen, g)
		}
		gen, l, err := checkRecord(blk)
		if err != nil {
			a.corrupt = append(a.corrupt, Corruption{Offset: r.start + off, Err: err})
			off += BlockSize
			continue
		}
		cands = append(cands, candidate{off: off, n: l, gen: gen})
		off += int64(l)
	}
	slices.SortFunc(cands, func(x, y candidate) int { return cmp.Compare(y.gen, x.gen) })
	for _, c := range cands {
		rec, _, err := DecodeRecord(buf[c.off : c.off+int64(c.n)])
		if err != nil {
			a.corrupt = append(a.corrupt, Corruption{Offset: r.start + c.off, Err: err})
			continue
		}
		r.newest, r.end = rec, c.off+int64(c.n)
		break
	}
	return nil
}

// Current returns the newest valid record and true, or false when the
// drive carries no valid label.
func (a *Area) Current() (Record, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return cloneRecord(a.newest), a.newest.Generation > 0
}

// Corruptions lists the damaged records the last scan met (torn writes
// show up here until the region is reset).
func (a *Area) Corruptions() []Corruption {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Corruption(nil), a.corrupt...)
}

// Rescan reads the label area again.
func (a *Area) Rescan(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.scan(ctx)
}

// Update applies fn to a copy of the current record (the zero Record on a
// blank drive; Time cleared, so the new record gets the current time
// unless fn sets one) and writes the result as the next generation.
func (a *Area) Update(ctx context.Context, fn func(r *Record) error) (Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	unlock, err := a.lockDevice(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	r := cloneRecord(a.newest)
	r.Time = time.Time{} // the new record's time: now, unless fn sets one
	if err := fn(&r); err != nil {
		return Record{}, err
	}
	return a.write(ctx, r)
}

// Write appends r as the next generation (its Generation is overwritten;
// a zero Time becomes now) and returns it as written. The record is
// durable (flushed) when Write returns nil. If the active region has no
// room, the other region is reset first and the log continues there; a
// crash at any point leaves the previous newest record readable.
func (a *Area) Write(ctx context.Context, r Record) (Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	unlock, err := a.lockDevice(ctx)
	if err != nil {
		return Record{}, err
	}
	defer unlock()
	return a.write(ctx, r)
}

// lockDevice takes the device's flock (when it has a lock path) and
// brings the area up to date for a write: a full rescan when locked
// (another process may have written since), else only after a failed
// write. The caller holds a.mu and calls unlock after writing.
func (a *Area) lockDevice(ctx context.Context) (unlock func(), err error) {
	unlock = func() {}
	if a.lockPath != "" {
		f, err := os.Open(a.lockPath)
		if err != nil {
			return nil, fmt.Errorf("label: %s: open for lock: %w", a.name, err)
		}
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("label: %s: flock: %w", a.name, err)
		}
		unlock = func() { f.Close() } // closing the last descriptor releases the lock
		a.stale = true
	}
	if a.stale {
		if err := a.scan(ctx); err != nil {
			unlock()
			return nil, err
		}
	}
	return unlock, nil
}

func (a *Area) write(ctx context.Context, r Record) (Record, error) {
	// A torn record's header may survive; its generation is never reused,
	// so that if the rest of it later reads back valid (a torn tail that
	// only lost zero padding, read past an old write pointer once its zone
	// is finished) it cannot tie with a different record.
	r.Generation = max(a.newest.Generation, a.maxGen) + 1
	if r.Time.IsZero() {
		r.Time = a.now()
	}
	b, err := Encode(&r)
	if err != nil {
		return Record{}, err
	}
	buf := zone.AlignedBlock(len(b))
	copy(buf, b)

	cur := a.active
	off, ok := a.appendOffset(cur, int64(len(buf)))
	if !ok {
		other := 1 - cur
		if err := a.resetRegion(ctx, other); err != nil {
			a.stale = true
			return Record{}, err
		}
		cur, off = other, 0
	}
	rg := &a.regions[cur]
	if _, err := a.dev.WriteAt(buf, rg.start+off); err != nil {
		a.stale = true
		return Record{}, fmt.Errorf("label: %s: write generation %d (%d bytes at offset %d): %w", a.name, r.Generation, len(buf), rg.start+off, err)
	}
	if err := a.dev.Flush(ctx); err != nil {
		a.stale = true
		return Record{}, fmt.Errorf("label: %s: flush after generation %d at offset %d: %w", a.name, r.Generation, rg.start+off, err)
	}
	if rg.seq {
		rg.wp = off + int64(len(buf))
	}
	rg.newest, rg.end = cloneRecord(r), off+int64(len(buf))
	if left := &a.regions[a.active]; cur != a.active && left.seq && left.wp%BlockSize == 0 {
		// The region we left counts as full: finish its zone so that it
		// holds no open/active zone resource. Its records stay readable.
		// Failure costs nothing but that resource, so it only goes stale.
		// A zone whose write pointer stopped inside a block (a torn write
		// on a 512e drive) is left as it is: finishing it would make the
		// torn block readable, and the rest of a torn record may be zeros
		// that read back as a valid record the scan never saw before.
		if err := a.zdev.Finish(ctx, left.zone); err != nil {
			a.stale = true
		}
	}
	a.active = cur
	a.newest = cloneRecord(r)
	a.maxGen = max(a.maxGen, r.Generation)
	return r, nil
}

// appendOffset returns where in region i a record of n bytes goes next,
// relative to the region's start, and false if it does not fit.
func (a *Area) appendOffset(i int, n int64) (int64, bool) {
	r := &a.regions[i]
	off := r.end
	if r.seq {
		off = r.wp
		if off%BlockSize != 0 || off < r.end {
			return 0, false
		}
	}
	return off, off+n <= r.cap
}

// resetRegion empties region i: a zone reset on a sequential zone, zeros
// over the whole region otherwise; then a flush, so that nothing older can
// later reappear in front of what is written there next.
func (a *Area) resetRegion(ctx context.Context, i int) error {
	r := &a.regions[i]
	if r.seq {
		if err := a.zdev.Reset(ctx, r.zone); err != nil {
			return fmt.Errorf("label: %s: reset zone %d: %w", a.name, r.zone, err)
		}
		r.wp = 0
	} else {
		zero := zone.AlignedBlock(int(r.cap))
		if _, err := a.dev.WriteAt(zero, r.start); err != nil {
			return fmt.Errorf("label: %s: zero region %d (%d bytes at offset %d): %w", a.name, i, r.cap, r.start, err)
		}
	}
	if err := a.dev.Flush(ctx); err != nil {
		return fmt.Errorf("label: %s: flush after resetting region %d: %w", a.name, i, err)
	}
	r.newest, r.end = Record{}, 0
	return nil
}

func cloneRecord(r Record) Record {
	if r.Payload != nil {
		r.Payload = append([]byte(nil), r.Payload...)
	}
	if r.History != nil {
		r.History = append([]Entry(nil), r.History...)
	}
	return r
}

// ErrNoLabel is returned by Require on a drive without a valid label.
var ErrNoLabel = errors.New("label: no valid label record")

// Require returns the current record or an error wrapping ErrNoLabel.
func (a *Area) Require() (Record, error) {
	r, ok := a.Current()
	if !ok {
		return Record{}, ErrNoLabel
	}
	return r, nil
}

// ErrStateChanged is returned by Apply when the drive's label no longer
// says the state the event starts from (another writer got there first).
var ErrStateChanged = errors.New("label: state changed under the transition")

// Apply persists a lifecycle transition: it checks that the current record
// is in ev.From (a blank drive counts as lifecycle.New, or as
// lifecycle.Foreign for an adopt), sets State to ev.To, fills the identity
// from the event where the record has none, and appends the history
// entry. The caller publishes ev only after Apply returns nil.
func (a *Area) Apply(ctx context.Context, ev lifecycle.Event) (Record, error) {
	return a.Update(ctx, func(r *Record) error {
		from := r.State
		if r.Generation == 0 {
			from = lifecycle.New
			if ev.From == lifecycle.Foreign {
				from = lifecycle.Foreign
			}
		}
		if from != ev.From {
			return fmt.Errorf("%w: label says %s, event is %s -> %s", ErrStateChanged, from, ev.From, ev.To)
		}
		r.State = ev.To
		if r.Serial == "" {
			r.Serial = ev.Serial
		}
		if r.WWN == "" {
			r.WWN = ev.WWN
		}
		if r.Model == "" {
			r.Model = ev.Model
		}
		r.Time = time.Time{}
		r.AddEntry(EntryFromEvent(ev))
		return nil
	})
}
