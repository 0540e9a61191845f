// Package node is the OSD's node-level block store: several erasure-coded
// volumes (osd/volume) over the drives of one machine. Open finds the
// volumes in the drives' labels and forms new ones from free drives
// (never a drive that holds a foreign signature or belongs to someone
// else); a Put goes to a healthy writable volume, reads look in every
// volume. Run keeps the data whole in the background: a repair queue fed
// by reads, a paced scrub with progress and ETA, rebuild of degraded
// volumes onto spare drives, and drains that move a drive's fragments to
// another drive while the old one keeps serving.
package node

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stowage/stowage/hwmgr/foreign"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/engine"
	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
)

// Key is a block's SHA-256.
type Key = volume.Key

// Errors callers branch on; the volume's are re-exported.
var (
	ErrNotFound      = volume.ErrNotFound
	ErrKeyMismatch   = volume.ErrKeyMismatch
	ErrEmpty         = volume.ErrEmpty
	ErrTooLarge      = volume.ErrTooLarge
	ErrUnrecoverable = volume.ErrUnrecoverable
	// ErrFull: no volume can take the block (none healthy, or all full).
	ErrFull = errors.New("node: no writable volume")
	// ErrClosed: the node was closed.
	ErrClosed = errors.New("node: closed")
	// ErrUnknownDrive: no drive of the node has that path.
	ErrUnknownDrive = errors.New("node: no such drive")
	// ErrBusy: the drive cannot do that now (e.g. drain of a spare, or a
	// drain with no free drive to move onto).
	ErrBusy = errors.New("node: drive busy or not eligible")
)

// Drive is an opened device and its identity. Path defaults to the
// device's path; Serial, WWN and Model are what hwmgr knows (optional).
type Drive struct {
	Dev    zone.Device
	Path   string
	Serial string
	WWN    string
	Model  string
}

// Drive roles in Status.
const (
	RoleMember     = "member"     // holds a slot of a volume
	RoleSpare      = "spare"      // free, claimed by nobody: rebuild or drain target
	RoleTarget     = "target"     // a spare being filled by a rebuild or drain
	RoleForeign    = "foreign"    // holds a signature not ours: never written
	RoleOwned      = "owned"      // the label names another owner: never written
	RoleUnusable   = "unusable"   // its label state forbids use (failed, retired, ...)
	RoleStale      = "stale"      // an old member of a volume, replaced or recorded lost since
	RoleIncomplete = "incomplete" // a member of a volume with fewer than k drives present
	RoleLost       = "lost"       // removed (RemoveDrive): no longer used
	RoleFailed     = "failed"     // taken out by the node: I/O errors, device gone, or its label says failed
	RoleDrained    = "drained"    // drained: holds no live data of ours
	RoleError      = "error"      // the label could not be read
)

// Options configure Open. The zero value is the defaults.
type Options struct {
	// K and M are the code of new volumes. Default 4+2.
	K, M int
	// ZonesPerExtent and MaxBlock of new volumes (volume.Options).
	ZonesPerExtent int
	MaxBlock       int
	// Spares is how many free drives Open keeps out of new volumes, as
	// rebuild and drain targets. Default 0: only drives left over after
	// forming as many k+m volumes as possible are spares.
	Spares int
	// ScrubBytesPerSecond paces the scrub (fragment bytes read). Default
	// 50 MiB/s; negative: unpaced.
	ScrubBytesPerSecond int64
	// ScrubInterval is the pause between scrub passes. Default 24 h.
	ScrubInterval time.Duration
	// ScrubDelay is how long after Run starts the first pass begins
	// (0: at once).
	ScrubDelay time.Duration
	// LabelCheckInterval is how often Run reads the members' labels for
	// a draining request (hwmgr sets the state). Default 30 s.
	LabelCheckInterval time.Duration
	// ReadErrorLimit is how many failed reads (device errors, not bad
	// checksums) within ReadErrorWindow take a drive out as failed.
	// Default 8; negative: reads never do (a failed write or a device
	// gone always does). ReadErrorWindow defaults to 10 minutes.
	ReadErrorLimit  int
	ReadErrorWindow time.Duration
	// CompactInterval is the pause between compaction steps of Run; a
	// step compacts, on every drive of every volume without a rebuild or
	// drain running, at most one closed extent with at least CompactShare
	// of its bytes dead (the one with the most). Default 1 minute and
	// 0.5; a negative interval: no compaction.
	CompactInterval time.Duration
	CompactShare    float64
	// RepairQueue bounds the repair queue. Default 4096; beyond that,
	// damage is left to the next scrub (counted as dropped).
	RepairQueue int
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Now and Sleep are the clock of the scrub pacing, ETA and pauses
	// (tests inject one). Default time.Now and a context-aware sleep.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Engine is passed to every engine.
	Engine engine.Options
}

func (o *Options) defaults() {
	if o.K == 0 && o.M == 0 {
		o.K, o.M = 4, 2
	}
	if o.ScrubBytesPerSecond == 0 {
		o.ScrubBytesPerSecond = 50 << 20
	}
	if o.ScrubInterval == 0 {
		o.ScrubInterval = 24 * time.Hour
	}
	if o.LabelCheckInterval <= 0 {
		o.LabelCheckInterval = 30 * time.Second
	}
	if o.ReadErrorLimit == 0 {
		o.ReadErrorLimit = 8
	}
	if o.ReadErrorWindow <= 0 {
		o.ReadErrorWindow = 10 * time.Minute
	}
	if o.CompactInterval == 0 {
		o.CompactInterval = time.Minute
	}
	if o.CompactShare == 0 {
		o.CompactShare = 0.5
	}
	if o.RepairQueue <= 0 {
		o.RepairQueue = 4096
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
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

type drive struct {
	Drive   // Dev is w
	w       *watch
	role    string
	detail  string
	foreign []string
	vol     *vol // member or target of
	slot    int
}

type vol struct {
	v  *volume.Volume
	id volume.UUID
	// full: a Put failed with engine.ErrFull; cleared by a delete.
	full atomic.Bool
	// busy: a rebuild or drain runs on it (only one at a time).
	busy atomic.Bool
}

// Node is the store over all volumes of one machine. It is safe for
// concurrent use.
type Node struct {
	o   Options
	log *slog.Logger

	mu     sync.Mutex
	drives []*drive
	vols   []*vol
	closed bool

	keyLocks [256]sync.Mutex

	wake     chan struct{} // pokes Run (a drive came or went)
	scrubNow chan struct{}
	repairs  *repairQueue
	jobs     jobs
	stats    counters
}

// Open opens every volume found in the drives' labels (any order;
// degraded if members are missing), then forms new volumes from the free
// drives: a blank label or one in state new or ready, no owner, and no
// foreign signature (hwmgr/foreign). Drives owned by others, holding
// foreign data or in another lifecycle state are left untouched and listed
// in Status. The devices stay the caller's: close them after Close.
func Open(ctx context.Context, devs []Drive, o Options) (*Node, error) {
	o.defaults()
	if !(o.CompactShare > 0 && o.CompactShare <= 1) {
		return nil, fmt.Errorf("node: compact share %v: want in (0, 1]", o.CompactShare)
	}
	if o.K < 1 || o.K > volume.MaxK || o.M < 1 || o.M > volume.MaxM {
		return nil, fmt.Errorf("node: code %d+%d: want k in 1..%d and m in 1..%d", o.K, o.M, volume.MaxK, volume.MaxM)
	}
	n := &Node{o: o, log: o.Logger, wake: make(chan struct{}, 1), scrubNow: make(chan struct{}, 1), repairs: newRepairQueue(o.RepairQueue)}
	seen := map[string]bool{}
	for i, d := range devs {
		if d.Dev == nil {
			return nil, fmt.Errorf("node: drive %d has no device", i)
		}
		if d.Path == "" {
			d.Path = d.Dev.Info().Path
		}
		if seen[d.Path] {
			return nil, fmt.Errorf("node: drive %s given twice", d.Path)
		}
		seen[d.Path] = true
		n.drives = append(n.drives, n.newDrive(d))
	}
	groups := map[volume.UUID][]*drive{}
	var ids []volume.UUID
	for _, d := range n.drives {
		id, ok := n.classify(ctx, d)
		if ok {
			if groups[id] == nil {
				ids = append(ids, id)
			}
			groups[id] = append(groups[id], d)
		}
	}
	for _, id := range ids {
		n.openVolume(ctx, id, groups[id])
	}
	n.formVolumes(ctx)
	n.log.Info("node opened", "drives", len(n.drives), "volumes", len(n.vols))
	return n, nil
}

// newDrive wraps d's device in a watch (failed-drive detection).
func (n *Node) newDrive(d Drive) *drive {
	w := n.watch(d)
	d.Dev = w
	return &drive{Drive: d, w: w, slot: -1}
}

// classify reads d's label and sets its role. It returns the volume d is
// a member of, if any.
func (n *Node) classify(ctx context.Context, d *drive) (volume.UUID, bool) {
	a, err := label.Open(ctx, d.Dev, label.Options{})
	if err != nil {
		d.role, d.detail = RoleError, err.Error()
		return volume.UUID{}, false
	}
	rec, ok := a.Current()
	if ok && rec.Owner == volume.Owner {
		l, _, err := volume.DecodeLayout(rec.Payload)
		if err == nil {
			return l.Volume, true
		}
		if string(rec.Payload) == volume.TargetPayload {
			// A rebuild or drain target whose job was cut short: ours
			// and holding nothing a volume needs.
			if err := n.release(ctx, d, a); err != nil {
				d.role, d.detail = RoleError, err.Error()
				return volume.UUID{}, false
			}
			rec, _ = a.Current()
			n.checkFree(d, rec)
			return volume.UUID{}, false
		}
		d.role, d.detail = RoleError, err.Error()
		return volume.UUID{}, false
	}
	n.checkFree(d, rec)
	return volume.UUID{}, false
}

// checkFree makes d a spare if its label allows it and it holds no
// foreign signature.
func (n *Node) checkFree(d *drive, rec label.Record) {
	if rec.Owner != "" {
		d.role, d.detail = RoleOwned, fmt.Sprintf("owned by %q", rec.Owner)
		return
	}
	switch rec.State {
	case "", lifecycle.New, lifecycle.Ready:
	case lifecycle.Drained:
		d.role, d.detail = RoleDrained, "label state drained"
		return
	default:
		d.role, d.detail = RoleUnusable, fmt.Sprintf("label state %s", rec.State)
		return
	}
	rep, err := detectForeign(d.Dev)
	if err != nil {
		d.role, d.detail = RoleError, fmt.Sprintf("signature check: %v", err)
		return
	}
	if rep.Foreign() {
		d.role, d.foreign = RoleForeign, rep.Kinds()
		d.detail = fmt.Sprintf("foreign signatures %v: left untouched", d.foreign)
		return
	}
	d.role, d.detail = RoleSpare, ""
}

// detectForeign runs hwmgr/foreign over the device (read only).
func detectForeign(dev zone.Device) (foreign.Report, error) {
	in := dev.Info()
	var o foreign.Options
	if in.Kind == zone.KindZoned {
		o.LabelOffsets = []int64{in.ZoneStart(1)}
	}
	return foreign.Detect(alignedReader{dev}, in.Size, o)
}

// alignedReader reads a zone.Device at any offset and length through
// block-aligned buffers (O_DIRECT).
type alignedReader struct{ d zone.Device }

func (r alignedReader) ReadAt(p []byte, off int64) (int, error) {
	in := r.d.Info()
	bs := in.BlockSize
	if off < 0 || off >= in.Size {
		return 0, io.EOF
	}
	start := off - off%bs
	end := min(off+int64(len(p)), in.Size)
	if rem := end % bs; rem != 0 {
		end += bs - rem
	}
	buf := zone.AlignedBlock(int(end - start))
	if _, err := r.d.ReadAt(buf, start); err != nil {
		return 0, err
	}
	c := copy(p, buf[off-start:])
	if c < len(p) {
		return c, io.EOF
	}
	return c, nil
}

// release clears an interrupted target's claim: its engine zones are
// reset and its label goes back to no owner, state ready.
func (n *Node) release(ctx context.Context, d *drive, a *label.Area) error {
	if err := wipeData(ctx, d.Dev); err != nil {
		return err
	}
	_, err := a.Update(ctx, func(r *label.Record) error {
		r.Owner, r.Payload, r.State = "", nil, lifecycle.Ready
		return nil
	})
	if err == nil {
		n.log.Info("node: released an interrupted target", "drive", d.Path)
	}
	return err
}

// wipeData resets every zone the engine may use (all but the label's).
func wipeData(ctx context.Context, dev zone.Device) error {
	in := dev.Info()
	first := 2
	if in.Kind != zone.KindZoned {
		first = int((2*label.RegionSize + in.ZoneSize - 1) / in.ZoneSize)
	}
	for i := first; i < in.NumZones; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := dev.Reset(ctx, i); err != nil {
			return fmt.Errorf("node: reset zone %d of %s: %w", i, in.Path, err)
		}
	}
	return dev.Flush(ctx)
}

func (n *Node) volOptions(id volume.UUID, vp **vol) volume.Options {
	return volume.Options{
		K: n.o.K, M: n.o.M, ZonesPerExtent: n.o.ZonesPerExtent, MaxBlock: n.o.MaxBlock,
		ID: id, Logger: n.log, Engine: n.o.Engine,
		OnDamage: func(d volume.Damage) { n.onDamage(*vp, d) },
	}
}

// openVolume assembles volume id from its drives.
func (n *Node) openVolume(ctx context.Context, id volume.UUID, ds []*drive) {
	vv := &vol{id: id}
	devs := make([]zone.Device, len(ds))
	for i, d := range ds {
		devs[i] = d.Dev
	}
	v, err := volume.Open(ctx, devs, n.volOptions(id, &vv))
	if err != nil {
		n.log.Error("node: volume does not open", "volume", id.String(), "err", err)
		for _, d := range ds {
			d.role, d.detail = RoleIncomplete, err.Error()
		}
		return
	}
	vv.v = v
	n.vols = append(n.vols, vv)
	n.adopt(vv, ds)
}

// adopt marks which of ds are the members of vv now (from its status).
func (n *Node) adopt(vv *vol, ds []*drive) {
	st := vv.v.Status()
	for _, d := range ds {
		d.role, d.detail, d.vol, d.slot = RoleStale, "an old member of volume "+vv.id.String()+" (replaced, or taken out)", nil, -1
		for _, s := range st.Slots {
			if s.Device == d.Dev.Info().Path && s.State != "lost" {
				d.role, d.detail, d.vol, d.slot = RoleMember, "", vv, s.Slot
			}
		}
	}
}

// formVolumes makes new volumes out of spares, keeping o.Spares of them.
func (n *Node) formVolumes(ctx context.Context) {
	w := n.o.K + n.o.M
	for {
		var free []*drive
		for _, d := range n.drives {
			if d.role == RoleSpare {
				free = append(free, d)
			}
		}
		if len(free)-n.o.Spares < w {
			return
		}
		slices.SortFunc(free, func(a, b *drive) int { return cmp.Compare(a.Path, b.Path) })
		ds := free[:w]
		devs := make([]zone.Device, w)
		for i, d := range ds {
			devs[i] = d.Dev
		}
		vv := &vol{}
		v, err := volume.Create(ctx, devs, n.volOptions(volume.UUID{}, &vv))
		if err != nil {
			n.log.Error("node: volume not created", "drives", len(ds), "err", err)
			for _, d := range ds {
				d.role, d.detail = RoleUnusable, "volume create failed: "+err.Error()
			}
			continue
		}
		vv.v, vv.id = v, v.Status().ID
		n.vols = append(n.vols, vv)
		n.adopt(vv, ds)
		n.log.Info("node: volume created", "volume", vv.id.String(), "k", n.o.K, "m", n.o.M)
	}
}

// Close closes every volume. The devices stay the caller's.
func (n *Node) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	var errs []error
	for _, v := range n.vols {
		errs = append(errs, v.v.Close())
	}
	return errors.Join(errs...)
}

func (n *Node) volumes() ([]*vol, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, ErrClosed
	}
	return slices.Clone(n.vols), nil
}

// byKey orders vs by rendezvous hash of key and volume id, so every
// caller tries the volumes for a key in the same order.
func byKey(vs []*vol, key Key) []*vol {
	score := func(v *vol) uint64 {
		h := sha256.New()
		h.Write(key[:])
		h.Write(v.id[:])
		return binary.LittleEndian.Uint64(h.Sum(nil))
	}
	out := slices.Clone(vs)
	slices.SortFunc(out, func(a, b *vol) int { return cmp.Compare(score(b), score(a)) })
	return out
}

func (n *Node) lock(key Key) *sync.Mutex { return &n.keyLocks[key[0]] }

// writable reports whether v takes new blocks: every slot present and
// whole (not degraded, not rebuilding), not full.
func writable(v *vol) bool {
	if v.full.Load() {
		return false
	}
	return !v.v.Degraded()
}

// Put stores data under key (its SHA-256) in a healthy writable volume and
// returns once all k+m fragments are durable. stored is false when some
// volume already held the block (nothing written).
func (n *Node) Put(ctx context.Context, key Key, data []byte) (stored bool, err error) {
	if len(data) == 0 {
		return false, ErrEmpty
	}
	if sha256.Sum256(data) != key {
		return false, fmt.Errorf("%w: key %x", ErrKeyMismatch, key[:8])
	}
	vs, err := n.volumes()
	if err != nil {
		return false, err
	}
	l := n.lock(key)
	l.Lock()
	defer l.Unlock()
	vs = byKey(vs, key)
	for _, v := range vs {
		has, err := v.v.Has(ctx, key)
		if err != nil && ctx.Err() != nil {
			return false, ctx.Err()
		}
		if has {
			return false, nil
		}
	}
	var errs []error
	for _, v := range vs {
		if !writable(v) {
			continue
		}
		stored, err := v.v.PutVerified(ctx, key, data) // the key was checked above
		switch {
		case err == nil:
			n.stats.puts.Add(1)
			return stored, nil
		case errors.Is(err, volume.ErrTooLarge), ctx.Err() != nil:
			return false, err
		case errors.Is(err, engine.ErrFull):
			v.full.Store(true)
			n.log.Warn("node: volume full", "volume", v.id.String())
		default:
			if n.takeOutFailed(ctx) > 0 {
				// A member failed mid-write: the volume is degraded
				// now; the block goes to the next writable volume.
				n.log.Warn("node: a member failed during a put; trying another volume", "volume", v.id.String(), "err", err)
			} else {
				n.log.Warn("node: put failed on a volume; trying the next", "volume", v.id.String(), "err", err)
			}
		}
		errs = append(errs, err)
	}
	return false, fmt.Errorf("%w: %d volumes, none took the block: %w", ErrFull, len(vs), errors.Join(errs...))
}

// lookup runs fn on each volume in key order until one does not say
// ErrNotFound; it returns ErrNotFound if none has the key, and an
// unrecoverable or other error only if no volume had it.
func lookup[T any](ctx context.Context, n *Node, key Key, fn func(v *vol) (T, error)) (T, error) {
	var zero T
	vs, err := n.volumes()
	if err != nil {
		return zero, err
	}
	var other error
	for _, v := range byKey(vs, key) {
		r, err := fn(v)
		if err == nil {
			return r, nil
		}
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		if !errors.Is(err, ErrNotFound) && other == nil {
			other = err
		}
	}
	if other != nil {
		return zero, other
	}
	return zero, fmt.Errorf("%w: %x", ErrNotFound, key[:8])
}

// Get returns the block, verified against its SHA-256; bad or missing
// fragments are rebuilt from parity and queued for repair.
func (n *Node) Get(ctx context.Context, key Key) ([]byte, error) {
	b, err := n.GetBlock(ctx, key)
	if err != nil {
		return nil, err
	}
	defer b.Release()
	return b.Bytes(), nil
}

// GetBlock is Get returning the block in the buffers it was read into
// (volume.Block): the caller writes it out and releases it.
func (n *Node) GetBlock(ctx context.Context, key Key) (*volume.Block, error) {
	b, err := lookup(ctx, n, key, func(v *vol) (*volume.Block, error) {
		b, rep, err := v.v.ReadBlock(ctx, key)
		if err == nil && rep.Reconstructed {
			n.stats.reconstructed.Add(1)
		}
		return b, err
	})
	if err == nil {
		n.stats.gets.Add(1)
	}
	return b, err
}

// Stat returns what the fragment headers of key say (no payload read).
func (n *Node) Stat(ctx context.Context, key Key) (volume.BlockInfo, error) {
	return lookup(ctx, n, key, func(v *vol) (volume.BlockInfo, error) {
		bi, err := v.v.Stat(ctx, key)
		if err == nil && bi.Fragments < v.v.Status().K {
			return bi, fmt.Errorf("%w: %x (only %d fragments)", ErrNotFound, key[:8], bi.Fragments)
		}
		return bi, err
	})
}

// Delete removes the block from every volume that holds it (durable
// tombstones). ErrNotFound when none did.
func (n *Node) Delete(ctx context.Context, key Key) error {
	vs, err := n.volumes()
	if err != nil {
		return err
	}
	l := n.lock(key)
	l.Lock()
	defer l.Unlock()
	found := false
	var errs []error
	for _, v := range vs {
		err := v.v.Delete(ctx, key)
		switch {
		case err == nil:
			found = true
			v.full.Store(false)
		case !errors.Is(err, ErrNotFound):
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: %x", ErrNotFound, key[:8])
	}
	n.stats.deletes.Add(1)
	return nil
}

// List returns up to limit keys greater than after (the zero key: from
// the start), ascending, across all volumes.
func (n *Node) List(ctx context.Context, after Key, limit int) ([]Key, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("node: list limit %d, want > 0", limit)
	}
	vs, err := n.volumes()
	if err != nil {
		return nil, err
	}
	var all []Key
	for _, v := range vs {
		ks, err := v.v.List(ctx, after, limit)
		if err != nil {
			return nil, fmt.Errorf("node: list volume %s: %w", v.id, err)
		}
		all = append(all, ks...)
	}
	slices.SortFunc(all, func(a, b Key) int { return bytes.Compare(a[:], b[:]) })
	all = slices.Compact(all)
	if len(all) > limit {
		all = all[:limit]
	}
	return all, nil
}
