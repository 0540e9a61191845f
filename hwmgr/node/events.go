package node

import (
	"encoding/json"
	"sync"
	"time"
)

// Event types published on the node's event stream.
const (
	EventDriveAdded    = "drive.added"
	EventDriveRemoved  = "drive.removed"
	EventLifecycle     = "lifecycle.transition"
	EventHealthChanged = "health.changed"
	EventLocate        = "locate.changed"
)

// Event is one entry of the event stream. IDs increase by one per event
// and never repeat within a process.
type Event struct {
	ID    uint64          `json:"id"`
	Time  time.Time       `json:"time"`
	Type  string          `json:"type"`
	Drive string          `json:"drive,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// LifecycleData is the Data of a lifecycle.transition event.
type LifecycleData struct {
	Action Action `json:"action"`
	From   State  `json:"from"`
	To     State  `json:"to"`
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// HealthData is the Data of a health.changed event.
type HealthData struct {
	From    Verdict  `json:"from"`
	To      Verdict  `json:"to"`
	Reasons []Reason `json:"reasons,omitempty"`
}

// DriveData is the Data of drive.added and drive.removed events.
type DriveData struct {
	Name   string `json:"name"`
	Serial string `json:"serial,omitempty"`
	Model  string `json:"model,omitempty"`
	State  State  `json:"state,omitempty"`
}

// LocateData is the Data of a locate.changed event.
type LocateData struct {
	On bool `json:"on"`
}

// Bus is a bounded ring of recent events with live subscribers. A
// subscriber that falls behind by more than its buffer is dropped (its
// channel closed); it resumes from the ring with the last ID it saw.
type Bus struct {
	mu     sync.Mutex
	ring   []Event // circular, len == cap once full
	start  int     // index of the oldest event in ring
	next   uint64  // ID of the next event
	subs   map[*subscriber]struct{}
	buffer int
}

type subscriber struct {
	ch chan Event
}

// NewBus returns a bus keeping the last size events (at least 1) and
// giving each subscriber a buffer of buffer events (at least 1).
func NewBus(size, buffer int) *Bus {
	if size < 1 {
		size = 1
	}
	if buffer < 1 {
		buffer = 1
	}
	return &Bus{ring: make([]Event, 0, size), next: 1, subs: map[*subscriber]struct{}{}, buffer: buffer}
}

// Publish appends an event with the next ID and hands it to subscribers.
func (b *Bus) Publish(typ, drive string, at time.Time, data any) Event {
	raw, err := json.Marshal(data)
	if err != nil || data == nil {
		raw = nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ev := Event{ID: b.next, Time: at.UTC(), Type: typ, Drive: drive, Data: raw}
	b.next++
	if len(b.ring) < cap(b.ring) {
		b.ring = append(b.ring, ev)
	} else {
		b.ring[b.start] = ev
		b.start = (b.start + 1) % len(b.ring)
	}
	for s := range b.subs {
		select {
		case s.ch <- ev:
		default:
			close(s.ch)
			delete(b.subs, s)
		}
	}
	return ev
}

// LastID returns the ID of the newest event (0 if none).
func (b *Bus) LastID() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.next - 1
}

// SubscribeNew returns a channel of the events published from now on, and
// a cancel function.
func (b *Bus) SubscribeNew() (ch <-chan Event, cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ch, _, cancel = b.subscribeLocked(b.next - 1)
	return ch, cancel
}

// Subscribe returns the events after the given ID still in the ring, a
// channel of the events that follow, and a cancel function. gap is true
// when events after the given ID have already left the ring, or when the
// ID is newer than any this bus issued (the daemon restarted); then the
// whole ring is replayed.
func (b *Bus) Subscribe(after uint64) (backlog []Event, ch <-chan Event, gap bool, cancel func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.subscribeLocked(after)
}

func (b *Bus) subscribeLocked(after uint64) (backlog []Event, ch <-chan Event, gap bool, cancel func()) {
	if after >= b.next {
		// The client saw IDs from an earlier process: replay everything.
		gap, after = true, 0
	}
	n := len(b.ring)
	if n > 0 {
		oldest := b.ring[b.start].ID
		if after+1 < oldest {
			gap = true
		}
		for i := 0; i < n; i++ {
			ev := b.ring[(b.start+i)%n]
			if ev.ID > after {
				backlog = append(backlog, ev)
			}
		}
	}
	s := &subscriber{ch: make(chan Event, b.buffer)}
	b.subs[s] = struct{}{}
	cancel = func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[s]; ok {
			delete(b.subs, s)
			close(s.ch)
		}
	}
	return backlog, s.ch, gap, cancel
}
