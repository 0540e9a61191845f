package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/api"
	"github.com/stowage/stowage/hwmgr/burnin"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// jobDaemon runs the daemon with jobs allowed on the test's loop devices.
func jobDaemon(t *testing.T, dir string, mod func(*options)) *testDaemon {
	t.Helper()
	return startDaemon(t, dir, func(o *options) {
		o.Smartctl, o.NoUevents = "", true
		o.JobsAllowLab, o.ReportDir, o.BurninRegionSize = true, filepath.Join(dir, "reports"), 4<<20
		// Unthrottled loop devices on a busy 2-core host differ by more
		// than the default 80 % rule allows; TestDaemonSiblingSlow tests
		// the rule against a throttled drive.
		o.SiblingPct = 25
		if mod != nil {
			mod(o)
		}
	})
}

// writeLabel writes a label record on a conventional device, as the OSD
// (another process) would: its own label.Area, opened for this write.
func writeLabel(t *testing.T, dev string, fn func(r *label.Record)) label.Record {
	t.Helper()
	zd, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: label.RegionSize})
	if err != nil {
		t.Fatal(err)
	}
	defer zd.Close()
	a, err := label.OpenConventional(context.Background(), zd, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := a.Update(context.Background(), func(r *label.Record) error { fn(r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func readLabel(t *testing.T, dev string) label.Record {
	t.Helper()
	zd, err := zone.OpenEmulated(dev, zone.EmulatedOptions{ZoneSize: label.RegionSize})
	if err != nil {
		t.Fatal(err)
	}
	defer zd.Close()
	a, err := label.OpenConventional(context.Background(), zd, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := a.Current()
	return rec
}

func (td *testDaemon) drive(t *testing.T, ref string) node.Drive {
	t.Helper()
	d, ok := td.d.node.Drive(ref)
	if !ok {
		t.Fatalf("no drive %s", ref)
	}
	return d
}

// waitJob polls GET /v1/drives/{id}/{kind} (checked against the OpenAPI
// document) until the job is final.
func (td *testDaemon) waitJob(t *testing.T, _ any, id string, kind node.JobKind, within time.Duration) node.Job {
	t.Helper()
	r := openAPI(t)
	deadline := time.Now().Add(within)
	for {
		status, body := td.request(t, r, "GET", "/v1/drives/"+id+"/"+string(kind), tRead, "")
		var j node.Job
		if status == 200 && json.Unmarshal(body, &j) == nil && !j.Active() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s of %s not finished within %v: %d %s", kind, id, within, status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestDaemonBurnInAndErase: three loop devices burned in at once through
// the API; progress with an ETA in GET, the event stream and /metrics;
// verdict ready with the result in the label history; the JSON report;
// then an erase to ready and a burn-in cancelled to failed.
func TestDaemonBurnInAndErase(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var devs, ids []string
	for i := range 3 {
		d, _ := loopDevice(t, dir, fmt.Sprintf("d%d.img", i), 40<<20)
		devs, ids = append(devs, d), append(ids, filepath.Base(d))
	}
	td := jobDaemon(t, dir, nil)
	router := openAPI(t)
	evs := td.events(t)

	if status, _ := td.request(t, router, "POST", "/v1/burnin", tRead, `{"drives":[{"drive":"`+ids[0]+`"}]}`); status != 403 {
		t.Fatalf("burn-in with a read token: %d", status)
	}
	body := `{"drives":[{"drive":"` + ids[0] + `"},{"drive":"` + ids[1] + `"},{"drive":"` + ids[2] + `"}],"passes":1,"reason":"intake"}`
	status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, body)
	if status != 202 {
		t.Fatalf("start burn-in: %d %s", status, resp)
	}
	var started api.JobList
	if err := json.Unmarshal(resp, &started); err != nil || len(started.Jobs) != 3 {
		t.Fatalf("started %s (%v)", resp, err)
	}
	if status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[{"drive":"`+ids[0]+`"}]}`); status != 409 {
		t.Fatalf("second burn-in of a busy drive: %d %s", status, resp)
	}
	ev := waitEvent(t, evs, "job.progress", func(ev node.Event) bool {
		var j node.Job
		_ = json.Unmarshal(ev.Data, &j)
		if j.ETASeconds < 0 {
			t.Errorf("negative ETA in %s", ev.Data)
		}
		return ev.Type == node.EventJobProgress && j.TotalBytes > 0 && j.DoneBytes > 0
	})
	t.Logf("progress event: %s", ev.Data)
	_, metrics := td.request(t, nil, "GET", "/metrics", tRead, "")
	if !bytes.Contains(metrics, []byte(`stowage_drive_job_progress_ratio{device="`+ids[0]+`",drive="`+ids[0]+`",kind="burnin"}`)) ||
		!bytes.Contains(metrics, []byte(`stowage_drive_job_eta_seconds{device="`)) {
		t.Errorf("metrics lack the job progress of %s", ids[0])
	}
	for _, id := range ids {
		j := td.waitJob(t, router, id, node.JobBurnIn, 2*time.Minute)
		if j.State != node.JobPassed || j.TotalBytes == 0 || j.DoneBytes != j.TotalBytes || j.ETASeconds != 0 {
			t.Fatalf("%s: %+v", id, j)
		}
		d := td.drive(t, id)
		if d.Label.State != node.StateReady || len(d.Label.Results) == 0 || d.Label.Results[len(d.Label.Results)-1].Result != label.ResultPass || d.Label.Task != nil {
			t.Fatalf("%s after burn-in: %+v", id, d.Label)
		}
		h := d.Label.History[len(d.Label.History)-1]
		if h.To != node.StateReady || !strings.Contains(h.Reason, "burnin passed") {
			t.Errorf("%s: last transition %+v", id, h)
		}
		status, rep := td.request(t, router, "GET", "/v1/drives/"+id+"/burnin/report", tRead, "")
		var r struct {
			Pass         bool  `json:"pass"`
			BytesWritten int64 `json:"bytes_written"`
			BytesRead    int64 `json:"bytes_read"`
		}
		if status != 200 || json.Unmarshal(rep, &r) != nil || !r.Pass || r.BytesWritten != 38<<20 || r.BytesRead != 38<<20 {
			t.Fatalf("%s report: %d %s", id, status, rep)
		}
	}
	waitEvent(t, evs, "job.finished", func(ev node.Event) bool { return ev.Type == node.EventJobFinished })
	_, metrics = td.request(t, nil, "GET", "/metrics", tRead, "")
	for _, id := range ids {
		if line := `stowage_drive_job_eta_seconds{device="` + id + `",drive="` + id + `",kind="burnin"} 0` + "\n"; !bytes.Contains(metrics, []byte(line)) {
			t.Errorf("metrics after the burn-in lack %q", line)
		}
	}
	status, resp = td.request(t, router, "GET", "/v1/jobs", tRead, "")
	if status != 200 || bytes.Count(resp, []byte(`"state": "passed"`)) != 3 {
		t.Errorf("jobs: %d %s", status, resp)
	}

	// Erase a ready drive: markers, overwrite, verification; ready again.
	status, resp = td.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+ids[0]+`"}],"method":"overwrite-zeros"}`)
	if status != 202 {
		t.Fatalf("erase: %d %s", status, resp)
	}
	if j := td.waitJob(t, router, ids[0], node.JobErase, time.Minute); j.State != node.JobPassed {
		t.Fatalf("erase: %+v", j)
	}
	if d := td.drive(t, ids[0]); d.Label.State != node.StateReady || d.Label.Results[len(d.Label.Results)-1].Kind != label.KindErase {
		t.Fatalf("after erase: %+v", d.Label)
	}
	status, resp = td.request(t, router, "GET", "/v1/drives/"+ids[0]+"/erase/report", tRead, "")
	if status != 200 || !bytes.Contains(resp, []byte(`"markers_found": 0`)) || !bytes.Contains(resp, []byte(`"pass": true`)) {
		t.Fatalf("erase report: %d %s", status, resp)
	}

	// A ready drive burned in again needs its serial (a loop device: its
	// ID); then the burn-in is cancelled and the drive fails.
	if status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[{"drive":"`+ids[1]+`"}]}`); status != 422 {
		t.Fatalf("re-burn of a ready drive without its serial: %d %s", status, resp)
	}
	loopdev.Throttle(t, 2<<20, devs[1])
	status, resp = td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[{"drive":"`+ids[1]+`","serial":"`+ids[1]+`"}]}`)
	if status != 202 {
		t.Fatalf("re-burn with the serial: %d %s", status, resp)
	}
	waitEvent(t, evs, "job.progress", func(ev node.Event) bool { return ev.Type == node.EventJobProgress && ev.Drive == ids[1] })
	if status, resp := td.request(t, router, "DELETE", "/v1/drives/"+ids[1]+"/burnin", tAdmin, ""); status != 202 {
		t.Fatalf("cancel: %d %s", status, resp)
	}
	if j := td.waitJob(t, router, ids[1], node.JobBurnIn, time.Minute); j.State != node.JobCancelled {
		t.Fatalf("cancelled job: %+v", j)
	}
	if d := td.drive(t, ids[1]); d.Label.State != node.StateFailed || !strings.Contains(d.Label.History[len(d.Label.History)-1].Reason, "cancelled by api:admin") {
		t.Fatalf("after cancel: %+v", d.Label)
	}
	if status, _ := td.request(t, router, "DELETE", "/v1/drives/"+ids[1]+"/burnin", tAdmin, ""); status != 404 {
		t.Fatalf("cancel of a finished job: %d", status)
	}
}

// TestDaemonSiblingSlow: four loop devices of one "model" burned in as one
// batch, one throttled with cgroup blkio to 4 MiB/s: that one fails
// sibling-slow (the reason in the label history and the report), the
// others become ready.
func TestDaemonSiblingSlow(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	var ids []string
	var slow string
	for i := range 4 {
		d, _ := loopDevice(t, dir, fmt.Sprintf("s%d.img", i), 12<<20)
		ids = append(ids, filepath.Base(d))
		if i == 2 {
			slow = d
		}
	}
	loopdev.Throttle(t, 4<<20, slow)
	td := jobDaemon(t, dir, nil)
	router := openAPI(t)
	var drives []string
	for _, id := range ids {
		drives = append(drives, `{"drive":"`+id+`"}`)
	}
	if status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[`+strings.Join(drives, ",")+`]}`); status != 202 {
		t.Fatalf("start: %d %s", status, resp)
	}
	for _, id := range ids {
		j := td.waitJob(t, router, id, node.JobBurnIn, 2*time.Minute)
		d := td.drive(t, id)
		last := d.Label.History[len(d.Label.History)-1]
		if "/dev/"+id == slow {
			if j.State != node.JobFailed || d.Label.State != node.StateFailed || !strings.Contains(last.Reason, "sibling-slow") {
				t.Fatalf("throttled %s: job %+v, label %s, last transition %+v", id, j, d.Label.State, last)
			}
			_, rep := td.request(t, router, "GET", "/v1/drives/"+id+"/burnin/report", tRead, "")
			if !bytes.Contains(rep, []byte(`"rule": "sibling-slow"`)) {
				t.Fatalf("report of the throttled drive: %s", rep)
			}
			continue
		}
		if j.State != node.JobPassed || d.Label.State != node.StateReady {
			t.Fatalf("unthrottled %s: job %+v, label %s", id, j, d.Label.State)
		}
	}
}

// TestDaemonJobGuardRails: every guard rail refuses through the HTTP API,
// and the device's bytes are unchanged (SHA-256 before and after).
func TestDaemonJobGuardRails(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	inService, _ := loopDevice(t, dir, "inservice.img", 16<<20)
	payload, _ := loopDevice(t, dir, "payload.img", 16<<20)
	foreignDev, _ := loopDevice(t, dir, "foreign.img", 16<<20)
	skipped, _ := loopDevice(t, dir, "skipped.img", 16<<20)
	roFile := filepath.Join(dir, "ro.img")
	if out, err := exec.Command("truncate", "-s", "16M", roFile).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	ro := loopdev.Attach(t, roFile, "-r")
	writeLabel(t, inService, func(r *label.Record) {
		r.State, r.Owner, r.Payload = lifecycle.InService, "osd", []byte("osd-superblock")
	})
	writeLabel(t, payload, func(r *label.Record) {
		r.State, r.Owner, r.Payload = lifecycle.Drained, "osd", []byte("osd-superblock")
	})
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", foreignDev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v %s", err, out)
	}
	td := jobDaemon(t, dir, func(o *options) { o.SkipPaths = []string{skipped} })
	router := openAPI(t)
	name := filepath.Base
	for _, c := range []struct {
		what, dev, kind, body, token string
		status                       int
		slug                         string
	}{
		{"in-service, even with its serial", inService, "erase", `,"serial":"` + name(inService) + `"`, tAdmin, 409, api.ProbInService},
		{"in-service burn-in", inService, "burnin", `,"serial":"` + name(inService) + `"`, tAdmin, 409, api.ProbInService},
		{"owner payload without serial", payload, "erase", ``, tAdmin, 422, api.ProbSerialRequired},
		{"owner payload, wrong serial", payload, "erase", `,"serial":"WRONG"`, tAdmin, 409, api.ProbSerialMismatch},
		{"owner payload, read token", payload, "erase", `,"serial":"` + name(payload) + `"`, tRead, 403, api.ProbForbidden},
		{"foreign ext4 without serial", foreignDev, "erase", ``, tAdmin, 422, api.ProbSerialRequired},
		{"foreign ext4 burn-in without serial", foreignDev, "burnin", ``, tAdmin, 422, api.ProbSerialRequired},
		{"skip list, even with its serial", skipped, "erase", `,"serial":"` + name(skipped) + `"`, tAdmin, 409, api.ProbSkipped},
		{"skip list burn-in", skipped, "burnin", ``, tAdmin, 409, api.ProbSkipped},
		{"read-only device", ro, "burnin", ``, tAdmin, 409, api.ProbReadOnly},
	} {
		before := loopdev.Hash(t, c.dev)
		status, resp := td.request(t, router, "POST", "/v1/"+c.kind, c.token, `{"drives":[{"drive":"`+name(c.dev)+`"`+c.body+`}]}`)
		var p api.Problem
		_ = json.Unmarshal(resp, &p)
		if status != c.status || p.Type != api.ProblemBase+c.slug {
			t.Errorf("%s: %d %s, want %d %s", c.what, status, resp, c.status, c.slug)
		}
		time.Sleep(50 * time.Millisecond)
		if loopdev.Hash(t, c.dev) != before {
			t.Errorf("%s: the device's bytes changed", c.what)
		}
		if d := td.drive(t, name(c.dev)); d.Job != nil {
			t.Errorf("%s: a job was recorded: %+v", c.what, d.Job)
		}
	}
	// A batch with one refused drive starts none of them.
	okDev, _ := loopDevice(t, dir, "ok.img", 16<<20)
	td.d.node.Trigger()
	if err := td.d.node.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := loopdev.Hash(t, okDev)
	status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[{"drive":"`+name(okDev)+`"},{"drive":"`+name(skipped)+`"}]}`)
	if status != 409 {
		t.Fatalf("batch with a skipped drive: %d %s", status, resp)
	}
	if loopdev.Hash(t, okDev) != before || td.drive(t, name(okDev)).Label.State != node.StateNew {
		t.Fatal("a drive of a refused batch was touched")
	}
	status, resp = td.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+name(okDev)+`"}],"method":"bogus"}`)
	if status != 422 || loopdev.Hash(t, okDev) != before || td.drive(t, name(okDev)).Label.State != node.StateNew {
		t.Fatalf("erase with an unknown method: %d %s", status, resp)
	}

	// Virtual devices: without -jobs-allow-lab the loop devices are
	// refused as what they are.
	td.stop(t)
	td2 := startDaemon(t, dir, func(o *options) { o.Smartctl, o.NoUevents = "", true })
	before = loopdev.Hash(t, okDev)
	status, resp = td2.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+name(okDev)+`"}]}`)
	var p api.Problem
	if json.Unmarshal(resp, &p); status != 409 || p.Type != api.ProblemBase+api.ProbVirtual {
		t.Fatalf("virtual device: %d %s", status, resp)
	}
	if loopdev.Hash(t, okDev) != before {
		t.Fatal("the virtual device's bytes changed")
	}
}

// TestDaemonBurnInResumesAfterRestart: the daemon is stopped mid-burn-in;
// the label keeps the checkpoint and the SMART baseline; a new daemon
// resumes at the region it was in (fewer bytes moved than a full run) and
// reaches the verdict. smartctl cannot read a loop device, so a script
// prints a real capture; between the two daemons the drive's reallocated
// sectors grow by 20 (the script prints the capture so edited), and the
// resumed burn-in, judging from the baseline kept in the label, fails on it.
func TestDaemonBurnInResumesAfterRestart(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, _ := loopDevice(t, dir, "r.img", 26<<20)
	id := filepath.Base(dev)
	loopdev.Throttle(t, 8<<20, dev)
	raw, err := os.ReadFile("../../smart/testdata/smartctl-json/sat-Western_Digital_Ultrastar_DC_HC550-WDC__WUH721818ALN604-sda.json")
	if err != nil {
		t.Fatal(err)
	}
	grown := bytes.Replace(raw, []byte(`"id": 5,
				"name": "Reallocated_Sector_Ct",
				"raw": {
					"string": "0",
					"value": 0`), []byte(`"id": 5,
				"name": "Reallocated_Sector_Ct",
				"raw": {
					"string": "20",
					"value": 20`), 1)
	now, later := filepath.Join(dir, "smart-now.json"), filepath.Join(dir, "smart-later.json")
	if bytes.Equal(grown, raw) || os.WriteFile(now, raw, 0o644) != nil || os.WriteFile(later, grown, 0o644) != nil {
		t.Fatal("SMART captures not written")
	}
	state, script := filepath.Join(dir, "smart-state"), filepath.Join(dir, "smartctl")
	if os.WriteFile(state, []byte(now), 0o644) != nil || os.WriteFile(script, []byte("#!/bin/sh\ncat \"$(cat "+state+")\"\n"), 0o755) != nil {
		t.Fatal("smartctl script not written")
	}
	smartOnly := func(o *options) { o.Smartctl, o.Devices = script, []string{id} }
	td := jobDaemon(t, dir, smartOnly)
	router := openAPI(t)
	if status, resp := td.request(t, router, "POST", "/v1/burnin", tAdmin, `{"drives":[{"drive":"`+id+`"}],"passes":1,"self_test":"none"}`); status != 202 {
		t.Fatalf("start: %d %s", status, resp)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d := td.drive(t, id)
		if d.Label.Task != nil && d.Label.Task.Step == "write-1" && d.Label.Task.Done >= 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint past 8 MiB within a minute: %+v", d.Label.Task)
		}
		time.Sleep(50 * time.Millisecond)
	}
	td.stop(t)
	rec := readLabel(t, dev)
	if rec.State != lifecycle.BurnIn || rec.Task.Kind != "burnin" || rec.Task.Done == 0 {
		t.Fatalf("label after the stop: state %s task %+v", rec.State, rec.Task)
	}
	if _, ok := burnin.LoadBaseline(rec, rec.Task.Started); !ok {
		t.Fatalf("no SMART baseline in the label: %+v", rec.History)
	}
	t.Logf("checkpoint after the stop: %+v", rec.Task)
	if err := os.WriteFile(state, []byte(later), 0o644); err != nil {
		t.Fatal(err)
	}

	td2 := jobDaemon(t, dir, smartOnly)
	j := td2.waitJob(t, router, id, node.JobBurnIn, 2*time.Minute)
	if j.State != node.JobFailed || !j.Resumed || !slices.ContainsFunc(j.Reasons, func(r string) bool {
		return strings.HasPrefix(r, "smart: ") && strings.Contains(r, "grew by 20 (0 -> 20)")
	}) {
		t.Fatalf("resumed job: %+v; want it failed on the growth since the kept baseline", j)
	}
	status, resp := td2.request(t, router, "GET", "/v1/drives/"+id+"/burnin/report", tRead, "")
	var r struct {
		Pass         bool  `json:"pass"`
		BytesWritten int64 `json:"bytes_written"`
		BytesRead    int64 `json:"bytes_read"`
	}
	if status != 200 || json.Unmarshal(resp, &r) != nil || r.Pass {
		t.Fatalf("report: %d %s", status, resp)
	}
	span := int64(rec.Task.Total)
	if r.BytesWritten >= span || r.BytesWritten < span-int64(rec.Task.Done) || r.BytesRead != span {
		t.Fatalf("resumed run wrote %d and read %d bytes; want the rest of the write pass after %d (of %d) and a full verify",
			r.BytesWritten, r.BytesRead, rec.Task.Done, span)
	}
	if d := td2.drive(t, id); d.Label.State != node.StateFailed {
		t.Fatalf("state after the resumed burn-in: %s", d.Label.State)
	}
}

// TestDaemonKeepsOSDPayload: the OSD (another process: its own label.Area)
// changes its owner payload in the label after the daemon read it; the
// daemon's next label updates (a drain, a drain-done) re-read the label and
// keep the OSD's newest payload.
func TestDaemonKeepsOSDPayload(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, _ := loopDevice(t, dir, "osd.img", 16<<20)
	id := filepath.Base(dev)
	writeLabel(t, dev, func(r *label.Record) { r.State, r.Owner, r.Payload = lifecycle.InService, "osd", []byte("payload-1") })
	td := jobDaemon(t, dir, nil)
	router := openAPI(t)
	if d := td.drive(t, id); d.Label.State != node.StateInService || !d.Label.HoldsData {
		t.Fatalf("daemon's view: %+v", d.Label)
	}
	writeLabel(t, dev, func(r *label.Record) { r.Payload = []byte("payload-2") })
	if status, resp := td.request(t, router, "POST", "/v1/drives/"+id+"/actions/drain", tAdmin, `{"serial":"`+id+`"}`); status != 200 {
		t.Fatalf("drain: %d %s", status, resp)
	}
	if rec := readLabel(t, dev); rec.State != lifecycle.Draining || string(rec.Payload) != "payload-2" || rec.Owner != "osd" {
		t.Fatalf("after the daemon's drain: state %s owner %q payload %q", rec.State, rec.Owner, rec.Payload)
	}
	writeLabel(t, dev, func(r *label.Record) { r.Payload = []byte("payload-3") })
	if _, err := td.d.node.Apply(context.Background(), id, node.Transition{Action: node.Action(lifecycle.ActDrainDone), Actor: "osd", Serial: id}); err != nil {
		t.Fatal(err)
	}
	if rec := readLabel(t, dev); rec.State != lifecycle.Drained || string(rec.Payload) != "payload-3" {
		t.Fatalf("after drain-done: state %s payload %q", rec.State, rec.Payload)
	}
	// An erase started on it (payload: the serial is needed) clears the
	// payload only once the erase passed.
	if status, resp := td.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+id+`","serial":"`+id+`"}],"retire":true}`); status != 202 {
		t.Fatalf("erase: %d %s", status, resp)
	}
	if j := td.waitJob(t, router, id, node.JobErase, time.Minute); j.State != node.JobPassed {
		t.Fatalf("erase: %+v", j)
	}
	if rec := readLabel(t, dev); rec.State != lifecycle.Retired || rec.Payload != nil || rec.Owner != "" {
		t.Fatalf("after erase: state %s owner %q payload %q", rec.State, rec.Owner, rec.Payload)
	}
}

// TestCLIBurnIn drives a burn-in with the CLI against the real daemon:
// start, status -watch until done, report, and the errors a refused
// request prints.
func TestCLIBurnIn(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, _ := loopDevice(t, dir, "cli.img", 24<<20)
	id := filepath.Base(dev)
	td := jobDaemon(t, dir, nil)
	cli := func(token string, args ...string) (int, string, string) {
		t.Setenv("HWMGR_TOKEN", token)
		var out, errb bytes.Buffer
		code := run(append(args[:2:2], append([]string{"-url", td.url}, args[2:]...)...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, stderr := cli(tRead, "burnin", "start", id); code != 1 || !strings.Contains(stderr, "403") {
		t.Fatalf("start with a read token: %d %q", code, stderr)
	}
	if code, out, stderr := cli(tAdmin, "burnin", "start", "-passes", "2", id); code != 0 || !strings.Contains(out, id) {
		t.Fatalf("start: %d %q %q", code, out, stderr)
	}
	code, out, stderr := cli(tRead, "burnin", "status", "-watch", id)
	if code != 0 || !strings.Contains(out, "passed") {
		t.Fatalf("status -watch: %d %q %q", code, out, stderr)
	}
	code, out, _ = cli(tRead, "burnin", "report", id)
	var r struct {
		Pass   bool `json:"pass"`
		Passes int  `json:"passes"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || !r.Pass || r.Passes != 2 {
		t.Fatalf("report: %d %q", code, out)
	}
	if code, _, stderr := cli(tAdmin, "burnin", "cancel", id); code != 1 || !strings.Contains(stderr, "no-job") {
		t.Fatalf("cancel of a finished job: %d %q", code, stderr)
	}
	if code, _, _ := cli(tAdmin, "erase", "bogus"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}

// TestDaemonEraseRestartsAfterRestart: the daemon is stopped mid-erase; the
// drive stays erasing in its label (with the erase task); a new daemon
// restarts the erase from the start (erase is idempotent) and the drive
// ends retired, as the recorded parameters asked.
func TestDaemonEraseRestartsAfterRestart(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, _ := loopDevice(t, dir, "e.img", 26<<20)
	id := filepath.Base(dev)
	loopdev.Throttle(t, 4<<20, dev)
	td := jobDaemon(t, dir, nil)
	router := openAPI(t)
	if status, resp := td.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+id+`"}],"method":"overwrite-zeros","retire":true}`); status != 202 {
		t.Fatalf("start: %d %s", status, resp)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		d := td.drive(t, id)
		if d.Job != nil && d.Job.Step == "erase" && d.Job.DoneBytes >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("erase not under way within a minute: %+v", d.Job)
		}
		time.Sleep(50 * time.Millisecond)
	}
	td.stop(t)
	if rec := readLabel(t, dev); rec.State != lifecycle.Erasing || rec.Task.Kind != "erase" {
		t.Fatalf("label after the stop: state %s task %+v", rec.State, rec.Task)
	}
	td2 := jobDaemon(t, dir, nil)
	j := td2.waitJob(t, router, id, node.JobErase, 2*time.Minute)
	if j.State != node.JobPassed || !j.Resumed {
		t.Fatalf("restarted erase: %+v", j)
	}
	if rec := readLabel(t, dev); rec.State != lifecycle.Retired || rec.Task.Kind != "" {
		t.Fatalf("after the restarted erase: state %s task %+v", rec.State, rec.Task)
	}
}
