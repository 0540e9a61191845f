package kmsg

import (
	"context"
	"maps"
	"sync"
)

// Tally counts block-layer I/O errors per kernel disk name as records
// arrive. The zero value is ready; it is safe for concurrent use.
type Tally struct {
	// OnError, if set, is called for each error counted (outside the lock).
	OnError func(IOError)

	mu     sync.Mutex
	counts map[string]uint64
}

// Add counts the I/O errors among recs.
func (t *Tally) Add(recs ...Record) {
	var found []IOError
	t.mu.Lock()
	for _, r := range recs {
		e, ok := ParseIOError(r)
		if !ok {
			continue
		}
		if t.counts == nil {
			t.counts = map[string]uint64{}
		}
		t.counts[e.Device]++
		found = append(found, e)
	}
	t.mu.Unlock()
	if t.OnError != nil {
		for _, e := range found {
			t.OnError(e)
		}
	}
}

// Count returns the errors counted for one kernel disk name ("sdb").
func (t *Tally) Count(disk string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[disk]
}

// Counts returns a copy of all counts.
func (t *Tally) Counts() map[string]uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.counts)
}

// Follow counts what is in r now, then every record as it arrives, until
// ctx ends (it then returns ctx.Err()) or reading fails. hwmgr opens the
// reader at the start of the ring buffer, so errors logged since boot
// count.
func (t *Tally) Follow(ctx context.Context, r *Reader) error {
	recs, err := r.Available()
	if err != nil {
		return err
	}
	t.Add(recs...)
	for {
		rec, err := r.Next(ctx)
		if err != nil {
			return err
		}
		t.Add(rec)
	}
}
