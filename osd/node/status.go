package node

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stowage/stowage/osd/volume"
)

// counters are cumulative since Open (for metrics).
type counters struct {
	puts, gets, deletes atomic.Int64
	reconstructed       atomic.Int64 // reads that needed parity
	drivesFailed        atomic.Int64 // drives taken out as failed by the node
	compacted           atomic.Int64 // extents compacted

	mu            sync.Mutex
	damage        map[string]int64 // bad fragments found, by kind and source
	scrubFound    map[string]int64 // bad fragments found by scrubs, by kind
	repaired      int64            // fragments rewritten (repair queue + scrub)
	repairedKind  map[string]int64 // the same by kind of damage
	repairFailed  int64
	unrecoverable int64 // blocks found with fewer than k good fragments
	scrubBytes    int64
	scrubKeys     int64
	scrubPasses   int64
	rebuilt       int64 // fragments written by rebuilds
	moved         int64 // fragments copied by drains
}

func (c *counters) addDamage(kind volume.DamageKind, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	add(&c.damage, kind.String(), n)
}

// add adds n to (*m)[k], making the map if needed. The caller holds the
// counters' lock.
func add(m *map[string]int64, k string, n int64) {
	if n == 0 {
		return
	}
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[k] += n
}

// Unattributed is the RepairedByKind key of fragments a scrub rewrote
// when its report cannot tell their kinds apart (some repair of a
// non-lost fragment failed in the same pass).
const Unattributed = "unattributed"

// addScrub counts one volume's scrub report: findings by kind, and
// repairs by kind. A scrub report has per-kind findings but one repaired
// total; a lost fragment is never repaired (the rebuild is), so when
// every failed repair is a lost one, each other finding was repaired and
// the kinds are exact; else the repairs count as Unattributed.
func (c *counters) addScrub(r volume.ScrubReport) {
	c.mu.Lock()
	defer c.mu.Unlock()
	found := map[string]int{volume.Missing.String(): r.Missing, volume.Corrupt.String(): r.Corrupt,
		volume.IOError.String(): r.IOErrors, volume.Lost.String(): r.Lost, volume.Mismatch.String(): r.Mismatched}
	for k, n := range found {
		add(&c.scrubFound, k, int64(n))
		if r.RepairFailed == r.Lost && k != volume.Lost.String() {
			add(&c.repairedKind, k, int64(n))
		}
	}
	if r.RepairFailed != r.Lost {
		add(&c.repairedKind, Unattributed, int64(r.Repaired))
	}
	c.repaired += int64(r.Repaired)
	c.repairFailed += int64(r.RepairFailed)
	c.unrecoverable += int64(r.Unrecoverable)
	c.scrubBytes += r.Bytes
	c.scrubKeys += int64(r.Keys)
}

// Counters are cumulative totals since Open, for metrics.
type Counters struct {
	Puts, Gets, Deletes int64
	// ReadsReconstructed counts Gets that needed parity.
	ReadsReconstructed int64
	// DamageFound counts bad fragments found by reads and scrubs (each
	// time found), by kind: missing, corrupt, io-error, lost, mismatch.
	DamageFound map[string]int64
	// ScrubFindings counts bad fragments found by scrubs, by kind (each
	// pass anew): cumulative, unlike Scrub.LastPass.
	ScrubFindings map[string]int64
	// Repaired and RepairFailed count fragments rewritten (or not) by the
	// repair queue and the scrub; RepairedByKind splits Repaired by the
	// kind of damage (Unattributed: see addScrub).
	Repaired, RepairFailed int64
	RepairedByKind         map[string]int64
	// Unrecoverable counts blocks a scrub found with fewer than k good
	// fragments.
	Unrecoverable int64
	ScrubBytes    int64 // fragment bytes read by scrubs
	ScrubKeys     int64 // blocks checked by scrubs
	ScrubPasses   int64 // complete passes over every volume
	Rebuilt       int64 // fragments written by rebuilds
	Moved         int64 // fragments copied by drains
	// DrivesFailed counts drives the node took out by itself (I/O
	// errors, device gone, label set to failed); RemoveDrive is not
	// counted.
	DrivesFailed int64
	// Compacted counts extents compacted by Run (over every drive).
	Compacted int64
}

// Progress is how far a long job is.
type Progress struct {
	Done, Total int   // blocks
	Bytes       int64 // fragment bytes read or written
	Started     time.Time
	// ETA is the estimated time left (zero until the job has done some
	// work).
	ETA time.Duration
}

func eta(p volume.Progress, started, now time.Time) time.Duration {
	el := now.Sub(started)
	if p.Done == 0 || el <= 0 || p.Total <= p.Done {
		return 0
	}
	return time.Duration(float64(el) / float64(p.Done) * float64(p.Total-p.Done))
}

// ScrubStatus is the scrub loop's state.
type ScrubStatus struct {
	Running bool
	Pass    int64  // passes started since Open
	Volume  string // the volume being scrubbed now
	// VolumeIndex of Volumes (0-based) and this volume's progress; ETA is
	// for the whole pass (the volumes left estimated at this volume's
	// rate per block).
	VolumeIndex, Volumes int
	Progress             Progress
	PassETA              time.Duration
	BytesPerSecond       int64
	// LastPass is what the last complete pass found (summed over every
	// volume), LastFinished when it ended; NextPass when the next starts.
	LastPass     volume.ScrubReport
	LastFinished time.Time
	NextPass     time.Time
}

// JobStatus is a rebuild or drain in progress (or the last one).
type JobStatus struct {
	Kind     string // "rebuild" or "drain"
	Volume   string
	Slot     int
	From     string // drain: the drive being drained; rebuild: the lost one (may be empty)
	Target   string // the drive being filled
	Running  bool
	Progress Progress
	Err      string // why it stopped, if it failed
	Finished time.Time
}

// RepairStatus is the repair queue's state.
type RepairStatus struct {
	Queued   int   // waiting
	Done     int64 // blocks repaired from the queue
	Failed   int64
	Dropped  int64 // damage reports not queued (queue full; the scrub will find them)
	Capacity int
}

// VolumeStatus is one volume: its membership and health, space and jobs.
type VolumeStatus struct {
	volume.Status
	// State: "healthy", "degraded" (a slot lost), "rebuilding" or
	// "draining".
	State    string
	Writable bool
	Full     bool
	Blocks   int   // fragments on the fullest slot (≈ blocks)
	Capacity int64 // raw bytes of all slots' extents
	Free     int64 // raw free bytes (the smallest slot's × k+m)
	Usable   int64 // Free × k/(k+m): bytes of blocks that still fit
}

// DriveStatus is one drive.
type DriveStatus struct {
	Path, Serial, WWN, Model string
	Role                     string // Role* constants
	Detail                   string
	Foreign                  []string // signature kinds found (RoleForeign)
	Volume                   string   // member or target of
	Slot                     int      // -1 when not a member
}

// Space sums the volumes.
type Space struct {
	Capacity, Free, Usable int64
}

// Status is a snapshot of the node.
type Status struct {
	K, M    int
	Drives  []DriveStatus
	Volumes []VolumeStatus
	Space   Space
	Scrub   ScrubStatus
	Jobs    []JobStatus // rebuilds and drains: running ones and the last of each volume
	Repair  RepairStatus
	Counter Counters
}

// Status returns a snapshot of drives, volumes, space, scrub, rebuild and
// drain progress, the repair queue and the cumulative counters.
func (n *Node) Status() Status {
	st := Status{K: n.o.K, M: n.o.M}
	n.mu.Lock()
	drives := make([]drive, len(n.drives))
	for i, d := range n.drives {
		drives[i] = *d
	}
	vols := append([]*vol(nil), n.vols...)
	n.mu.Unlock()
	for _, d := range drives {
		ds := DriveStatus{Path: d.Path, Serial: d.Serial, WWN: d.WWN, Model: d.Model, Role: d.role, Detail: d.detail,
			Foreign: d.foreign, Slot: d.slot}
		if d.vol != nil {
			ds.Volume = d.vol.id.String()
		}
		st.Drives = append(st.Drives, ds)
	}
	jobs := n.jobs.snapshot()
	for _, v := range vols {
		vs := VolumeStatus{Status: v.v.Status(), Full: v.full.Load()}
		vs.State = "healthy"
		minFree := int64(-1)
		for _, s := range vs.Slots {
			switch s.State {
			case "lost":
				if vs.State == "healthy" {
					vs.State = "degraded"
				}
			case "rebuilding":
				vs.State = "rebuilding"
			}
			vs.Blocks = max(vs.Blocks, s.Fragments)
			vs.Capacity += s.Capacity
			if s.State != "lost" && (minFree < 0 || s.Free < minFree) {
				minFree = s.Free
			}
		}
		for _, j := range jobs {
			if j.Running && j.Kind == "drain" && j.Volume == vs.ID.String() && vs.State == "healthy" {
				vs.State = "draining"
			}
		}
		if minFree > 0 {
			vs.Free = minFree * int64(vs.K+vs.M)
			vs.Usable = minFree * int64(vs.K)
		}
		vs.Writable = !vs.Degraded && !vs.Full
		st.Space.Capacity += vs.Capacity
		st.Space.Free += vs.Free
		st.Space.Usable += vs.Usable
		st.Volumes = append(st.Volumes, vs)
	}
	st.Jobs = jobs
	st.Scrub = n.jobs.scrubStatus()
	st.Scrub.BytesPerSecond = max(n.o.ScrubBytesPerSecond, 0)
	st.Repair = n.repairs.status()
	c := &n.stats
	st.Counter = Counters{Puts: c.puts.Load(), Gets: c.gets.Load(), Deletes: c.deletes.Load(),
		ReadsReconstructed: c.reconstructed.Load(), DrivesFailed: c.drivesFailed.Load(),
		Compacted: c.compacted.Load()}
	c.mu.Lock()
	st.Counter.DamageFound = maps.Clone(c.damage)
	st.Counter.ScrubFindings = maps.Clone(c.scrubFound)
	st.Counter.RepairedByKind = maps.Clone(c.repairedKind)
	for _, m := range []*map[string]int64{&st.Counter.DamageFound, &st.Counter.ScrubFindings, &st.Counter.RepairedByKind} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	st.Counter.Repaired, st.Counter.RepairFailed, st.Counter.Unrecoverable = c.repaired, c.repairFailed, c.unrecoverable
	st.Counter.ScrubBytes, st.Counter.ScrubKeys, st.Counter.ScrubPasses = c.scrubBytes, c.scrubKeys, c.scrubPasses
	st.Counter.Rebuilt, st.Counter.Moved = c.rebuilt, c.moved
	c.mu.Unlock()
	return st
}

// jobs holds the scrub state and the rebuild/drain jobs.
type jobs struct {
	mu    sync.Mutex
	scrub ScrubStatus
	list  []*JobStatus
}

func (j *jobs) snapshot() []JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]JobStatus, len(j.list))
	for i, x := range j.list {
		out[i] = *x
	}
	return out
}

func (j *jobs) scrubStatus() ScrubStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.scrub
}

// start records a new job, replacing a finished one of the same volume
// and kind.
func (j *jobs) start(js JobStatus) *JobStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := &js
	for i, x := range j.list {
		if x.Volume == js.Volume && x.Kind == js.Kind && !x.Running {
			j.list[i] = p
			return p
		}
	}
	j.list = append(j.list, p)
	return p
}

func (j *jobs) update(p *JobStatus, fn func(*JobStatus)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(p)
}
