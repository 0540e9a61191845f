package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin"
	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/erase"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/osd/zone"
)

// jobConfig configures the daemon's burn-in and erase jobs.
type jobConfig struct {
	Skip          target.SkipList
	PerController int  // concurrent jobs per controller (PCI function)
	AllowLab      bool // loop and null_blk devices may be burned in and erased (tests)
	ReportDir     string
	ZoneSize      int64 // burn-in region (emulated zone) on conventional drives
	Siblings      burnin.SiblingRule
	SMART         burnin.SMART      // nil: no SMART baseline / after-sample
	SelfTest      burnin.SelfTester // nil: no SMART self-test
	SysRoot       string
	ProgressEvery time.Duration // at most one job.progress event per drive this often
	// FailSlowRegions fails a burn-in with a slow region (default: the
	// report's slow-region reason is a warning).
	FailSlowRegions bool
	MaxTempC        int64         // burn-in temperature ceiling (burnin.Config.MaxTempC)
	SMARTInterval   time.Duration // SMART samples during a burn-in (burnin.Config.SMARTInterval)
}

// jobParams are a job's parameters. They are recorded in the label history
// (a note entry) when the job starts, so that a daemon restarted
// mid-burn-in resumes it with the same passes, share and seed.
type jobParams struct {
	Passes   int       `json:"passes,omitempty"`
	Share    float64   `json:"share,omitempty"`
	SelfTest string    `json:"self_test,omitempty"`
	Method   string    `json:"method,omitempty"`
	Retire   bool      `json:"retire,omitempty"`
	ZoneSize int64     `json:"zone_size,omitempty"` // regions of this run (a resumed run must use the same)
	Started  time.Time `json:"started"`
	Batch    string    `json:"batch,omitempty"`
}

// paramsPrefix starts the detail of the note entry holding a job's params.
const paramsPrefix = "params "

// jobManager runs burn-ins and erases for the API: guard rails first (all
// drives of a request, before any is touched), then the lifecycle
// transition in the label, then the job, bounded per controller, with
// checkpoints and the verdict written to the label.
type jobManager struct {
	cfg    jobConfig
	node   *node.Node
	labels *labelStore
	batch  target.Batch
	log    *slog.Logger
	now    func() time.Time
	base   context.Context // the daemon's lifetime: jobs stop with it and resume at the next start

	mu      sync.Mutex
	active  map[string]*jobRun // by drive ID
	reports map[string][]byte  // by drive ID + "/" + kind
	wg      sync.WaitGroup
	seq     atomic.Uint64
}

type jobRun struct {
	id     string
	ident  node.Identity
	kind   node.JobKind
	params jobParams
	resume label.Task
	base   *burnin.Baseline // the SMART baseline a resumed burn-in kept in the label
	ctx    context.Context
	cancel context.CancelFunc
	actor  atomic.Pointer[string] // who cancelled, once cancelled
	job    node.Job               // guarded by jobManager.mu
	pubAt  time.Time
}

func newJobManager(base context.Context, cfg jobConfig, n *node.Node, labels *labelStore, log *slog.Logger) *jobManager {
	if cfg.PerController <= 0 {
		cfg.PerController = 8
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	return &jobManager{cfg: cfg, node: n, labels: labels, log: log, now: time.Now, base: base,
		batch:  target.Batch{Skip: cfg.Skip, Limiter: &target.Limiter{PerKey: cfg.PerController}},
		active: map[string]*jobRun{}, reports: map[string][]byte{}}
}

func actionOf(k node.JobKind) (lifecycle.Action, error) {
	switch k {
	case node.JobBurnIn:
		return lifecycle.ActBurnIn, nil
	case node.JobErase:
		return lifecycle.ActErase, nil
	}
	return "", fmt.Errorf("%w: unknown job kind %q", node.ErrBadRequest, k)
}

func (p jobParams) validate(k node.JobKind) error {
	if p.Passes < 0 || p.Passes > 99 {
		return fmt.Errorf("%w: passes %d out of [1, 99]", node.ErrBadRequest, p.Passes)
	}
	if !(p.Share >= 0 && p.Share <= 1) {
		return fmt.Errorf("%w: share %v out of (0, 1]", node.ErrBadRequest, p.Share)
	}
	if !slices.Contains([]string{"", "short", "long", "none"}, p.SelfTest) {
		return fmt.Errorf("%w: self_test %q: short, long or none", node.ErrBadRequest, p.SelfTest)
	}
	if k == node.JobBurnIn && (p.Method != "" || p.Retire) {
		return fmt.Errorf("%w: method and retire are erase parameters", node.ErrBadRequest)
	}
	if k == node.JobErase && (p.Passes != 0 || p.Share != 0 || p.SelfTest != "") {
		return fmt.Errorf("%w: passes, share and self_test are burn-in parameters", node.ErrBadRequest)
	}
	return nil
}

// Start checks every drive of req against the guard rails, moves them to
// burnin or erasing in their labels and starts the job. No drive is
// touched unless every drive of the request passes.
func (m *jobManager) Start(ctx context.Context, req node.JobRequest) ([]node.Job, error) {
	act, err := actionOf(req.Kind)
	if err != nil {
		return nil, err
	}
	p := jobParams{Passes: req.Passes, Share: req.Share, SelfTest: req.SelfTest, Method: req.Method, Retire: req.Retire}
	if err := p.validate(req.Kind); err != nil {
		return nil, err
	}
	if len(req.Drives) == 0 {
		return nil, fmt.Errorf("%w: no drives", node.ErrBadRequest)
	}
	p.Started = m.now().UTC()
	p.Batch = fmt.Sprintf("%s-%d-%d", req.Kind, p.Started.Unix(), m.seq.Add(1))
	type pick struct {
		d      node.Drive
		serial string
	}
	var picks []pick
	seen := map[string]bool{}
	for _, jd := range req.Drives {
		d, ok := m.node.Drive(jd.Drive)
		if !ok {
			return nil, fmt.Errorf("%w: %q", node.ErrNotFound, jd.Drive)
		}
		if seen[d.ID] {
			return nil, fmt.Errorf("%w: drive %s named twice", node.ErrBadRequest, d.ID)
		}
		seen[d.ID] = true
		picks = append(picks, pick{d, jd.Serial})
	}
	// Reserve the drives, so two requests cannot race for one.
	m.mu.Lock()
	for _, pk := range picks {
		if r, ok := m.active[pk.d.ID]; ok {
			m.mu.Unlock()
			return nil, fmt.Errorf("drive %s: %w (%s, %s)", pk.d.ID, node.ErrJobRunning, r.kind, r.job.State)
		}
	}
	runs := make([]*jobRun, len(picks))
	for i, pk := range picks {
		r := &jobRun{id: pk.d.ID, ident: pk.d.Identity, kind: req.Kind, params: p}
		r.params.ZoneSize = m.zoneSize(r.ident)
		r.job = node.Job{Kind: req.Kind, State: node.JobQueued, Drive: r.id, Device: r.ident.Name, Batch: p.Batch, Started: p.Started, Updated: p.Started}
		m.active[r.id] = r
		runs[i] = r
	}
	m.mu.Unlock()
	release := func(rs []*jobRun) {
		m.mu.Lock()
		for _, r := range rs {
			delete(m.active, r.id)
		}
		m.mu.Unlock()
	}
	for _, pk := range picks {
		if req.Kind == node.JobErase {
			if _, _, err := erase.Choose(eraseInfo(pk.d.Identity), p.Method); err != nil {
				release(runs)
				return nil, fmt.Errorf("drive %s: %w: %w", pk.d.ID, node.ErrBadRequest, err)
			}
		}
		if err := m.guard(ctx, pk.d, act, pk.serial); err != nil {
			release(runs)
			return nil, fmt.Errorf("drive %s (%s): %w", pk.d.ID, pk.d.Identity.DevPath, err)
		}
	}
	var started []*jobRun
	var errs []error
	for i, pk := range picks {
		r := runs[i]
		if _, err := m.node.Apply(ctx, r.id, node.Transition{Action: node.Action(act), Reason: req.Reason, Actor: req.Actor, Serial: pk.serial}); err != nil {
			release([]*jobRun{r})
			errs = append(errs, err)
			continue
		}
		if err := m.recordStart(ctx, r); err != nil {
			m.log.Warn("job parameters not recorded in the label", "drive", r.id, "err", err)
		}
		started = append(started, r)
	}
	if len(started) == 0 {
		return nil, errors.Join(errs...)
	}
	if len(errs) > 0 {
		m.log.Warn("some drives of a job request were not started", "err", errors.Join(errs...))
	}
	m.launch(req.Kind, started)
	return m.snapshot(started), nil
}

// recordStart writes the job's parameters as a note in the label history
// and, for an erase, a task saying it is under way.
func (m *jobManager) recordStart(ctx context.Context, r *jobRun) error {
	b, err := json.Marshal(r.params)
	if err != nil {
		return err
	}
	_, err = m.labels.update(ctx, r.ident, func(rec *label.Record) error {
		rec.AddEntry(label.Entry{Time: r.params.Started, Kind: label.KindNote, Actor: string(r.kind), Detail: paramsPrefix + string(b)})
		if r.kind == node.JobErase {
			rec.Task = label.Task{Kind: string(node.JobErase), Step: "erase", Started: r.params.Started, Updated: r.params.Started}
		}
		return nil
	})
	return err
}

// guard runs every guard rail on d for action a, reading the device only.
func (m *jobManager) guard(ctx context.Context, d node.Drive, a lifecycle.Action, serial string) error {
	td := m.targetDrive(d.Identity)
	if s := m.cfg.Skip.Match(td); s != "" {
		return fmt.Errorf("%w: %w (%s): no request overrides it", node.ErrSkipped, target.ErrSkipped, s)
	}
	virt, lab, name, err := target.Virtual(td.SysRoot, d.Identity.DevPath)
	if err != nil {
		return err
	}
	if virt && (!lab || !m.cfg.AllowLab) {
		return fmt.Errorf("%w: %s is a virtual device (lab devices only with -jobs-allow-lab)", node.ErrVirtual, name)
	}
	in, err := target.Check(ctx, td, m.cfg.Skip, target.Request{Action: a, Serial: serial})
	if err != nil {
		return targetErr(err)
	}
	if _, err := lifecycle.Next(in.Lifecycle.State, a); err != nil {
		return lifecycleErr(err)
	}
	return nil
}

func targetErr(err error) error {
	switch {
	case errors.Is(err, target.ErrSkipped):
		return fmt.Errorf("%w: %w", node.ErrSkipped, err)
	case errors.Is(err, target.ErrReadOnly):
		return fmt.Errorf("%w: %w", node.ErrReadOnly, err)
	case errors.Is(err, target.ErrVirtual):
		return fmt.Errorf("%w: %w", node.ErrVirtual, err)
	}
	return lifecycleErr(err)
}

// pciFunction matches a PCI address in a sysfs device path.
var pciFunction = regexp.MustCompile(`^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$`)

// controllerOf names the controller of a block device: the last PCI
// function on its sysfs device path (the HBA, AHCI or NVMe controller),
// "virtual" for virtual devices, else the device itself.
func controllerOf(sysRoot, name string) string {
	if sysRoot == "" {
		sysRoot = "/sys"
	}
	p, err := filepath.EvalSymlinks(filepath.Join(sysRoot, "class", "block", name))
	if err != nil {
		return name
	}
	ctl := ""
	for _, c := range strings.Split(p, "/") {
		if pciFunction.MatchString(c) {
			ctl = "pci:" + c
		}
	}
	switch {
	case ctl != "":
		return ctl
	case strings.Contains(p, "/devices/virtual/"):
		return "virtual"
	}
	return name
}

func (m *jobManager) targetDrive(id node.Identity) target.Drive {
	d := target.Drive{Path: id.DevPath, Serial: confirmSerial(id), WWN: id.WWN, Model: id.Model,
		Controller: controllerOf(m.cfg.SysRoot, id.Name), SysRoot: m.cfg.SysRoot}
	if id.ByID != "" {
		d.Aliases = append(d.Aliases, id.ByID)
	}
	if id.Slot != nil && id.Slot.Enclosure != "" {
		d.Aliases = append(d.Aliases, "enclosure:"+id.Slot.Enclosure+"/"+id.Slot.Slot)
	}
	if d.Model == "" && id.Transport == "loop" {
		d.Model = "loop" // loop devices of one host are siblings
	}
	return d
}

// regionSize is the region size of r: the one recorded when it started.
func (m *jobManager) regionSize(r *jobRun) int64 {
	if r.params.ZoneSize > 0 {
		return r.params.ZoneSize
	}
	return m.zoneSize(r.ident)
}

// zoneSize is the region (emulated zone) size of a new job on a conventional
// drive: -burnin-region-size, else zone.DefaultZoneSize halved until a
// small drive holds at least four regions (not below 4 MiB).
func (m *jobManager) zoneSize(id node.Identity) int64 {
	if m.cfg.ZoneSize > 0 {
		return m.cfg.ZoneSize
	}
	z := int64(zone.DefaultZoneSize)
	for z > 4<<20 && uint64(z) > id.SizeBytes/4 {
		z /= 2
	}
	return z
}

func (m *jobManager) snapshot(rs []*jobRun) []node.Job {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]node.Job, len(rs))
	for i, r := range rs {
		out[i] = r.job
	}
	return out
}

// launch runs one batch of jobs of one kind.
func (m *jobManager) launch(kind node.JobKind, rs []*jobRun) {
	for _, r := range rs {
		r.ctx, r.cancel = context.WithCancel(m.base)
		m.publish(r, node.EventJobStarted)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if kind == node.JobBurnIn {
			m.runBurnIn(rs)
		} else {
			m.runErase(rs)
		}
		for _, r := range rs {
			r.cancel()
		}
	}()
}

// wait waits for every job goroutine (after the daemon's context ended).
func (m *jobManager) wait() { m.wg.Wait() }

// publish records r's job in the drive table and publishes it as typ.
func (m *jobManager) publish(r *jobRun, typ string) {
	m.mu.Lock()
	j := r.job
	m.mu.Unlock()
	if err := m.node.SetJob(r.id, j, typ); err != nil {
		m.log.Debug("job of a removed drive", "drive", r.id, "err", err)
	}
}

// progress updates a running job; a job.progress event goes out when the
// step changes or ProgressEvery has passed.
func (m *jobManager) progress(r *jobRun, step string, done, total int64, eta time.Duration) {
	now := m.now().UTC()
	m.mu.Lock()
	pub := r.job.Step != step || now.Sub(r.pubAt) >= m.cfg.ProgressEvery
	r.job.State, r.job.Step, r.job.DoneBytes, r.job.TotalBytes = node.JobRunning, step, done, total
	r.job.ETASeconds, r.job.Updated = eta.Seconds(), now
	if pub {
		r.pubAt = now
	}
	m.mu.Unlock()
	typ := ""
	if pub {
		typ = node.EventJobProgress
	}
	m.publish(r, typ)
}

func (m *jobManager) runBurnIn(rs []*jobRun) {
	reps := make([]*burnin.Report, len(rs))
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, r := range rs {
		wg.Go(func() { reps[i], errs[i] = m.burnOne(r) })
	}
	wg.Wait()
	var done []*burnin.Report
	for i := range rs {
		if errs[i] == nil && reps[i] != nil {
			done = append(done, reps[i])
		}
	}
	burnin.Compare(done, m.cfg.Siblings)
	for i, r := range rs {
		m.finish(r, reps[i], errs[i])
	}
}

func (m *jobManager) burnOne(r *jobRun) (*burnin.Report, error) {
	td := m.targetDrive(r.ident)
	cfg := burnin.Config{
		Passes: r.params.Passes, Share: r.params.Share, Started: r.params.Started,
		Seed: burnin.SeedFor(td.Serial, r.params.Started), Resume: r.resume,
		SMART: m.cfg.SMART, SMARTDevice: r.ident.DevPath, SMARTInterval: m.cfg.SMARTInterval, MaxTempC: m.cfg.MaxTempC,
		FailSlowRegions: m.cfg.FailSlowRegions, Baseline: r.base,
		KeepBaseline: func(ctx context.Context, e label.Entry) error {
			return m.updateLabel(ctx, r, func(rec *label.Record) { rec.AddEntry(e) })
		},
		Checkpoint: func(ctx context.Context, t label.Task) error {
			return m.updateLabel(ctx, r, func(rec *label.Record) { rec.Task = t })
		},
		Progress: func(p burnin.Progress) { m.progress(r, p.Step, p.Done, p.Total, p.ETA) },
		Logger:   m.log.With("drive", r.id, "job", "burnin"),
	}
	if m.cfg.SelfTest != nil && r.params.SelfTest != "none" {
		cfg.SelfTest, cfg.SelfTestKind = m.cfg.SelfTest, r.params.SelfTest
		if cfg.SelfTestKind == "" {
			cfg.SelfTestKind = "short"
		}
	}
	var rep *burnin.Report
	err := m.batch.One(r.ctx, lifecycle.ActBurnIn, target.Spec{Drive: td, ZoneSize: m.regionSize(r), Serial: td.Serial},
		func(ctx context.Context, dev zone.Device) (err error) {
			m.progress(r, "start", 0, 0, 0)
			rep, err = burnin.Run(ctx, dev, td, cfg)
			return err
		})
	return rep, err
}

// updateLabel changes r's drive label with fn and shows the new record in
// the drive table.
func (m *jobManager) updateLabel(ctx context.Context, r *jobRun, fn func(rec *label.Record)) error {
	l, err := m.labels.update(ctx, r.ident, func(rec *label.Record) error { fn(rec); return nil })
	if err == nil {
		_ = m.node.SetLabel(r.id, l)
	}
	return err
}

func (m *jobManager) runErase(rs []*jobRun) {
	var wg sync.WaitGroup
	for _, r := range rs {
		wg.Go(func() {
			rep, err := m.eraseOne(r)
			m.finish(r, rep, err)
		})
	}
	wg.Wait()
}

// eraseInfo is what erase.Choose needs of a drive before it is opened.
func eraseInfo(id node.Identity) zone.Info {
	info := zone.Info{Path: id.DevPath, Kind: zone.KindEmulated}
	if id.Zoned == "host-managed" || id.Zoned == "host-aware" {
		info.Kind = zone.KindZoned
	}
	return info
}

func (m *jobManager) eraseOne(r *jobRun) (*erase.Report, error) {
	td := m.targetDrive(r.ident)
	var rep *erase.Report
	err := m.batch.One(r.ctx, lifecycle.ActErase, target.Spec{Drive: td, ZoneSize: m.regionSize(r), Serial: td.Serial},
		func(ctx context.Context, dev zone.Device) (err error) {
			meth, fallback, err := erase.Choose(dev.Info(), r.params.Method)
			if err != nil {
				return fmt.Errorf("%w: %w", node.ErrBadRequest, err)
			}
			m.progress(r, "start", 0, 0, 0)
			rep, err = erase.Run(ctx, dev, td, erase.Config{Method: meth, Fallback: fallback, Seed: burnin.SeedFor(td.Serial, r.params.Started),
				Progress: func(p erase.Progress) { m.progress(r, p.Step, p.Done, p.Total, p.ETA) },
				Logger:   m.log.With("drive", r.id, "job", "erase")})
			return err
		})
	return rep, err
}

// report is what finish needs of a burn-in or erase report.
type report interface {
	passed() bool
	reasons() []string
}

type burnReport struct{ *burnin.Report }

func (b burnReport) passed() bool { return b.Pass }
func (b burnReport) reasons() []string {
	var out []string
	for _, x := range b.Reasons {
		if x.Fail {
			out = append(out, x.Rule+": "+x.Message)
		}
	}
	return out
}

type eraseReport struct{ *erase.Report }

func (e eraseReport) passed() bool      { return e.Pass }
func (e eraseReport) reasons() []string { return e.Reasons }

// finish writes a job's outcome: the result entry and the verdict's
// transition (with its reasons) in the label, the report, the job.
// A job stopped by the daemon's shutdown leaves the label as it is: the
// next start resumes it from its checkpoint.
func (m *jobManager) finish(r *jobRun, rep any, runErr error) {
	cancelledBy := r.actor.Load()
	if runErr != nil && cancelledBy == nil && m.base.Err() != nil {
		m.log.Info("job interrupted by shutdown; it resumes at the next start", "drive", r.id, "kind", r.kind)
		m.mu.Lock()
		delete(m.active, r.id)
		m.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		rp      report
		raw     []byte
		state   node.JobState
		action  lifecycle.Action
		reasons []string
	)
	switch x := rep.(type) {
	case *burnin.Report:
		if x != nil {
			rp = burnReport{x}
		}
	case *erase.Report:
		if x != nil {
			rp = eraseReport{x}
		}
	}
	switch {
	case runErr != nil:
		state, reasons = node.JobError, []string{runErr.Error()}
		if cancelledBy != nil {
			state, reasons = node.JobCancelled, []string{"cancelled by " + *cancelledBy}
		}
		action = lifecycle.ActFail
		if r.kind == node.JobBurnIn {
			action = lifecycle.ActBurnInFail
		}
		kind := label.KindBurnIn
		if r.kind == node.JobErase {
			kind = label.KindErase
		}
		_, err := m.labels.update(ctx, r.ident, func(rec *label.Record) error {
			rec.Task = label.Task{}
			rec.AddEntry(label.Entry{Time: m.now(), Kind: kind, Result: label.ResultFail, Actor: string(r.kind), Detail: reasons[0]})
			return nil
		})
		if err != nil {
			m.log.Error("job result not written to the label", "drive", r.id, "err", err)
		}
	default:
		var err error
		switch x := rep.(type) {
		case *burnin.Report:
			_, err = m.labels.withArea(ctx, r.ident, func(a *label.Area) error { _, err := burnin.UpdateLabel(ctx, a, x); return err })
		case *erase.Report:
			_, err = m.labels.withArea(ctx, r.ident, func(a *label.Area) error { _, err := erase.UpdateLabel(ctx, a, x); return err })
		}
		if err != nil {
			m.log.Error("job result not written to the label", "drive", r.id, "err", err)
		}
		raw, _ = json.MarshalIndent(rep, "", "  ")
		reasons = rp.reasons()
		switch {
		case rp.passed() && r.kind == node.JobBurnIn:
			state, action = node.JobPassed, lifecycle.ActBurnInPass
		case rp.passed() && r.params.Retire:
			state, action = node.JobPassed, lifecycle.ActRetire
		case rp.passed():
			state, action = node.JobPassed, lifecycle.ActEraseDone
		case r.kind == node.JobBurnIn:
			state, action = node.JobFailed, lifecycle.ActBurnInFail
		default:
			state, action = node.JobFailed, lifecycle.ActFail
		}
	}
	why := fmt.Sprintf("%s %s", r.kind, state)
	if len(reasons) > 0 {
		why += ": " + strings.Join(reasons, "; ")
	}
	if len(why) > label.MaxDetailLen {
		why = why[:label.MaxDetailLen]
	}
	if _, err := m.node.Apply(ctx, r.id, node.Transition{Action: node.Action(action), Reason: why, Actor: string(r.kind), Serial: confirmSerial(r.ident)}); err != nil {
		m.log.Error("job verdict not applied", "drive", r.id, "action", action, "err", err)
	}
	if raw != nil {
		m.saveReport(r, raw)
	}
	now := m.now().UTC()
	m.mu.Lock()
	r.job.State, r.job.Reasons, r.job.Finished, r.job.Updated, r.job.ETASeconds = state, reasons, now, now, 0
	if runErr != nil && cancelledBy == nil {
		r.job.Error = runErr.Error()
	}
	delete(m.active, r.id)
	m.mu.Unlock()
	m.publish(r, node.EventJobFinished)
	m.log.Info("job finished", "drive", r.id, "kind", r.kind, "state", state, "reasons", len(reasons))
}

func reportKey(id string, k node.JobKind) string { return id + "/" + string(k) }

// saveReport keeps the JSON report in memory and, with a report directory,
// durably on disk (so it outlives the daemon).
func (m *jobManager) saveReport(r *jobRun, raw []byte) {
	m.mu.Lock()
	m.reports[reportKey(r.id, r.kind)] = raw
	m.mu.Unlock()
	if m.cfg.ReportDir == "" {
		return
	}
	if err := writeFileDurable(filepath.Join(m.cfg.ReportDir, reportFile(r.id, r.kind)), raw); err != nil {
		m.log.Warn("report not saved", "drive", r.id, "err", err)
	}
}

func reportFile(id string, k node.JobKind) string {
	return strings.NewReplacer("/", "_", "..", "_").Replace(id) + "." + string(k) + ".json"
}

// writeFileDurable writes b to path through a synced temporary file and a
// rename, then syncs the directory.
func writeFileDurable(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".report-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Report returns the JSON report of the drive's last job of kind k.
func (m *jobManager) Report(ref string, k node.JobKind) ([]byte, error) {
	if _, err := actionOf(k); err != nil {
		return nil, err
	}
	d, ok := m.node.Drive(ref)
	if !ok {
		return nil, fmt.Errorf("%w: %q", node.ErrNotFound, ref)
	}
	m.mu.Lock()
	raw, ok := m.reports[reportKey(d.ID, k)]
	m.mu.Unlock()
	if ok {
		return raw, nil
	}
	if m.cfg.ReportDir != "" {
		if raw, err := os.ReadFile(filepath.Join(m.cfg.ReportDir, reportFile(d.ID, k))); err == nil {
			return raw, nil
		}
	}
	return nil, fmt.Errorf("drive %s: %w (%s)", d.ID, node.ErrNoReport, k)
}

// Cancel cancels the drive's running job of kind k.
func (m *jobManager) Cancel(_ context.Context, ref string, k node.JobKind, actor string) (node.Job, error) {
	d, ok := m.node.Drive(ref)
	if !ok {
		return node.Job{}, fmt.Errorf("%w: %q", node.ErrNotFound, ref)
	}
	m.mu.Lock()
	r, ok := m.active[d.ID]
	if !ok || r.kind != k || r.cancel == nil {
		m.mu.Unlock()
		return node.Job{}, fmt.Errorf("drive %s: %w: no %s running", d.ID, node.ErrNoJob, k)
	}
	j := r.job
	m.mu.Unlock()
	r.actor.CompareAndSwap(nil, &actor)
	r.cancel()
	m.log.Info("job cancel requested", "drive", d.ID, "kind", k, "actor", actor)
	return j, nil
}

// paramsOf returns the parameters of the newest job of kind k recorded in
// the label history.
func paramsOf(rec label.Record, k node.JobKind) (jobParams, bool) {
	for i := len(rec.History) - 1; i >= 0; i-- {
		e := rec.History[i]
		if e.Kind != label.KindNote || e.Actor != string(k) {
			continue
		}
		if s, ok := strings.CutPrefix(e.Detail, paramsPrefix); ok {
			var p jobParams
			if json.Unmarshal([]byte(s), &p) == nil {
				return p, true
			}
		}
	}
	return jobParams{}, false
}

// resume restarts the jobs a previous daemon left: a drive in burnin with a
// burn-in checkpoint resumes at the region it was in (same parameters and
// seed, from the label); one without a checkpoint, and every drive in
// erasing (erase is idempotent), restarts its job.
func (m *jobManager) resume(ctx context.Context) {
	byKind := map[node.JobKind][]*jobRun{}
	for _, d := range m.node.Inventory().Drives {
		var k node.JobKind
		switch d.Label.State {
		case node.StateBurnin:
			k = node.JobBurnIn
		case node.StateErasing:
			k = node.JobErase
		default:
			continue
		}
		rec, ok, err := m.labels.record(ctx, d.Identity)
		if err != nil || !ok {
			m.log.Warn("cannot resume job: label unreadable", "drive", d.ID, "err", err)
			continue
		}
		p, _ := paramsOf(rec, k)
		r := &jobRun{id: d.ID, ident: d.Identity, kind: k, params: p}
		if k == node.JobBurnIn && rec.Task.Kind == burnin.TaskKind && !rec.Task.Started.IsZero() {
			r.resume = rec.Task
			r.params.Started = rec.Task.Started
			r.base, _ = burnin.LoadBaseline(rec, rec.Task.Started)
		} else {
			r.params.Started = m.now().UTC()
		}
		if r.params.Batch == "" {
			r.params.Batch = fmt.Sprintf("%s-resumed-%d", k, m.now().Unix())
		}
		now := m.now().UTC()
		r.job = node.Job{Kind: k, State: node.JobQueued, Drive: d.ID, Device: d.Identity.Name, Batch: r.params.Batch,
			Started: r.params.Started, Updated: now, Resumed: true}
		m.mu.Lock()
		if _, busy := m.active[d.ID]; busy {
			m.mu.Unlock()
			continue
		}
		m.active[d.ID] = r
		m.mu.Unlock()
		m.log.Info("resuming job from the label", "drive", d.ID, "kind", k, "step", rec.Task.Step, "done", rec.Task.Done)
		byKind[k] = append(byKind[k], r)
	}
	for k, rs := range byKind {
		m.launch(k, rs)
	}
}
