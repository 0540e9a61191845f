package server

// Status is the body of GET /v1/status: the node's drives, volumes, space,
// scrub and rebuild progress and damage counters. The daemon builds it
// from its store.
type Status struct {
	Code          string         `json:"code"` // e.g. "4+2"
	Blocks        int64          `json:"blocks"`
	Bytes         int64          `json:"bytes"`                // user bytes stored
	CapacityBytes int64          `json:"capacity_bytes"`       // raw bytes of all member drives' extents
	FreeBytes     int64          `json:"free_bytes,omitempty"` // raw bytes free for new extents; absent when unknown
	Drives        []DriveStatus  `json:"drives"`
	Volumes       []VolumeStatus `json:"volumes"`
	Scrub         ScrubStatus    `json:"scrub"`
	Damage        DamageCounters `json:"damage"`
	// DrivesFailed counts drives the node took out as failed by itself
	// (I/O errors, device gone, label set to failed) since start.
	DrivesFailed int64 `json:"drives_failed"`
}

// DriveStatus describes one drive.
type DriveStatus struct {
	Path       string `json:"path"`
	Serial     string `json:"serial,omitempty"`
	WWN        string `json:"wwn,omitempty"`
	Model      string `json:"model,omitempty"`
	State      string `json:"state"`            // "in-service" (a member) or the node's role: "spare", "target", "lost", "failed", "drained", "foreign", ...
	Volume     string `json:"volume,omitempty"` // the volume it is a member of
	Slot       int    `json:"slot"`             // -1 when not a member
	ReadErrors int64  `json:"read_errors"`
}

// Volume states.
const (
	VolumeHealthy    = "healthy"
	VolumeDegraded   = "degraded"
	VolumeRebuilding = "rebuilding"
)

// VolumeStatus describes one volume.
type VolumeStatus struct {
	ID         string       `json:"id"`
	K          int          `json:"k"`
	M          int          `json:"m"`
	State      string       `json:"state"` // VolumeHealthy, VolumeDegraded or VolumeRebuilding
	Writable   bool         `json:"writable"`
	Generation uint64       `json:"generation"`
	Slots      []SlotStatus `json:"slots"`
	Rebuild    *Progress    `json:"rebuild,omitempty"` // while rebuilding
}

// SlotStatus is one slot of a volume.
type SlotStatus struct {
	Slot   int    `json:"slot"`
	State  string `json:"state"` // "ok", "rebuilding" or "lost"
	Device string `json:"device,omitempty"`
	Serial string `json:"serial,omitempty"`
}

// Progress is how far a long task has come.
type Progress struct {
	Done       int64   `json:"done"`  // units of Total
	Total      int64   `json:"total"` // 0 when unknown
	Ratio      float64 `json:"ratio"` // Done/Total, 0..1
	ETASeconds float64 `json:"eta_seconds,omitempty"`
}

// ScrubStatus is the scrubber's state.
type ScrubStatus struct {
	Running         bool      `json:"running"`
	BytesPerSecond  int64     `json:"bytes_per_second"` // the rate limit
	Progress        Progress  `json:"progress"`         // of the current (or last) pass, in keys
	Passes          int64     `json:"passes"`           // completed passes since start
	BytesRead       int64     `json:"bytes_read"`       // fragment bytes read by scrubs since start
	LastPassSeconds float64   `json:"last_pass_seconds,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	Findings        DamageMap `json:"findings"` // damage found by scrubs since start, by kind (cumulative)
	// LastPassFindings is what the last complete pass found, by kind.
	LastPassFindings DamageMap `json:"last_pass_findings,omitempty"`
}

// DamageMap counts damaged fragments by kind ("missing", "corrupt",
// "io-error", "lost", "mismatch").
type DamageMap map[string]int64

// DamageCounters are cumulative since the daemon started. Repaired is
// by the kind of damage repaired; "unattributed" counts scrub repairs
// whose kinds could not be told apart (a repair of the same pass failed).
type DamageCounters struct {
	Found    DamageMap `json:"found"`
	Repaired DamageMap `json:"repaired"`
}
