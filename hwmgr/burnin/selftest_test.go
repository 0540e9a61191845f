package burnin

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/osd/zone"
)

// replay is the Exec of a Smartctl that answers each run with the next
// captured output (the last one repeats) and records the arguments.
type replay struct {
	t     *testing.T
	files []string
	calls [][]string
}

func (r *replay) exec(_ context.Context, path string, args []string) ([]byte, error) {
	r.calls = append(r.calls, args)
	f := r.files[min(len(r.calls)-1, len(r.files)-1)]
	b, err := os.ReadFile("testdata/selftest/" + f)
	if err != nil {
		r.t.Fatal(err)
	}
	return b, nil
}

func memDrive(t *testing.T) zone.Device {
	t.Helper()
	m, err := zone.NewMem(zone.MemOptions{Kind: zone.KindEmulated, ZoneSize: 1 << 20, NumZones: 6, Path: "mem"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSelfTestStep runs burn-ins whose SMART self-test is answered by
// captured smartctl outputs through the Smartctl the daemon uses.
func TestSelfTestStep(t *testing.T) {
	for _, c := range []struct {
		name    string
		kind    string
		files   []string
		pass    bool
		written bool   // the passes ran
		reason  string // a self-test reason containing this
		fail    bool   // ... failing the drive
		minRuns int
	}{
		{"ata runs then passes", "short", []string{"ata-running.json", "ata-running.json", "ata-running.json", "ata-passed.json"}, true, true, "", false, 4},
		{"ata read failure", "short", []string{"ata-running.json", "ata-running.json", "ata-failed.json"}, false, false, "read failure", true, 3},
		{"never finishes", "long", []string{"ata-running.json"}, false, false, "still running", true, 3},
		{"drive asleep: not woken", "short", []string{"ata-standby.json"}, true, true, "standby", false, 1},
		{"nvme runs then passes", "short", []string{"nvme-running.json", "nvme-running.json", "nvme-passed.json"}, true, true, "", false, 3},
		{"no self-test on virtio", "short", []string{"virtio-unsupported.json"}, true, true, "no self-test status", false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &replay{t: t, files: c.files}
			cfg := Config{SelfTest: Smartctl{Exec: r.exec}, SelfTestKind: c.kind, SMARTDevice: "/dev/sdz",
				SelfTestPoll: time.Millisecond, SelfTestTimeout: 50 * time.Millisecond, ChunkSize: 64 << 10}
			rep, err := Run(context.Background(), memDrive(t), target.Drive{Path: "mem"}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass != c.pass || (rep.BytesWritten > 0) != c.written {
				t.Fatalf("pass=%v written=%d reasons %+v", rep.Pass, rep.BytesWritten, rep.Reasons)
			}
			if c.reason != "" && !slices.ContainsFunc(rep.Reasons, func(x Reason) bool {
				return x.Rule == RuleSelfTest && x.Fail == c.fail && strings.Contains(x.Message, c.reason)
			}) {
				t.Fatalf("no self-test reason %q (fail %v): %+v", c.reason, c.fail, rep.Reasons)
			}
			if c.pass && c.reason == "" && (rep.SelfTest == nil || rep.SelfTest.Failed) {
				t.Fatalf("passed self-test not in the report: %+v", rep.SelfTest)
			}
			if len(r.calls) < c.minRuns {
				t.Fatalf("%d smartctl runs, want ≥ %d", len(r.calls), c.minRuns)
			}
			if !slices.Contains(r.calls[0], "-t") || !slices.Contains(r.calls[0], c.kind) {
				t.Fatalf("first run %v does not start a %s self-test", r.calls[0], c.kind)
			}
			for _, a := range r.calls {
				if i := slices.Index(a, "-n"); i < 0 || a[i+1] != "standby" || a[len(a)-1] != "/dev/sdz" {
					t.Fatalf("smartctl run %v may wake a sleeping drive or names another device", a)
				}
			}
		})
	}
}

// TestSelfTestCancelled: a cancel while the self-test is polled ends the
// run with the context's error, before any pass.
func TestSelfTestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &replay{t: t, files: []string{"ata-running.json"}}
	exec := func(ctx context.Context, path string, args []string) ([]byte, error) {
		if len(r.calls) == 2 {
			cancel()
		}
		return r.exec(ctx, path, args)
	}
	rep, err := Run(ctx, memDrive(t), target.Drive{Path: "mem"}, Config{SelfTest: Smartctl{Exec: exec}, SelfTestKind: "short",
		SelfTestPoll: time.Millisecond, SelfTestTimeout: time.Hour})
	if !errors.Is(err, context.Canceled) || rep == nil || rep.BytesWritten != 0 {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// TestSelfTestKindChecked: an unknown kind is a configuration error.
func TestSelfTestKindChecked(t *testing.T) {
	if _, err := Run(context.Background(), memDrive(t), target.Drive{Path: "mem"}, Config{SelfTestKind: "forever"}); err == nil {
		t.Fatal("unknown self-test kind accepted")
	}
}
