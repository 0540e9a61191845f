package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// adminDouble records the admin calls; the daemon's real one is tested
// in osd/cmd/osd.
type adminDouble struct {
	mu      sync.Mutex
	calls   []string
	drained chan string
}

func (a *adminDouble) call(s string, path string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, s+" "+path)
	switch path {
	case "/dev/none":
		return fmt.Errorf("%w: %s", ErrNoSuchDrive, path)
	case "/dev/busy":
		return fmt.Errorf("%w: %s holds the only copy", ErrConflict, path)
	}
	return nil
}

func (a *adminDouble) AddDrive(_ context.Context, p string) error    { return a.call("add", p) }
func (a *adminDouble) RemoveDrive(_ context.Context, p string) error { return a.call("remove", p) }
func (a *adminDouble) Drain(_ context.Context, p string) error {
	err := a.call("drain", p)
	a.drained <- p
	return err
}
func (a *adminDouble) Scrub(context.Context) error { return a.call("scrub", "") }

func TestAdmin(t *testing.T) {
	const adminTok = "admin-0123456789"
	ad := &adminDouble{drained: make(chan string, 1)}
	f := newFixture(t, Config{Admin: ad, Tokens: NewTokens(nil, []string{adminTok})}, Timeouts{})
	h := map[string]string{"Authorization": "Bearer " + adminTok, "Content-Type": "application/json"}
	body := func(p string) []byte { return []byte(fmt.Sprintf(`{"path":%q}`, p)) }
	for _, act := range []string{"add", "remove"} {
		if r := f.do(t, "POST", "/v1/drives/"+act, h, body("/dev/sdx")); r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", act, r.status, r.body)
		}
		f.do(t, "POST", "/v1/drives/"+act, h, body("/dev/none")).problem(t, http.StatusNotFound, ProbNotFound)
		f.do(t, "POST", "/v1/drives/"+act, h, body("/dev/busy")).problem(t, http.StatusConflict, ProbConflict)
		for _, bad := range []string{``, `{}`, `{"path":1}`, `{"path":"/dev/x","serial":"y"}`, `[`} {
			f.do(t, "POST", "/v1/drives/"+act, h, []byte(bad)).problem(t, http.StatusBadRequest, ProbBadRequest)
		}
	}
	if r := f.do(t, "POST", "/v1/drives/drain", h, body("/dev/sdy")); r.status != http.StatusAccepted {
		t.Fatalf("drain: %d %s", r.status, r.body)
	}
	select {
	case p := <-ad.drained:
		if p != "/dev/sdy" {
			t.Fatalf("drained %s", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("drain never ran")
	}
	if r := f.do(t, "POST", "/v1/scrub", h, nil); r.status != http.StatusAccepted {
		t.Fatalf("scrub: %d %s", r.status, r.body)
	}
	f.do(t, "POST", "/v1/scrub", nil, nil).problem(t, http.StatusUnauthorized, ProbUnauthorized)
	f.do(t, "GET", "/v1/scrub", h, nil).problem(t, http.StatusMethodNotAllowed, ProbMethodNotAllowed)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	want := []string{"add /dev/sdx", "add /dev/none", "add /dev/busy", "remove /dev/sdx", "remove /dev/none", "remove /dev/busy", "drain /dev/sdy", "scrub "}
	if fmt.Sprint(ad.calls) != fmt.Sprint(want) {
		t.Fatalf("calls %q, want %q", ad.calls, want)
	}
}
