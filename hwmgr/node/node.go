package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DriveSource lists the drives present now (discovery).
type DriveSource interface {
	Scan(ctx context.Context) ([]Identity, error)
}

// SMARTSource reads a drive's SMART data (smartctl). It must not wake a
// drive in standby; it reports that as SMART.Asleep instead.
type SMARTSource interface {
	Read(ctx context.Context, id Identity) (SMART, error)
}

// StatsSource samples I/O statistics for the given drives, keyed by kernel
// name, outliers flagged against drives of the same model.
type StatsSource interface {
	Sample(ctx context.Context, drives []Identity) (map[string]Stats, error)
}

// HealthPolicy judges a drive from its current data; prev is the SMART
// data of the poll before (nil for the first), for growth rules.
type HealthPolicy interface {
	Judge(d Drive, prev *SMART) Health
}

// LabelStore reads and changes the on-drive label. Apply enforces the
// lifecycle's transitions and guard rails and returns the new label; it
// reports refusals wrapping ErrInvalidTransition, ErrInService,
// ErrSerialRequired or ErrSerialMismatch.
type LabelStore interface {
	Read(ctx context.Context, id Identity) (Label, error)
	Apply(ctx context.Context, id Identity, t Transition) (Label, error)
}

// Config is the node's configuration. Sources left nil are skipped (the
// drive table then lacks that part); the zero durations take the defaults.
type Config struct {
	Drives DriveSource
	SMART  SMARTSource
	Stats  StatsSource
	Health HealthPolicy
	Labels LabelStore
	Info   Info

	// RescanInterval: periodic discovery, a safety net for missed
	// hot-plug events (default 60s).
	RescanInterval time.Duration
	// SMARTInterval: how often every drive's SMART is polled (default 10m).
	SMARTInterval time.Duration
	// StatsInterval: how often I/O stats are sampled (default 10s).
	StatsInterval time.Duration
	// SMARTParallel bounds concurrent smartctl runs (default 4).
	SMARTParallel int
	// EventRing is the number of events kept for resume (default 1024).
	EventRing int
	// DontFail keeps drives the policy judges "fail" in their state
	// (by default they move to failed).
	DontFail bool

	Logger *slog.Logger
	// Now returns the current time (default time.Now).
	Now func() time.Time
}

// Node holds the drive table.
type Node struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	bus    *Bus
	rescan chan struct{}
	ready  atomic.Bool
	readyC chan struct{}
	once   sync.Once

	// scanMu serialises scans, polls and actions that touch a drive's label.
	scanMu sync.Mutex

	mu        sync.RWMutex
	drives    map[string]*Drive // by ID
	scannedAt time.Time
	scanErr   error
}

// New returns a node; call Run to keep it current, or Scan / PollSMART /
// PollStats to drive it by hand.
func New(cfg Config) *Node {
	if cfg.RescanInterval <= 0 {
		cfg.RescanInterval = time.Minute
	}
	if cfg.SMARTInterval <= 0 {
		cfg.SMARTInterval = 10 * time.Minute
	}
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = 10 * time.Second
	}
	if cfg.SMARTParallel <= 0 {
		cfg.SMARTParallel = 4
	}
	if cfg.EventRing <= 0 {
		cfg.EventRing = 1024
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Info.StartedAt.IsZero() {
		cfg.Info.StartedAt = cfg.Now().UTC()
	}
	return &Node{
		cfg:    cfg,
		log:    cfg.Logger,
		now:    cfg.Now,
		bus:    NewBus(cfg.EventRing, 256),
		rescan: make(chan struct{}, 1),
		readyC: make(chan struct{}),
		drives: map[string]*Drive{},
	}
}

// Events returns the node's event bus.
func (n *Node) Events() *Bus { return n.bus }

// Ready reports whether the first discovery scan has completed.
func (n *Node) Ready() bool { return n.ready.Load() }

// ReadyC is closed when the first discovery scan has completed.
func (n *Node) ReadyC() <-chan struct{} { return n.readyC }

func (n *Node) markReady() {
	n.once.Do(func() {
		n.ready.Store(true)
		close(n.readyC)
	})
}

// Trigger asks Run for a rescan soon (hot-plug).
func (n *Node) Trigger() {
	select {
	case n.rescan <- struct{}{}:
	default:
	}
}

// Run scans, polls and samples until ctx ends.
func (n *Node) Run(ctx context.Context) error {
	n.cycle(ctx, true)
	rescan := time.NewTicker(n.cfg.RescanInterval)
	defer rescan.Stop()
	smart := time.NewTicker(n.cfg.SMARTInterval)
	defer smart.Stop()
	stats := time.NewTicker(n.cfg.StatsInterval)
	defer stats.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-rescan.C:
			n.scanLogged(ctx)
		case <-n.rescan:
			n.scanLogged(ctx)
			n.PollSMART(ctx) // new drives get their first poll now
		case <-smart.C:
			n.PollSMART(ctx)
		case <-stats.C:
			n.statsLogged(ctx)
		}
	}
}

func (n *Node) cycle(ctx context.Context, first bool) {
	n.scanLogged(ctx)
	if first {
		n.markReady()
	}
	n.statsLogged(ctx)
	n.PollSMART(ctx)
}

func (n *Node) scanLogged(ctx context.Context) {
	if err := n.Scan(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("discovery scan failed", "err", err)
	}
}

func (n *Node) statsLogged(ctx context.Context) {
	if err := n.PollStats(ctx); err != nil && ctx.Err() == nil {
		n.log.Warn("I/O stats sample failed", "err", err)
	}
}

// Scan runs discovery once: new drives are added (their label read),
// vanished ones removed, identities refreshed. Events are published for
// each drive added or removed.
func (n *Node) Scan(ctx context.Context) error {
	if n.cfg.Drives == nil {
		n.markReady()
		return nil
	}
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	ids, err := n.cfg.Drives.Scan(ctx)
	if err != nil {
		n.mu.Lock()
		n.scanErr = err
		n.mu.Unlock()
		return fmt.Errorf("discovery: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		key := id.ID()
		if seen[key] {
			// Two devices with one WWN/serial (multipath or a cloned
			// loop file): keep them apart by kernel name.
			key = id.Name
		}
		seen[key] = true
		n.mu.RLock()
		d, ok := n.drives[key]
		n.mu.RUnlock()
		if ok {
			n.mu.Lock()
			d.Identity = id
			n.mu.Unlock()
			continue
		}
		nd := &Drive{ID: key, Identity: id, FirstSeen: n.now().UTC(), Health: Health{Verdict: VerdictUnknown}}
		n.readLabel(ctx, nd)
		n.mu.Lock()
		n.drives[key] = nd
		n.mu.Unlock()
		n.log.Info("drive added", "drive", key, "name", id.Name, "serial", id.Serial, "model", id.Model, "state", nd.Label.State)
		n.bus.Publish(EventDriveAdded, key, n.now(), DriveData{Name: id.Name, Serial: id.Serial, Model: id.Model, State: nd.Label.State})
	}
	n.mu.Lock()
	var gone []*Drive
	for key, d := range n.drives {
		if !seen[key] {
			gone = append(gone, d)
			delete(n.drives, key)
		}
	}
	n.scannedAt = n.now().UTC()
	n.scanErr = nil
	n.mu.Unlock()
	for _, d := range gone {
		n.log.Info("drive removed", "drive", d.ID, "name", d.Identity.Name, "serial", d.Identity.Serial)
		n.bus.Publish(EventDriveRemoved, d.ID, n.now(), DriveData{Name: d.Identity.Name, Serial: d.Identity.Serial, Model: d.Identity.Model, State: d.Label.State})
	}
	n.markReady()
	return nil
}

// readLabel fills d.Label from the label store; d is not yet shared.
func (n *Node) readLabel(ctx context.Context, d *Drive) {
	if n.cfg.Labels == nil {
		d.Label = Label{State: StateUnknown}
		return
	}
	l, err := n.cfg.Labels.Read(ctx, d.Identity)
	if err != nil {
		d.Label = Label{State: StateUnknown}
		d.LabelError = err.Error()
		n.log.Warn("label read failed", "drive", d.ID, "dev", d.Identity.DevPath, "err", err)
		return
	}
	d.Label = l
	d.LabelError = ""
}

// RefreshLabel reads a drive's label again (after something other than
// the node changed it, such as burn-in or the OSD) and returns the drive.
func (n *Node) RefreshLabel(ctx context.Context, ref string) (Drive, error) {
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	n.mu.RLock()
	d := n.find(ref)
	var cur Drive
	if d != nil {
		cur = copyDrive(d)
	}
	n.mu.RUnlock()
	if d == nil {
		return Drive{}, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	n.readLabel(ctx, &cur)
	n.mu.Lock()
	defer n.mu.Unlock()
	if dd, ok := n.drives[cur.ID]; ok {
		dd.Label, dd.LabelError = cur.Label, cur.LabelError
		return copyDrive(dd), nil
	}
	return Drive{}, fmt.Errorf("%w: %q (removed meanwhile)", ErrNotFound, ref)
}

// PollSMART reads SMART for every drive (bounded parallelism), judges
// health, publishes health changes and fails drives the policy fails.
func (n *Node) PollSMART(ctx context.Context) {
	n.mu.RLock()
	var todo []Identity
	var keys []string
	for k, d := range n.drives {
		todo = append(todo, d.Identity)
		keys = append(keys, k)
	}
	n.mu.RUnlock()
	sem := make(chan struct{}, n.cfg.SMARTParallel)
	var wg sync.WaitGroup
	for i := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(key string, id Identity) {
			defer wg.Done()
			defer func() { <-sem }()
			n.pollOne(ctx, key, id)
		}(keys[i], todo[i])
	}
	wg.Wait()
}

func (n *Node) pollOne(ctx context.Context, key string, id Identity) {
	var (
		s   SMART
		err error
	)
	if n.cfg.SMART != nil {
		start := n.now()
		s, err = n.cfg.SMART.Read(ctx, id)
		if s.Time.IsZero() {
			s.Time = start.UTC()
		}
		if s.DurationSeconds == 0 {
			s.DurationSeconds = n.now().Sub(start).Seconds()
		}
	}
	n.mu.Lock()
	d, ok := n.drives[key]
	if !ok {
		n.mu.Unlock()
		return
	}
	var prev *SMART
	if n.cfg.SMART != nil {
		d.Polls++
		if err != nil {
			d.PollErrors++
			d.SMARTError = err.Error()
		} else {
			prev = d.SMART
			d.SMART = &s
			d.SMARTError = ""
		}
	}
	old := d.Health
	cur := *d
	n.mu.Unlock()
	if err != nil {
		n.log.Warn("SMART poll failed", "drive", key, "dev", id.DevPath, "err", err)
	}
	n.judge(ctx, key, cur, prev, old)
}

// judge applies the health policy and acts on its verdict.
func (n *Node) judge(ctx context.Context, key string, cur Drive, prev *SMART, old Health) {
	if n.cfg.Health == nil {
		return
	}
	h := n.cfg.Health.Judge(cur, prev)
	if h.Verdict == "" {
		h.Verdict = VerdictUnknown
	}
	n.mu.Lock()
	d, ok := n.drives[key]
	if ok {
		d.Health = h
	}
	n.mu.Unlock()
	if !ok {
		return
	}
	if old.Verdict != h.Verdict {
		n.log.Info("health changed", "drive", key, "from", old.Verdict, "to", h.Verdict, "reasons", len(h.Reasons))
		n.bus.Publish(EventHealthChanged, key, n.now(), HealthData{From: old.Verdict, To: h.Verdict, Reasons: h.Reasons})
	}
	if h.Verdict == VerdictFail && !n.cfg.DontFail && n.cfg.Labels != nil {
		st := cur.Label.State
		if st == StateFailed || st == StateForeign || st == StateRetired || st == StateUnknown {
			return
		}
		var why []string
		for _, r := range h.Reasons {
			if r.Severity == VerdictFail {
				why = append(why, r.Rule)
			}
		}
		_, err := n.apply(ctx, key, Transition{Action: ActionFail, Reason: "health policy: " + strings.Join(why, ", "), Actor: "health-policy"})
		if err != nil {
			n.log.Warn("could not move failing drive to failed", "drive", key, "err", err)
		}
	}
}

// PollStats samples I/O stats for every drive.
func (n *Node) PollStats(ctx context.Context) error {
	if n.cfg.Stats == nil {
		return nil
	}
	n.mu.RLock()
	var ids []Identity
	for _, d := range n.drives {
		ids = append(ids, d.Identity)
	}
	n.mu.RUnlock()
	st, err := n.cfg.Stats.Sample(ctx, ids)
	if err != nil {
		return fmt.Errorf("I/O stats: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, d := range n.drives {
		if s, ok := st[d.Identity.Name]; ok {
			s := s
			d.Stats = &s
		}
	}
	return nil
}

// Inventory returns a copy of the node and its drives, sorted by kernel name.
func (n *Node) Inventory() Inventory {
	n.mu.RLock()
	defer n.mu.RUnlock()
	inv := Inventory{Node: n.cfg.Info, ScannedAt: n.scannedAt, Drives: make([]Drive, 0, len(n.drives))}
	for _, d := range n.drives {
		inv.Drives = append(inv.Drives, copyDrive(d))
	}
	sort.Slice(inv.Drives, func(i, j int) bool { return inv.Drives[i].Identity.Name < inv.Drives[j].Identity.Name })
	return inv
}

// Drive finds a drive by ID, serial, WWN or kernel name.
func (n *Node) Drive(ref string) (Drive, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	d := n.find(ref)
	if d == nil {
		return Drive{}, false
	}
	return copyDrive(d), true
}

func (n *Node) find(ref string) *Drive {
	if ref == "" {
		return nil
	}
	if d, ok := n.drives[ref]; ok {
		return d
	}
	for _, d := range n.drives {
		id := d.Identity
		if ref == id.Name || ref == id.Serial || ref == id.WWN || ref == id.DevPath || ref == id.ByID {
			return d
		}
	}
	return nil
}

func copyDrive(d *Drive) Drive {
	c := *d
	c.Label.History = slices.Clone(d.Label.History)
	c.Label.Foreign = slices.Clone(d.Label.Foreign)
	c.Label.Results = slices.Clone(d.Label.Results)
	if d.Label.Task != nil {
		t := *d.Label.Task
		c.Label.Task = &t
	}
	if d.Job != nil {
		j := *d.Job
		j.Reasons = slices.Clone(d.Job.Reasons)
		c.Job = &j
	}
	c.Health.Reasons = slices.Clone(d.Health.Reasons)
	if d.SMART != nil {
		s := *d.SMART
		c.SMART = &s
	}
	if d.Stats != nil {
		s := *d.Stats
		c.Stats = &s
	}
	if d.Identity.Slot != nil {
		s := *d.Identity.Slot
		c.Identity.Slot = &s
	}
	if d.Locate != nil {
		v := *d.Locate
		c.Locate = &v
	}
	return c
}

// Act applies an operator action to a drive. State-changing actions on a
// drive that holds data (owner payload or foreign signature), and adopt
// always, need the drive's serial (or WWN; for a device that reports
// neither, its ID) in req.Serial.
func (n *Node) Act(ctx context.Context, ref string, a Action, req ActionRequest) (Drive, error) {
	if !slices.Contains(Actions, a) {
		return Drive{}, fmt.Errorf("%w %q", ErrUnknownAction, a)
	}
	n.mu.RLock()
	d := n.find(ref)
	var cur Drive
	if d != nil {
		cur = copyDrive(d)
	}
	n.mu.RUnlock()
	if d == nil {
		return Drive{}, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	if a == ActionLocateOn || a == ActionLocateOff {
		return n.locate(cur, a == ActionLocateOn)
	}
	if cur.HoldsData() || a == ActionAdopt {
		if err := checkSerial(cur, req.Serial); err != nil {
			return Drive{}, fmt.Errorf("drive %s (%s): %w", cur.ID, cur.Identity.DevPath, err)
		}
	}
	if cur.Label.State == StateInService && a != ActionDrain {
		return Drive{}, fmt.Errorf("drive %s (%s): %w: only drain is allowed", cur.ID, cur.Identity.DevPath, ErrInService)
	}
	if n.cfg.Labels == nil {
		return Drive{}, fmt.Errorf("drive %s: %w: no label store", cur.ID, ErrInvalidTransition)
	}
	return n.apply(ctx, cur.ID, Transition{Action: a, Reason: req.Reason, Actor: req.Actor, Serial: req.Serial})
}

// Apply runs a transition for an internal caller (burn-in, erase, the
// OSD claiming a drive) through the label store, whose lifecycle rules and
// guard rails decide, and publishes it. Unlike Act it takes any action the
// lifecycle knows and leaves the serial check to the label store.
func (n *Node) Apply(ctx context.Context, ref string, t Transition) (Drive, error) {
	if n.cfg.Labels == nil {
		return Drive{}, fmt.Errorf("%w: no label store", ErrInvalidTransition)
	}
	n.mu.RLock()
	d := n.find(ref)
	var key string
	if d != nil {
		key = d.ID
	}
	n.mu.RUnlock()
	if d == nil {
		return Drive{}, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	return n.apply(ctx, key, t)
}

// apply runs a transition through the label store and publishes it.
func (n *Node) apply(ctx context.Context, key string, t Transition) (Drive, error) {
	n.scanMu.Lock()
	defer n.scanMu.Unlock()
	n.mu.RLock()
	d, ok := n.drives[key]
	var id Identity
	var from State
	if ok {
		id, from = d.Identity, d.Label.State
	}
	n.mu.RUnlock()
	if !ok {
		return Drive{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	l, err := n.cfg.Labels.Apply(ctx, id, t)
	if err != nil {
		return Drive{}, fmt.Errorf("drive %s (%s): %s: %w", key, id.DevPath, t.Action, err)
	}
	n.mu.Lock()
	d, ok = n.drives[key]
	var out Drive
	if ok {
		d.Label = l
		d.LabelError = ""
		out = copyDrive(d)
	}
	n.mu.Unlock()
	n.log.Info("lifecycle transition", "drive", key, "serial", id.Serial, "action", t.Action, "from", from, "to", l.State, "actor", t.Actor, "reason", t.Reason)
	n.bus.Publish(EventLifecycle, key, n.now(), LifecycleData{Action: t.Action, From: from, To: l.State, Reason: t.Reason, Actor: t.Actor})
	if !ok {
		return Drive{}, fmt.Errorf("%w: %q (removed during the action)", ErrNotFound, key)
	}
	return out, nil
}

// checkSerial confirms a request names the drive: its serial or WWN, or,
// for a device that reports neither (a loop device), its ID.
func checkSerial(d Drive, serial string) error {
	serial = strings.TrimSpace(serial)
	if serial == "" {
		return ErrSerialRequired
	}
	id := d.Identity
	if id.Serial == "" && id.WWN == "" {
		if serial != d.ID {
			return fmt.Errorf("%w: the drive reports neither serial nor WWN; name its ID %q", ErrSerialMismatch, d.ID)
		}
		return nil
	}
	if serial != strings.TrimSpace(id.Serial) && serial != id.WWN {
		return ErrSerialMismatch
	}
	return nil
}

// locate switches the enclosure slot's locate LED.
func (n *Node) locate(d Drive, on bool) (Drive, error) {
	if d.Identity.Slot == nil || d.Identity.Slot.LocatePath == "" {
		return Drive{}, fmt.Errorf("drive %s (%s): %w", d.ID, d.Identity.DevPath, ErrNoEnclosure)
	}
	p := d.Identity.Slot.LocatePath
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Drive{}, fmt.Errorf("drive %s: %w: %s is gone", d.ID, ErrNoEnclosure, p)
		}
		return Drive{}, fmt.Errorf("drive %s: locate LED: %w", d.ID, err)
	}
	_, err = f.Write(v)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Drive{}, fmt.Errorf("drive %s: locate LED: write %s: %w", d.ID, p, err)
	}
	n.mu.Lock()
	var out Drive
	if dd, ok := n.drives[d.ID]; ok {
		dd.Locate = &on
		out = copyDrive(dd)
	}
	n.mu.Unlock()
	n.log.Info("locate LED", "drive", d.ID, "slot", d.Identity.Slot.Slot, "on", on)
	n.bus.Publish(EventLocate, d.ID, n.now(), LocateData{On: on})
	return out, nil
}
