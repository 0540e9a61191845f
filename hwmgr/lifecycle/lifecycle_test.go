package lifecycle

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestDataDriven runs the scripts in testdata/ (rewrite expectations with
// go test -run TestDataDriven -rewrite). Commands:
//
//	matrix                        every state × every action: the result or "-"
//	next from=S action=A          one step of the table
//	transition state=S action=A [serial=X] [confirm=Y] [payload] [foreign=a,b]
//	                              guard rails + table, as the API calls them
func TestDataDriven(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "matrix":
				var b strings.Builder
				fmt.Fprintf(&b, "%-12s", "from\\action")
				for _, a := range Actions() {
					fmt.Fprintf(&b, " %s", a)
				}
				b.WriteString("\n")
				for _, s := range States() {
					fmt.Fprintf(&b, "%-12s", s)
					for _, a := range Actions() {
						to, err := Next(s, a)
						if err != nil {
							if !errors.Is(err, ErrNotAllowed) {
								t.Fatalf("%s %s: error %v does not wrap ErrNotAllowed", s, a, err)
							}
							to = "-"
						}
						fmt.Fprintf(&b, " %s=%s", a, to)
					}
					b.WriteString("\n")
				}
				return b.String()
			case "next":
				var from, action string
				d.ScanArgs(t, "from", &from)
				d.ScanArgs(t, "action", &action)
				to, err := Next(State(from), Action(action))
				if err != nil {
					return "error: " + err.Error()
				}
				return string(to)
			case "transition":
				var dr Drive
				var state, action, confirm string
				d.ScanArgs(t, "state", &state)
				d.ScanArgs(t, "action", &action)
				dr.State = State(state)
				dr.Serial = "SER1"
				d.MaybeScanArgs(t, "serial", &dr.Serial)
				d.MaybeScanArgs(t, "confirm", &confirm)
				dr.OwnerPayload = d.HasArg("payload")
				if d.HasArg("foreign") {
					var f string
					d.ScanArgs(t, "foreign", &f)
					dr.Foreign = strings.Split(f, ",")
				}
				ev, err := Transition(dr, Request{Action: Action(action), Serial: confirm, Actor: "test"}, time.Unix(1, 0))
				if err != nil {
					var re *RefusedError
					if !errors.As(err, &re) {
						t.Fatalf("error %v is not a *RefusedError", err)
					}
					return fmt.Sprintf("refused %s: %v", errName(err), err)
				}
				return fmt.Sprintf("ok %s -> %s", ev.From, ev.To)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func errName(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{{ErrInService, "in-service"}, {ErrSerialRequired, "serial-required"}, {ErrSerialMismatch, "serial-mismatch"},
		{ErrNoSerial, "no-serial"}, {ErrNotAllowed, "not-allowed"}} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "unknown"
}

// TestMatrixAgainstDesign states the DESIGN.md edges independently of the
// table in state.go and checks every (state, action) pair: the listed ones
// lead where listed, every other one is refused.
func TestMatrixAgainstDesign(t *testing.T) {
	want := map[[2]string]State{
		{"new", "burnin"}:           BurnIn,
		{"ready", "burnin"}:         BurnIn,
		{"burnin", "burnin-pass"}:   Ready,
		{"burnin", "burnin-fail"}:   Failed,
		{"ready", "claim"}:          InService,
		{"in-service", "drain"}:     Draining,
		{"draining", "drain-done"}:  Drained,
		{"drained", "erase"}:        Erasing,
		{"ready", "erase"}:          Erasing,
		{"new", "erase"}:            Erasing,
		{"erasing", "erase-done"}:   Ready,
		{"erasing", "retire"}:       Retired,
		{"failed", "mark-repaired"}: New,
		{"foreign", "adopt"}:        New,
	}
	for _, s := range States() {
		if s != Failed {
			want[[2]string{string(s), "fail"}] = Failed
		}
	}
	allowed := 0
	for _, s := range States() {
		for _, a := range Actions() {
			to, err := Next(s, a)
			exp, ok := want[[2]string{string(s), string(a)}]
			switch {
			case ok && (err != nil || to != exp):
				t.Errorf("%s --%s--> got (%q, %v), want %s", s, a, to, err, exp)
			case !ok && !errors.Is(err, ErrNotAllowed):
				t.Errorf("%s --%s--> got (%q, %v), want refused", s, a, to, err)
			case ok:
				allowed++
			}
		}
	}
	if allowed != len(want) {
		t.Errorf("%d transitions allowed, want %d", allowed, len(want))
	}
}

func TestParse(t *testing.T) {
	for _, s := range States() {
		if got, err := ParseState(string(s)); err != nil || got != s {
			t.Errorf("ParseState(%q) = %q, %v", s, got, err)
		}
	}
	for _, a := range Actions() {
		if got, err := ParseAction(string(a)); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %q, %v", a, got, err)
		}
	}
	if _, err := ParseState("online"); err == nil {
		t.Error("ParseState(online) succeeded")
	}
	if _, err := ParseAction("format"); err == nil {
		t.Error("ParseAction(format) succeeded")
	}
}

func TestInitial(t *testing.T) {
	for _, c := range []struct {
		label   State
		foreign bool
		want    State
	}{
		{"", false, New},
		{"", true, Foreign},
		{Ready, false, Ready},
		{InService, true, Foreign},
		{InService, false, InService},
	} {
		if got := Initial(c.label, c.foreign); got != c.want {
			t.Errorf("Initial(%q, %v) = %q, want %q", c.label, c.foreign, got, c.want)
		}
	}
}

func TestBus(t *testing.T) {
	var b Bus
	fast := b.Subscribe(4)
	slow := b.Subscribe(1)
	for i := range 3 {
		b.Publish(Event{Serial: fmt.Sprint(i), From: Ready, To: InService})
	}
	for i := range 3 {
		if e := <-fast.C; e.Serial != fmt.Sprint(i) {
			t.Fatalf("fast subscriber got %q, want %d", e.Serial, i)
		}
	}
	if e := <-slow.C; e.Serial != "0" {
		t.Fatalf("slow subscriber got %q first, want 0", e.Serial)
	}
	if got := slow.Dropped(); got != 2 {
		t.Errorf("slow subscriber dropped %d, want 2", got)
	}
	if got := fast.Dropped(); got != 0 {
		t.Errorf("fast subscriber dropped %d, want 0", got)
	}
	slow.Close()
	slow.Close()
	if _, ok := <-slow.C; ok {
		t.Error("closed subscription still delivers")
	}
	b.Publish(Event{Serial: "after"})
	if e := <-fast.C; e.Serial != "after" {
		t.Errorf("fast subscriber got %q after close of the other", e.Serial)
	}
}

func TestGuardTrimsSerials(t *testing.T) {
	d := Drive{Serial: "  WD-123  ", State: Drained, OwnerPayload: true}
	if err := Guard(d, ActErase, " WD-123"); err != nil {
		t.Errorf("padded serials: %v", err)
	}
	if err := Guard(d, ActErase, "wd-123"); !errors.Is(err, ErrSerialMismatch) {
		t.Errorf("serials compare case-sensitively: got %v", err)
	}
	if err := Guard(d, ActDrainDone, ""); err != nil {
		t.Errorf("non-destructive action guarded: %v", err)
	}
}
