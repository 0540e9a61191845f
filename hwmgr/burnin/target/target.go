// Package target holds what every destructive drive job (burn-in write
// passes, erase) needs before it touches a drive: the drive's identity, the
// skip list no request can override, the guard rails (read-only devices,
// lifecycle.Guard on the state and data the drive's label and foreign
// signatures reveal), and a per-controller concurrency bound.
package target

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/hwmgr/foreign"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
)

// Errors a refusal wraps besides lifecycle's; branch with errors.Is.
var (
	// ErrSkipped: the drive is on the skip list. No request overrides it.
	ErrSkipped = errors.New("target: drive is on the skip list")
	// ErrReadOnly: the block device is read-only (blockdev --setro,
	// losetup -r, a write-protected drive).
	ErrReadOnly = errors.New("target: device is read-only")
	// ErrVirtual: the block device is virtual (device-mapper, md, zram,
	// ram disk, nbd, ...): not a drive, and whatever it maps onto is not
	// ours to wipe. Loop and null_blk devices are the test lab's drives and
	// pass here; the daemon refuses them unless told otherwise.
	ErrVirtual = errors.New("target: device is virtual, not a drive")
)

// labDevices are the virtual block devices that stand in for drives in
// tests (loop over a file, null_blk): Check lets them through.
var labDevices = []string{"loop", "nullb"}

// Virtual reports whether the block device at path is virtual (its sysfs
// device lies below devices/virtual in the sysfs mounted at sysRoot, "" for
// /sys) and its kernel name; lab is true for the loop and null_blk devices
// tests use as drives.
func Virtual(sysRoot, path string) (virtual, lab bool, name string, err error) {
	dir, err := zone.SysfsDir(sysRoot, path)
	if err != nil {
		return false, false, "", fmt.Errorf("target: %w", err)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, false, "", fmt.Errorf("target: %s: %w", path, err)
	}
	name = filepath.Base(real)
	if !strings.Contains(real, "/devices/virtual/") {
		return false, false, name, nil
	}
	for _, p := range labDevices {
		if strings.HasPrefix(name, p) {
			return true, true, name, nil
		}
	}
	return true, false, name, nil
}

// Drive names the drive a job acts on, as discovery knows it.
type Drive struct {
	Path   string // block device, e.g. /dev/sdb or /dev/loop3
	Serial string
	WWN    string
	Model  string
	// Aliases are further names of the device (/dev/disk/by-path/...,
	// by-id) matched against the skip list.
	Aliases []string
	// Controller groups drives that share an HBA or bus; Limiter bounds
	// the jobs per controller. Empty: one group of its own per drive path.
	Controller string
	// SysRoot is the sysfs mount point Check reads the device's kind from
	// (virtual, zoned); "" means /sys.
	SysRoot string
}

// SkipList names drives that destructive jobs never touch, by serial, WWN or
// device path (any alias; symlinks are resolved). The daemon loads it from
// its config; no request can override it.
type SkipList struct {
	Serials []string `json:"serials,omitempty"`
	WWNs    []string `json:"wwns,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// Match returns a description of the entry that matches d, or "".
func (s SkipList) Match(d Drive) string {
	norm := func(x string) string { return strings.ToLower(strings.TrimSpace(x)) }
	for _, v := range s.Serials {
		if d.Serial != "" && strings.TrimSpace(v) == strings.TrimSpace(d.Serial) {
			return "serial " + strings.TrimSpace(v)
		}
	}
	for _, v := range s.WWNs {
		if d.WWN != "" && norm(v) == norm(d.WWN) {
			return "wwn " + v
		}
	}
	names := map[string]bool{}
	for _, p := range append([]string{d.Path}, d.Aliases...) {
		if p == "" {
			continue
		}
		names[filepath.Clean(p)] = true
		if r, err := filepath.EvalSymlinks(p); err == nil {
			names[r] = true
		}
	}
	for _, v := range s.Paths {
		if names[filepath.Clean(v)] {
			return "path " + v
		}
		if r, err := filepath.EvalSymlinks(v); err == nil && names[r] {
			return "path " + v
		}
	}
	return ""
}

// Request is a destructive job asked of a drive.
type Request struct {
	Action lifecycle.Action // lifecycle.ActBurnIn or lifecycle.ActErase
	Serial string           // the serial the request names (confirms a drive holding data)
}

// Inspection is what Check learned of the drive, for the job and its report.
type Inspection struct {
	Lifecycle lifecycle.Drive `json:"lifecycle"`
	Label     bool            `json:"label"` // a valid label record was found
	Foreign   []string        `json:"foreign,omitempty"`
}

// Check runs every guard rail for req on d, reading the device only: the skip
// list, the read-only flag, virtual devices (ErrVirtual), then lifecycle.Guard on the drive's state, owner
// payload and foreign signatures. It opens nothing for writing, so a refused
// drive's bytes are unchanged. A nil error means the job may open the device.
func Check(ctx context.Context, d Drive, skip SkipList, req Request) (Inspection, error) {
	var in Inspection
	if !req.Action.Destructive() {
		return in, fmt.Errorf("target: %s: action %q is not a destructive job", d.Path, req.Action)
	}
	if m := skip.Match(d); m != "" {
		return in, fmt.Errorf("target: %s: %w (%s)", d.Path, ErrSkipped, m)
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return in, fmt.Errorf("target: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return in, fmt.Errorf("target: %w", err)
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return in, fmt.Errorf("target: %s: not a block device", d.Path)
	}
	ro, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKROGET)
	if err != nil {
		return in, fmt.Errorf("target: %s: %w", d.Path, os.NewSyscallError("ioctl(BLKROGET)", err))
	}
	if ro != 0 {
		return in, fmt.Errorf("target: %s: %w", d.Path, ErrReadOnly)
	}
	if virt, lab, name, err := Virtual(d.SysRoot, d.Path); err != nil {
		return in, err
	} else if virt && !lab {
		return in, fmt.Errorf("target: %s (%s): %w", d.Path, name, ErrVirtual)
	}
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return in, fmt.Errorf("target: %s: %w", d.Path, os.NewSyscallError("ioctl(BLKGETSIZE64)", err))
	}
	zoned, err := isZoned(d.SysRoot, d.Path)
	if err != nil {
		return in, err
	}
	var (
		rec   label.Record
		ok    bool
		fopts foreign.Options
	)
	if zoned {
		// The label's second region is zone 1: read it through the zoned
		// device (opened, never written: every write path is refused).
		zd, err := zone.OpenZoned(d.Path, zone.ZonedOptions{})
		if err != nil {
			return in, fmt.Errorf("target: %s: %w", d.Path, err)
		}
		defer zd.Close()
		fopts.LabelOffsets = []int64{zd.Info().ZoneSize}
		a, err := label.OpenZoned(ctx, readOnlyZoned{readOnly{f}, zd}, label.Options{Name: d.Path})
		if err != nil {
			return in, fmt.Errorf("target: %s: label: %w", d.Path, err)
		}
		rec, ok = a.Current()
	} else if rec, ok, err = readLabel(ctx, f, d.Path); err != nil {
		return in, err
	}
	rep, err := foreign.Detect(f, int64(size), fopts)
	if err != nil {
		return in, fmt.Errorf("target: %s: foreign signatures: %w", d.Path, err)
	}
	var st0 lifecycle.State
	if ok {
		st0 = rec.State
	}
	in.Label = ok
	in.Foreign = rep.Kinds()
	in.Lifecycle = lifecycle.Drive{
		Serial: d.Serial, WWN: d.WWN, Model: d.Model,
		State:        lifecycle.Initial(st0, rep.Foreign()),
		OwnerPayload: ok && len(rec.Payload) > 0,
		Foreign:      rep.Kinds(),
	}
	if err := lifecycle.Guard(in.Lifecycle, req.Action, req.Serial); err != nil {
		return in, fmt.Errorf("target: %s: %w", d.Path, err)
	}
	return in, nil
}

// readLabel reads the label area through a read-only, buffered device.
func readLabel(ctx context.Context, f *os.File, name string) (label.Record, bool, error) {
	a, err := label.OpenConventional(ctx, readOnly{f}, label.Options{Name: name})
	if err != nil {
		return label.Record{}, false, fmt.Errorf("target: %s: label: %w", name, err)
	}
	rec, ok := a.Current()
	return rec, ok, nil
}

// readOnly lets label read a device it must never write.
type readOnly struct{ f *os.File }

func (r readOnly) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r readOnly) WriteAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("target: %s: write at %d refused: opened for inspection only", r.f.Name(), off)
}
func (r readOnly) Flush(context.Context) error { return nil }

// readOnlyZoned reads a zoned device's label zones and refuses every change.
type readOnlyZoned struct {
	readOnly
	zd *zone.Zoned
}

func (r readOnlyZoned) ReportZones(ctx context.Context, first, n int) ([]zone.Zone, error) {
	return r.zd.ReportZones(ctx, first, n)
}
func (r readOnlyZoned) Reset(_ context.Context, i int) error {
	return fmt.Errorf("target: %s: reset of zone %d refused: opened for inspection only", r.f.Name(), i)
}
func (r readOnlyZoned) Finish(_ context.Context, i int) error {
	return fmt.Errorf("target: %s: finish of zone %d refused: opened for inspection only", r.f.Name(), i)
}

// isZoned reports whether sysfs (mounted at sysRoot) says the block device
// at path is zoned (host-managed or host-aware).
func isZoned(sysRoot, path string) (bool, error) {
	dir, err := zone.SysfsDir(sysRoot, path)
	if err != nil {
		return false, fmt.Errorf("target: %s: %w", path, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "queue", "zoned"))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // a partition or an old kernel: conventional
	}
	if err != nil {
		return false, fmt.Errorf("target: %s: %w", path, err)
	}
	m := strings.TrimSpace(string(b))
	return m == zone.ModelHostManaged || m == zone.ModelHostAware, nil
}

// Open runs Check and, when it passes, opens the device for the job with
// zone.Open (zoned devices keep their zones; conventional ones get emulated
// zones of zoneSize bytes, 0 meaning zone.DefaultZoneSize).
func Open(ctx context.Context, d Drive, skip SkipList, req Request, zoneSize int64) (zone.Device, Inspection, error) {
	in, err := Check(ctx, d, skip, req)
	if err != nil {
		return nil, in, err
	}
	dev, err := zone.Open(d.Path, zone.Options{ZoneSize: zoneSize})
	if err != nil {
		return nil, in, fmt.Errorf("target: %s: open: %w", d.Path, err)
	}
	return dev, in, nil
}

// LabelArea returns the byte span at the start of dev that jobs must leave
// alone: zones 0 and 1 of a zoned device, the two label regions
// (2 × label.RegionSize) of a conventional one.
func LabelArea(info zone.Info) int64 {
	if info.Kind == zone.KindZoned {
		return 2 * info.ZoneSize
	}
	return 2 * label.RegionSize
}

// Limiter bounds how many jobs run at once per controller key. The zero
// Limiter (or PerKey ≤ 0) allows one job per key.
type Limiter struct {
	PerKey int

	mu   sync.Mutex
	sems map[string]chan struct{}
}

// Acquire blocks until a slot for key is free or ctx ends; call the returned
// release when the job is done.
func (l *Limiter) Acquire(ctx context.Context, key string) (release func(), err error) {
	l.mu.Lock()
	if l.sems == nil {
		l.sems = map[string]chan struct{}{}
	}
	s, ok := l.sems[key]
	if !ok {
		n := l.PerKey
		if n <= 0 {
			n = 1
		}
		s = make(chan struct{}, n)
		l.sems[key] = s
	}
	l.mu.Unlock()
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("target: waiting for controller %q: %w", key, ctx.Err())
	}
}

// Key returns the limiter key of d: its controller, else its path.
func (d Drive) Key() string {
	if d.Controller != "" {
		return d.Controller
	}
	return d.Path
}
