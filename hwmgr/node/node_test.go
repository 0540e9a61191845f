package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Test doubles for the sources: the real ones need hardware; these sit
// behind the same interfaces.

type drivesDouble struct {
	mu  sync.Mutex
	ids []Identity
}

func (f *drivesDouble) Scan(context.Context) ([]Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Identity(nil), f.ids...), nil
}

func (f *drivesDouble) set(ids ...Identity) {
	f.mu.Lock()
	f.ids = ids
	f.mu.Unlock()
}

type smartDouble struct {
	mu   sync.Mutex
	temp map[string]float64
}

func (f *smartDouble) Read(_ context.Context, id Identity) (SMART, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.temp[id.Name]
	if !ok {
		return SMART{}, fmt.Errorf("smartctl %s: no answer", id.DevPath)
	}
	return SMART{TemperatureCelsius: &t}, nil
}

// tempPolicy fails drives hotter than 70 °C and warns above 55.
type tempPolicy struct{}

func (tempPolicy) Judge(d Drive, _ *SMART) Health {
	if d.SMART == nil || d.SMART.TemperatureCelsius == nil {
		return Health{Verdict: VerdictUnknown}
	}
	t := *d.SMART.TemperatureCelsius
	switch {
	case t > 70:
		return Health{Verdict: VerdictFail, Reasons: []Reason{{Rule: "temperature", Severity: VerdictFail, Detail: "too hot"}}}
	case t > 55:
		return Health{Verdict: VerdictWarn, Reasons: []Reason{{Rule: "temperature", Severity: VerdictWarn, Detail: "warm"}}}
	}
	return Health{Verdict: VerdictOK}
}

// labelsDouble keeps labels in memory with a cut-down state machine.
type labelsDouble struct {
	mu     sync.Mutex
	labels map[string]Label
}

func (f *labelsDouble) Read(_ context.Context, id Identity) (Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.labels[id.Name]
	if !ok {
		return Label{State: StateNew}, nil
	}
	return l, nil
}

var doubleTransitions = map[Action]map[State]State{
	ActionAdopt:        {StateForeign: StateNew},
	ActionDrain:        {StateInService: StateDraining},
	ActionRetire:       {StateDrained: StateRetired, StateFailed: StateRetired, StateReady: StateRetired},
	ActionMarkRepaired: {StateFailed: StateNew},
	ActionFail:         {StateNew: StateFailed, StateReady: StateFailed, StateInService: StateFailed},
}

func (f *labelsDouble) Apply(_ context.Context, id Identity, t Transition) (Label, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.labels[id.Name]
	if !ok {
		l = Label{State: StateNew}
	}
	to, ok := doubleTransitions[t.Action][l.State]
	if !ok {
		return Label{}, fmt.Errorf("%w: %s from %s", ErrInvalidTransition, t.Action, l.State)
	}
	l.History = append(l.History, HistoryEntry{From: l.State, To: to, Reason: t.Reason, Actor: t.Actor})
	l.State = to
	if to == StateNew {
		l.Foreign = nil
	}
	if f.labels == nil {
		f.labels = map[string]Label{}
	}
	f.labels[id.Name] = l
	return l, nil
}

func testNode(t *testing.T) (*Node, *drivesDouble, *smartDouble, *labelsDouble) {
	t.Helper()
	dr := &drivesDouble{}
	sm := &smartDouble{temp: map[string]float64{}}
	lb := &labelsDouble{labels: map[string]Label{}}
	n := New(Config{Drives: dr, SMART: sm, Health: tempPolicy{}, Labels: lb, EventRing: 8})
	return n, dr, sm, lb
}

func drain(ch <-chan Event) []Event {
	var out []Event
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

func types(evs []Event) []string {
	var s []string
	for _, e := range evs {
		s = append(s, e.Type+":"+e.Drive)
	}
	return s
}

func TestScanAddsAndRemovesDrives(t *testing.T) {
	ctx := context.Background()
	n, dr, _, _ := testNode(t)
	_, ch, _, cancel := n.Events().Subscribe(0)
	defer cancel()
	if n.Ready() {
		t.Fatal("ready before the first scan")
	}
	dr.set(Identity{Name: "sda", Serial: "S1"}, Identity{Name: "sdb", WWN: "0x5000c500a1b2c3d4", Serial: "S2"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if !n.Ready() {
		t.Fatal("not ready after a scan")
	}
	inv := n.Inventory()
	if len(inv.Drives) != 2 || inv.Drives[0].ID != "S1" || inv.Drives[1].ID != "0x5000c500a1b2c3d4" {
		t.Fatalf("inventory: %+v", inv.Drives)
	}
	if got := types(drain(ch)); fmt.Sprint(got) != "[drive.added:S1 drive.added:0x5000c500a1b2c3d4]" && fmt.Sprint(got) != "[drive.added:0x5000c500a1b2c3d4 drive.added:S1]" {
		t.Fatalf("events: %v", got)
	}
	for _, ref := range []string{"S2", "sdb", "0x5000c500a1b2c3d4"} {
		if d, ok := n.Drive(ref); !ok || d.ID != "0x5000c500a1b2c3d4" {
			t.Errorf("Drive(%q) = %v, %v", ref, d.ID, ok)
		}
	}
	dr.set(Identity{Name: "sdb", WWN: "0x5000c500a1b2c3d4", Serial: "S2"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if got := types(drain(ch)); fmt.Sprint(got) != "[drive.removed:S1]" {
		t.Fatalf("events after pull: %v", got)
	}
	if _, ok := n.Drive("S1"); ok {
		t.Fatal("pulled drive still listed")
	}
}

func TestHealthFailMovesDriveToFailed(t *testing.T) {
	ctx := context.Background()
	n, dr, sm, _ := testNode(t)
	dr.set(Identity{Name: "sda", Serial: "S1"}, Identity{Name: "sdb", Serial: "S2"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	_, ch, _, cancel := n.Events().Subscribe(n.Events().LastID())
	defer cancel()
	sm.temp["sda"] = 40
	sm.temp["sdb"] = 80
	n.PollSMART(ctx)
	a, _ := n.Drive("S1")
	b, _ := n.Drive("S2")
	if a.Health.Verdict != VerdictOK || a.Label.State != StateNew {
		t.Errorf("cool drive: %v %v", a.Health.Verdict, a.Label.State)
	}
	if b.Health.Verdict != VerdictFail || b.Label.State != StateFailed {
		t.Errorf("hot drive: %v %v", b.Health.Verdict, b.Label.State)
	}
	if len(b.Label.History) != 1 || b.Label.History[0].Actor != "health-policy" {
		t.Errorf("history: %+v", b.Label.History)
	}
	var sawFail, sawHealth bool
	for _, ev := range drain(ch) {
		if ev.Type == EventHealthChanged && ev.Drive == "S2" {
			var hd HealthData
			if err := json.Unmarshal(ev.Data, &hd); err != nil {
				t.Fatal(err)
			}
			sawHealth = hd.From == VerdictUnknown && hd.To == VerdictFail && len(hd.Reasons) == 1
		}
		if ev.Type == EventLifecycle && ev.Drive == "S2" {
			var ld LifecycleData
			if err := json.Unmarshal(ev.Data, &ld); err != nil {
				t.Fatal(err)
			}
			sawFail = ld.To == StateFailed && ld.From == StateNew
		}
	}
	if !sawFail {
		t.Error("no lifecycle event for the failed drive")
	}
	if !sawHealth {
		t.Error("no health.changed event for the failed drive")
	}
	// A SMART error is counted, not fatal; the last good record stays.
	delete(sm.temp, "sda")
	n.PollSMART(ctx)
	a, _ = n.Drive("S1")
	if a.PollErrors != 1 || a.Polls != 2 || a.SMART == nil || a.SMARTError == "" {
		t.Errorf("after a failed poll: polls=%d errors=%d smart=%v err=%q", a.Polls, a.PollErrors, a.SMART, a.SMARTError)
	}
}

func TestActGuardRails(t *testing.T) {
	ctx := context.Background()
	n, dr, _, lb := testNode(t)
	lb.labels["sda"] = Label{State: StateForeign, Foreign: []string{"gpt"}}
	lb.labels["sdb"] = Label{State: StateInService, HoldsData: true, Owner: "osd"}
	lb.labels["sdc"] = Label{State: StateFailed}
	dr.set(Identity{Name: "sda", Serial: "FOREIGN1"}, Identity{Name: "sdb", Serial: "DATA1"}, Identity{Name: "sdc", Serial: "BROKEN1"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		drive  string
		action Action
		serial string
		want   error
		state  State
	}{
		{"FOREIGN1", ActionAdopt, "", ErrSerialRequired, StateForeign},
		{"FOREIGN1", ActionAdopt, "WRONG", ErrSerialMismatch, StateForeign},
		{"DATA1", ActionRetire, "DATA1", ErrInService, StateInService},
		{"DATA1", ActionDrain, "", ErrSerialRequired, StateInService},
		{"DATA1", ActionDrain, "DATA1", nil, StateDraining},
		{"BROKEN1", ActionDrain, "", ErrInvalidTransition, StateFailed},
		{"BROKEN1", ActionMarkRepaired, "", nil, StateNew},
		{"FOREIGN1", ActionAdopt, "FOREIGN1", nil, StateNew},
		{"nope", ActionAdopt, "x", ErrNotFound, ""},
		{"BROKEN1", Action("explode"), "", ErrUnknownAction, StateNew},
	}
	for _, c := range cases {
		_, err := n.Act(ctx, c.drive, c.action, ActionRequest{Serial: c.serial, Actor: "test"})
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s %s serial=%q: err %v, want %v", c.drive, c.action, c.serial, err, c.want)
		}
		if c.state != "" {
			if d, _ := n.Drive(c.drive); d.Label.State != c.state {
				t.Errorf("%s after %s: state %s, want %s", c.drive, c.action, d.Label.State, c.state)
			}
		}
	}
}

func TestLocateWritesSysfs(t *testing.T) {
	ctx := context.Background()
	n, dr, _, _ := testNode(t)
	dir := t.TempDir()
	slot := filepath.Join(dir, "class", "enclosure", "0:0:1:0", "Slot 03")
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	locate := filepath.Join(slot, "locate")
	if err := os.WriteFile(locate, []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dr.set(Identity{Name: "sda", Serial: "S1", Slot: &Slot{Enclosure: "0:0:1:0", Slot: "Slot 03", LocatePath: locate}},
		Identity{Name: "sdb", Serial: "S2"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := n.Act(ctx, "S1", ActionLocateOn, ActionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(locate); string(b) != "1" || d.Locate == nil || !*d.Locate {
		t.Fatalf("locate on: file %q, drive %v", b, d.Locate)
	}
	if _, err := n.Act(ctx, "S1", ActionLocateOff, ActionRequest{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(locate); string(b) != "0" {
		t.Fatalf("locate off: file %q", b)
	}
	if _, err := n.Act(ctx, "S2", ActionLocateOn, ActionRequest{}); !errors.Is(err, ErrNoEnclosure) {
		t.Fatalf("drive without slot: %v", err)
	}
}

func TestBusResumeAndGap(t *testing.T) {
	b := NewBus(4, 2)
	now := testTime()
	for i := 0; i < 6; i++ {
		b.Publish("x", fmt.Sprint(i), now, nil)
	}
	// IDs 1..6 issued; ring holds 3..6.
	backlog, _, gap, cancel := b.Subscribe(4)
	cancel()
	if gap || len(backlog) != 2 || backlog[0].ID != 5 || backlog[1].ID != 6 {
		t.Fatalf("resume after 4: gap=%v %v", gap, backlog)
	}
	backlog, _, gap, cancel = b.Subscribe(1)
	cancel()
	if !gap || len(backlog) != 4 || backlog[0].ID != 3 {
		t.Fatalf("resume after 1: gap=%v %v", gap, backlog)
	}
	backlog, _, gap, cancel = b.Subscribe(2)
	cancel()
	if gap || len(backlog) != 4 {
		t.Fatalf("resume after 2 (3 is the oldest kept): gap=%v %v", gap, backlog)
	}
	backlog, _, gap, cancel = b.Subscribe(99)
	cancel()
	if !gap || len(backlog) != 4 {
		t.Fatalf("resume from a future ID: gap=%v %v", gap, backlog)
	}
	// A slow subscriber is dropped, not blocking the publisher.
	_, ch, _, cancel := b.Subscribe(b.LastID())
	defer cancel()
	for i := 0; i < 3; i++ {
		b.Publish("y", "", now, nil)
	}
	got := drain(ch)
	if len(got) != 2 {
		t.Fatalf("slow subscriber got %d events before being dropped", len(got))
	}
	if _, ok := <-ch; ok {
		t.Fatal("slow subscriber's channel still open")
	}
}

func testTime() time.Time { return time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC) }

func TestSeriallessDriveConfirmedByID(t *testing.T) {
	ctx := context.Background()
	n, dr, _, lb := testNode(t)
	lb.labels["loop7"] = Label{State: StateForeign, Foreign: []string{"gpt"}}
	dr.set(Identity{Name: "loop7"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Act(ctx, "loop7", ActionAdopt, ActionRequest{Serial: "something"}); !errors.Is(err, ErrSerialMismatch) {
		t.Fatalf("wrong confirmation: %v", err)
	}
	if d, err := n.Act(ctx, "loop7", ActionAdopt, ActionRequest{Serial: "loop7"}); err != nil || d.Label.State != StateNew {
		t.Fatalf("adopt by ID: %v %v", d.Label.State, err)
	}
}

func TestApplyForInternalCallers(t *testing.T) {
	ctx := context.Background()
	n, dr, _, _ := testNode(t)
	dr.set(Identity{Name: "sda", Serial: "S1"})
	if err := n.Scan(ctx); err != nil {
		t.Fatal(err)
	}
	// "fail" is not an API action, but internal callers may apply it.
	if _, err := n.Act(ctx, "S1", ActionFail, ActionRequest{}); !errors.Is(err, ErrUnknownAction) {
		t.Fatalf("Act(fail): %v", err)
	}
	d, err := n.Apply(ctx, "S1", Transition{Action: ActionFail, Reason: "burn-in: read errors", Actor: "burnin"})
	if err != nil || d.Label.State != StateFailed {
		t.Fatalf("Apply(fail): %v %v", d.Label.State, err)
	}
	if _, err := n.Apply(ctx, "S1", Transition{Action: ActionDrain}); !errors.Is(err, ErrInvalidTransition) {
		t.Fatalf("Apply(drain) on a failed drive: %v", err)
	}
	if _, err := n.Apply(ctx, "nope", Transition{Action: ActionFail}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Apply on a missing drive: %v", err)
	}
}

func TestSubscribeNew(t *testing.T) {
	b := NewBus(8, 8)
	b.Publish("old", "", testTime(), nil)
	ch, cancel := b.SubscribeNew()
	defer cancel()
	b.Publish("new", "", testTime(), nil)
	got := drain(ch)
	if len(got) != 1 || got[0].Type != "new" || got[0].ID != 2 {
		t.Fatalf("got %+v", got)
	}
}
