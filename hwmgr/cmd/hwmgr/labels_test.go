package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/qemu/loopdev"
)

// gptLoopDevice makes a loop device with a GPT and one partition written by
// sgdisk (skipped without sgdisk, unless CI is set).
func gptLoopDevice(t *testing.T, dir, name string, size int64) string {
	t.Helper()
	if _, err := exec.LookPath("sgdisk"); err != nil {
		if testingCI() {
			t.Fatal("sgdisk missing (gdisk package)")
		}
		t.Skip("sgdisk missing (gdisk package)")
	}
	dev, _ := loopDevice(t, dir, name, size)
	if out, err := exec.Command("sgdisk", "-o", "-n", "1:0:0", dev).CombinedOutput(); err != nil {
		t.Fatalf("sgdisk: %v: %s", err, out)
	}
	return dev
}

// TestDaemonLabelsOnLoopDevices: a blank loop device is new, one with a
// GPT written by sgdisk is foreign; adopting it needs its confirmation
// (422 without, 409 wrong), writes our label, shows in the event stream,
// and survives a restart of the daemon (the state lives on the drive).
func TestDaemonLabelsOnLoopDevices(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	blank, _ := loopDevice(t, dir, "blank.img", 32<<20)
	gpt := gptLoopDevice(t, dir, "gpt.img", 32<<20)
	td := startDaemon(t, dir, func(o *options) { o.NoUevents = true })
	router := openAPI(t)
	blankName, gptName := filepath.Base(blank), filepath.Base(gpt)

	get := func(name string) node.Drive {
		t.Helper()
		status, body := td.request(t, router, "GET", "/v1/drives/"+name, tRead, "")
		if status != 200 {
			t.Fatalf("drive %s: %d %s", name, status, body)
		}
		var d node.Drive
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := get(blankName); d.Label.State != node.StateNew || d.LabelError != "" {
		t.Fatalf("blank loop device: state %q, label error %q", d.Label.State, d.LabelError)
	}
	d := get(gptName)
	if d.Label.State != node.StateForeign || !slices.Contains(d.Label.Foreign, "gpt") {
		t.Fatalf("GPT loop device: state %q, foreign %v, label error %q", d.Label.State, d.Label.Foreign, d.LabelError)
	}
	evs := td.events(t)
	act := func(name, action, body string) (int, []byte) {
		return td.request(t, router, "POST", "/v1/drives/"+name+"/actions/"+action, tAdmin, body)
	}
	if status, body := act(gptName, "adopt", `{}`); status != 422 {
		t.Fatalf("adopt without serial: %d %s", status, body)
	}
	if status, body := act(gptName, "adopt", `{"serial":"`+blankName+`"}`); status != 409 {
		t.Fatalf("adopt naming another drive: %d %s", status, body)
	}
	if status, body := act(gptName, "drain", `{"serial":"`+gptName+`"}`); status != 409 {
		t.Fatalf("drain of a foreign drive: %d %s", status, body)
	}
	// Nothing was written: the GPT is still there.
	if out, err := exec.Command("sgdisk", "-v", gpt).CombinedOutput(); err != nil {
		t.Fatalf("GPT damaged by a refused request: %v: %s", err, out)
	}
	status, body := act(gptName, "adopt", `{"serial":"`+gptName+`","reason":"RMA 7"}`)
	if status != 200 {
		t.Fatalf("adopt: %d %s", status, body)
	}
	var after node.Drive
	if err := json.Unmarshal(body, &after); err != nil {
		t.Fatal(err)
	}
	if after.Label.State != node.StateNew || after.Label.Generation == 0 || len(after.Label.History) != 1 ||
		after.Label.History[0].From != node.StateForeign || after.Label.History[0].Reason != "RMA 7" {
		t.Fatalf("after adopt: %+v", after.Label)
	}
	ev := waitEvent(t, evs, "lifecycle.transition", func(ev node.Event) bool { return ev.Type == node.EventLifecycle })
	var ld node.LifecycleData
	if err := json.Unmarshal(ev.Data, &ld); err != nil || ld.From != node.StateForeign || ld.To != node.StateNew || ld.Action != node.ActionAdopt {
		t.Fatalf("event %+v (%v)", ld, err)
	}
	// The lifecycle refuses what its table does not allow.
	if status, body := act(blankName, "retire", `{}`); status != 409 {
		t.Fatalf("retire of a new drive: %d %s", status, body)
	}

	// A new daemon reads the state from the drive.
	td.stop(t)
	td2 := startDaemon(t, dir, func(o *options) { o.NoUevents = true })
	d2, ok := td2.d.node.Drive(gptName)
	if !ok || d2.Label.State != node.StateNew || d2.Label.Generation != after.Label.Generation || len(d2.Label.History) != 1 {
		t.Fatalf("after restart: %+v", d2.Label)
	}
}

// TestDaemonHealthFailWritesLabel: a drive the health policy fails is
// moved to failed in its own label. smartctl cannot fail a loop device, so
// a script stands in for it, printing a real captured output of an NVMe
// drive whose self-assessment failed; the rest is the real daemon on a
// real loop device. The state survives a restart; mark-repaired brings
// the drive back to new.
func TestDaemonHealthFailWritesLabel(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	dev, _ := loopDevice(t, dir, "sick.img", 16<<20)
	fixture, err := filepath.Abs("../../smart/testdata/smartctl-json/nvme-null-SAMSUNG_MZWLL3T2HAJQ-00005-nvme0.json")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "smartctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\ncat "+fixture+"\nexit 8\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dev)
	// Only this loop device: the script would fail every drive it is run on.
	td := startDaemon(t, dir, func(o *options) { o.Smartctl, o.NoUevents, o.Devices = script, true, []string{name} })
	td.d.node.PollSMART(context.Background())
	d, ok := td.d.node.Drive(name)
	if !ok || d.Health.Verdict != node.VerdictFail || d.Label.State != node.StateFailed {
		t.Fatalf("failing drive: verdict %s state %s reasons %+v (label error %q)", d.Health.Verdict, d.Label.State, d.Health.Reasons, d.LabelError)
	}
	if d.SMART.ExitStatus != 8 || !slices.Contains(d.SMART.ExitFlags, "disk_failing") {
		t.Errorf("exit status %d flags %v", d.SMART.ExitStatus, d.SMART.ExitFlags)
	}
	td.stop(t)

	td2 := startDaemon(t, dir, func(o *options) { o.Smartctl, o.NoUevents, o.DontFail, o.Devices = "", true, true, []string{name} })
	d, _ = td2.d.node.Drive(name)
	if d.Label.State != node.StateFailed || len(d.Label.History) != 1 || d.Label.History[0].Actor != "health-policy" {
		t.Fatalf("after restart: %+v", d.Label)
	}
	status, body := td2.request(t, openAPI(t), "POST", "/v1/drives/"+name+"/actions/mark-repaired", tAdmin, `{"reason":"reseated"}`)
	if status != 200 {
		t.Fatalf("mark-repaired: %d %s", status, body)
	}
	if d, _ = td2.d.node.Drive(name); d.Label.State != node.StateNew || len(d.Label.History) != 2 {
		t.Fatalf("after mark-repaired: %+v", d.Label)
	}
}

// TestDaemonAdoptThenErase: a drive with a GPT (sgdisk) is foreign; an
// erase is refused until it is adopted by its serial (its bytes unchanged
// meanwhile); adopted, it is erased through the API with its serial
// (markers gone, the backup GPT at the end of the drive zeroed) and ends
// ready, with the adopt and the erase in its label history.
func TestDaemonAdoptThenErase(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	const size = 24 << 20
	dev := gptLoopDevice(t, dir, "rma.img", size)
	td := jobDaemon(t, dir, nil)
	router := openAPI(t)
	id := filepath.Base(dev)
	if d := td.drive(t, id); d.Label.State != node.StateForeign {
		t.Fatalf("GPT drive: %+v", d.Label)
	}
	before := loopdev.Hash(t, dev)
	for _, body := range []string{`{"drives":[{"drive":"` + id + `"}]}`, `{"drives":[{"drive":"` + id + `","serial":"` + id + `"}]}`} {
		if status, resp := td.request(t, router, "POST", "/v1/erase", tAdmin, body); status < 400 {
			t.Fatalf("erase of a foreign drive %s: %d %s", body, status, resp)
		}
	}
	if loopdev.Hash(t, dev) != before {
		t.Fatal("a refused erase changed the foreign drive")
	}
	if status, resp := td.request(t, router, "POST", "/v1/drives/"+id+"/actions/adopt", tAdmin, `{"serial":"`+id+`","reason":"RMA 12"}`); status != 200 {
		t.Fatalf("adopt: %d %s", status, resp)
	}
	status, resp := td.request(t, router, "POST", "/v1/erase", tAdmin, `{"drives":[{"drive":"`+id+`","serial":"`+id+`"}],"method":"overwrite-zeros","reason":"RMA 12"}`)
	if status != 202 {
		t.Fatalf("erase of the adopted drive: %d %s", status, resp)
	}
	if j := td.waitJob(t, router, id, node.JobErase, 2*time.Minute); j.State != node.JobPassed {
		t.Fatalf("erase: %+v", j)
	}
	status, resp = td.request(t, router, "GET", "/v1/drives/"+id+"/erase/report", tRead, "")
	if status != 200 || !bytes.Contains(resp, []byte(`"markers_found": 0`)) || !bytes.Contains(resp, []byte(`"pass": true`)) {
		t.Fatalf("erase report: %d %s", status, resp)
	}
	d := td.drive(t, id)
	var path []node.State
	for _, h := range d.Label.History {
		path = append(path, h.To)
	}
	if d.Label.State != node.StateReady || !slices.Equal(path, []node.State{node.StateNew, node.StateErasing, node.StateReady}) ||
		d.Label.History[0].From != node.StateForeign || d.Label.Results[len(d.Label.Results)-1].Kind != label.KindErase {
		t.Fatalf("after the erase: state %s, history %+v, results %+v", d.Label.State, d.Label.History, d.Label.Results)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tail := make([]byte, 64<<10)
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("the backup GPT at the end of the drive survived the erase")
	}
}
