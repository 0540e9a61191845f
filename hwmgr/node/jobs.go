package node

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// JobKind names a long destructive job on a drive.
type JobKind string

// Job kinds.
const (
	JobBurnIn JobKind = "burnin"
	JobErase  JobKind = "erase"
)

// JobState is where a job is.
type JobState string

// Job states. Queued and running jobs are active; the others are final.
const (
	JobQueued    JobState = "queued"    // waiting for a controller slot
	JobRunning   JobState = "running"   // moving bytes
	JobPassed    JobState = "passed"    // verdict: the drive passed
	JobFailed    JobState = "failed"    // verdict: the drive failed (reasons say why)
	JobCancelled JobState = "cancelled" // cancelled by a request
	JobError     JobState = "error"     // no verdict could be reached (Error says why)
)

// Job is the progress, or the outcome, of a burn-in or erase of one drive.
type Job struct {
	Kind   JobKind  `json:"kind"`
	State  JobState `json:"state"`
	Drive  string   `json:"drive"`  // drive ID
	Device string   `json:"device"` // kernel name
	// Batch groups the drives started by one request (burn-in compares
	// the throughput of a batch's drives of the same model).
	Batch      string    `json:"batch"`
	Step       string    `json:"step,omitempty"` // write-N, verify-N, markers, erase, verify
	DoneBytes  int64     `json:"done_bytes"`
	TotalBytes int64     `json:"total_bytes"`
	ETASeconds float64   `json:"eta_seconds"`
	Started    time.Time `json:"started"`
	Updated    time.Time `json:"updated"`
	Finished   time.Time `json:"finished,omitzero"`
	// Resumed: restarted by the daemon from the checkpoint in the label.
	Resumed bool     `json:"resumed,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// Active reports whether the job is queued or running.
func (j Job) Active() bool { return j.State == JobQueued || j.State == JobRunning }

// Ratio is the share of the job's bytes done, in [0, 1].
func (j Job) Ratio() float64 {
	if j.TotalBytes <= 0 {
		return 0
	}
	return min(float64(j.DoneBytes)/float64(j.TotalBytes), 1)
}

// JobStates lists every job state in a stable order (for metrics).
var JobStates = []JobState{JobQueued, JobRunning, JobPassed, JobFailed, JobCancelled, JobError}

// Event types of jobs; their Data is the Job.
const (
	EventJobStarted  = "job.started"
	EventJobProgress = "job.progress"
	EventJobFinished = "job.finished"
)

// JobDrive names one drive of a job request and, for a drive that holds
// data or is burned in again, confirms it with its serial.
type JobDrive struct {
	Drive  string `json:"drive"`
	Serial string `json:"serial,omitempty"`
}

// JobRequest asks for a burn-in or an erase of one or more drives.
type JobRequest struct {
	Kind   JobKind
	Drives []JobDrive
	Reason string
	Actor  string
	// Burn-in: passes (default 1), share of the drive (default 1) and
	// the SMART self-test ("short", the default; "long"; "none").
	Passes   int
	Share    float64
	SelfTest string
	// Erase: method ("" or "auto": the strongest the drive supports) and
	// whether a passed erase retires the drive (else it becomes ready).
	Method string
	Retire bool
}

// Errors of jobs, besides those of Act; branch with errors.Is.
var (
	ErrJobRunning = errors.New("a burn-in or erase is already running on the drive")
	ErrNoJob      = errors.New("no such job on the drive")
	ErrNoReport   = errors.New("no report of that job on the drive")
	ErrSkipped    = errors.New("drive is on the skip list")
	ErrReadOnly   = errors.New("device is read-only")
	ErrVirtual    = errors.New("device is virtual, not a drive")
	ErrBadRequest = errors.New("invalid job request")
)

// SetJob records a drive's job (progress or outcome) in the drive table
// and, when typ is not "", publishes it as an event of that type.
func (n *Node) SetJob(ref string, j Job, typ string) error {
	n.mu.Lock()
	d := n.find(ref)
	if d == nil {
		n.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	j.Reasons = slices.Clone(j.Reasons)
	d.Job = &j
	id := d.ID
	n.mu.Unlock()
	if typ != "" {
		n.bus.Publish(typ, id, n.now(), j)
	}
	return nil
}

// SetLabel records a drive's label as a caller that just wrote it (a job's
// checkpoint) read it back, sparing RefreshLabel's extra read of the device.
func (n *Node) SetLabel(ref string, l Label) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.find(ref)
	if d == nil {
		return fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	d.Label, d.LabelError = l, ""
	return nil
}
