package discover

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"time"
)

// Diff is what changed between two scans, keyed by Drive.ID.
type Diff struct {
	Added   []Drive  `json:"added,omitempty"`
	Removed []Drive  `json:"removed,omitempty"`
	Changed []Change `json:"changed,omitempty"`
}

// Change is one drive present in both scans whose description differs.
type Change struct {
	Old    Drive    `json:"old"`
	New    Drive    `json:"new"`
	Fields []string `json:"fields"` // JSON names of the fields that differ
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// Compare returns the difference from old to cur. Drives are matched by
// ID; when one ID appears more than once in a scan (a dual-ported SAS
// drive seen through both paths), drives with that ID are matched by ID
// and kernel name together, in both scans.
func Compare(old, cur []Drive) Diff {
	repeated := map[string]bool{}
	for _, ds := range [][]Drive{old, cur} {
		n := map[string]int{}
		for i := range ds {
			id := ds[i].ID()
			if n[id]++; n[id] > 1 {
				repeated[id] = true
			}
		}
	}
	oldKeys, curKeys := keys(old, repeated), keys(cur, repeated)
	was := make(map[string]Drive, len(old))
	for i, d := range old {
		was[oldKeys[i]] = d
	}
	var diff Diff
	seen := make(map[string]bool, len(cur))
	for i, d := range cur {
		k := curKeys[i]
		seen[k] = true
		o, ok := was[k]
		if !ok {
			diff.Added = append(diff.Added, d)
			continue
		}
		if f := changedFields(o, d); len(f) > 0 {
			diff.Changed = append(diff.Changed, Change{Old: o, New: d, Fields: f})
		}
	}
	for i, d := range old {
		if !seen[oldKeys[i]] {
			diff.Removed = append(diff.Removed, d)
		}
	}
	return diff
}

// keys gives each drive its match key: ID, or ID@name when the ID repeats.
func keys(ds []Drive, repeated map[string]bool) []string {
	ids := make([]string, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID()
		if repeated[ids[i]] {
			ids[i] += "@" + ds[i].Name
		}
	}
	return ids
}

func changedFields(a, b Drive) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	var out []string
	for i := range t.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			name := t.Field(i).Tag.Get("json")
			for j := range len(name) {
				if name[j] == ',' {
					name = name[:j]
					break
				}
			}
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Update is what Watch reports: the full current inventory, what changed
// since the previous report, and why the scan ran.
type Update struct {
	Drives []Drive
	Diff   Diff
	// Reason: "initial", "uevent", "periodic" or "overflow" (events were
	// lost and a full rescan ran).
	Reason string
}

// WatchConfig tunes Watch. Zero values are the defaults.
type WatchConfig struct {
	// Interval between safety-net rescans; default 60s.
	Interval time.Duration
	// Settle is how long Watch waits after a uevent for more before it
	// rescans, so a burst (a drive and its partitions, an enclosure of
	// drives) costs one scan; default 250ms.
	Settle time.Duration
	// Events, when set, replaces the netlink socket (tests, or a caller
	// that already listens to uevents). When nil, Watch dials netlink; if
	// that fails it logs and relies on the periodic rescan; if the socket
	// fails later, Watch re-dials with back-off and rescans once back.
	Events <-chan Uevent

	dial      func() (ueventReader, error) // tests: replaces DialUevents
	redialMin time.Duration                // first re-dial back-off; default 1s
}

// Watch scans once, reports it (Reason "initial"), then rescans on block
// uevents and every Interval, and calls fn whenever the inventory changed.
// fn runs on Watch's goroutine. Watch returns ctx.Err() when ctx ends; a
// failing rescan is logged and retried on the next trigger.
func (s *Scanner) Watch(ctx context.Context, cfg WatchConfig, fn func(Update)) error {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 250 * time.Millisecond
	}
	// The reader goroutine ends with Watch, whatever the caller does with ctx.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Listen before the first scan so nothing between the two is missed.
	events, overflow := cfg.Events, make(chan struct{}, 1)
	if events == nil {
		dial := cfg.dial
		if dial == nil {
			dial = func() (ueventReader, error) { return DialUevents() }
		}
		conn, err := dial()
		if err != nil {
			s.log.Warn("discover: no uevents; periodic rescans only", "err", err, "interval", cfg.Interval)
		} else {
			ch := make(chan Uevent, 64)
			events = ch
			go s.readUevents(ctx, conn, dial, cfg.redialMin, ch, overflow)
		}
	}
	cur, err := s.Scan(ctx)
	if err != nil {
		return err
	}
	fn(Update{Drives: cur, Diff: Diff{Added: cur}, Reason: "initial"})

	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	settle := time.NewTimer(cfg.Settle)
	settle.Stop()
	pending := ""
	rescan := func(reason string) {
		next, err := s.Scan(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("discover: rescan failed", "reason", reason, "err", err)
			}
			return
		}
		if d := Compare(cur, next); !d.Empty() {
			cur = next
			fn(Update{Drives: next, Diff: d, Reason: reason})
		}
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			rescan("periodic")
		case <-overflow:
			rescan("overflow")
		case u, ok := <-events:
			if !ok {
				events = nil // reader gone; periodic rescans remain
				continue
			}
			if u.Subsystem != "block" || u.DevType == "partition" {
				continue
			}
			switch u.Action {
			case "add", "remove", "change", "move", "online", "offline":
			default:
				continue
			}
			s.log.Debug("discover: uevent", "action", u.Action, "device", u.DevName, "seqnum", u.Seqnum)
			if pending == "" {
				pending = "uevent"
				settle.Reset(cfg.Settle)
			}
		case <-settle.C:
			pending = ""
			rescan("uevent")
		}
	}
}

// ueventReader is what readUevents needs of a uevent socket.
type ueventReader interface {
	Read(ctx context.Context) (Uevent, error)
	Close() error
}

// readUevents forwards block uevents until ctx ends. When the socket
// fails it re-dials with back-off (redialMin doubling to a minute; the
// periodic rescan covers the gap) and, once reconnected, asks for a
// rescan, since events were lost meanwhile.
func (s *Scanner) readUevents(ctx context.Context, conn ueventReader, dial func() (ueventReader, error),
	redialMin time.Duration, out chan<- Uevent, overflow chan<- struct{}) {
	defer close(out)
	rescan := func() {
		select {
		case overflow <- struct{}{}:
		default:
		}
	}
	if redialMin <= 0 {
		redialMin = time.Second
	}
	for {
		err := forward(ctx, conn, out, rescan)
		conn.Close()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("discover: uevent socket failed; re-dialling, periodic rescans meanwhile", "err", err)
		for wait := redialMin; ; wait = min(2*wait, time.Minute) {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			if conn, err = dial(); err == nil {
				break
			}
			s.log.Warn("discover: uevent re-dial failed", "err", err, "retry_in", min(2*wait, time.Minute))
		}
		rescan()
	}
}

// forward copies events from conn to out until a read fails (overflows
// only ask for a rescan).
func forward(ctx context.Context, conn ueventReader, out chan<- Uevent, rescan func()) error {
	for {
		u, err := conn.Read(ctx)
		switch {
		case err == nil:
			select {
			case out <- u:
			case <-ctx.Done():
				return ctx.Err()
			}
		case errors.Is(err, ErrUeventOverflow):
			rescan()
		default:
			return err
		}
	}
}
