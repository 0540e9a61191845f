package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stowage/stowage/hwmgr/api"
	"github.com/stowage/stowage/hwmgr/node"
)

// TestDaemonOnServerFixture runs the daemon over hwmgr/discover's fixture
// of a storage server (SAS drives in an enclosure, NVMe, SATA, virtio),
// copied to a temporary directory: the inventory matches the OpenAPI
// document, and the locate LED actions write the enclosure slot's sysfs
// locate file.
func TestDaemonOnServerFixture(t *testing.T) {
	root := t.TempDir()
	if out, err := exec.Command("cp", "-a", "../../discover/testdata/server", root).CombinedOutput(); err != nil {
		t.Fatalf("copy fixture: %v: %s", err, out)
	}
	fx := filepath.Join(root, "server")
	td := startDaemon(t, t.TempDir(), func(o *options) {
		o.SysRoot, o.DevRoot, o.RunRoot = filepath.Join(fx, "sys"), filepath.Join(fx, "dev"), filepath.Join(fx, "run")
		o.IncludeLoop, o.LoopBackingDir, o.Smartctl, o.NoUevents = false, "", "", true
	})
	router := openAPI(t)
	status, body := td.request(t, router, "GET", "/v1/inventory", tRead, "")
	if status != 200 {
		t.Fatalf("inventory: %d %s", status, body)
	}
	var inv struct {
		Drives []node.Drive `json:"drives"`
	}
	if err := json.Unmarshal(body, &inv); err != nil {
		t.Fatal(err)
	}
	var slotted, bare *node.Drive
	transports := map[string]bool{}
	for i := range inv.Drives {
		d := &inv.Drives[i]
		transports[d.Identity.Transport] = true
		if d.Identity.Slot != nil && slotted == nil {
			slotted = d
		} else if d.Identity.Slot == nil && bare == nil {
			bare = d
		}
	}
	if slotted == nil || bare == nil {
		t.Fatalf("fixture: no drive in an enclosure slot, or none without one: %+v", inv.Drives)
	}
	for _, tr := range []string{"sas", "nvme", "sata"} {
		if !transports[tr] {
			t.Errorf("no %s drive in the inventory (%v)", tr, transports)
		}
	}
	t.Logf("%s in enclosure %s slot %q bay %q", slotted.ID, slotted.Identity.Slot.Enclosure, slotted.Identity.Slot.Slot, slotted.Identity.Slot.Bay)
	locate := filepath.Join(fx, "sys/class/enclosure", slotted.Identity.Slot.Enclosure, slotted.Identity.Slot.Slot, "locate")
	read := func() string {
		b, err := os.ReadFile(locate)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	for _, c := range []struct{ action, want string }{{"locate-on", "1"}, {"locate-off", "0"}, {"locate-on", "1"}} {
		status, body := td.request(t, router, "POST", "/v1/drives/"+slotted.ID+"/actions/"+c.action, tAdmin, "")
		if status != 200 {
			t.Fatalf("%s: %d %s", c.action, status, body)
		}
		if got := read(); got != c.want {
			t.Fatalf("after %s the locate file holds %q, want %q", c.action, got, c.want)
		}
	}
	status, body = td.request(t, router, "POST", "/v1/drives/"+bare.ID+"/actions/locate-on", tAdmin, "")
	var p api.Problem
	if err := json.Unmarshal(body, &p); status != 409 || err != nil || p.Type != api.ProblemBase+api.ProbNoEnclosure {
		t.Fatalf("locate on %s without a slot: %d %s", bare.ID, status, body)
	}
	_, metrics := td.request(t, nil, "GET", "/metrics", tRead, "")
	if !bytes.Contains(metrics, []byte(`slot="`+slotted.Identity.Slot.Slot+`"`)) || !bytes.Contains(metrics, []byte(`stowage_drive_locate_led{device="`+slotted.Identity.Name+`",drive="`+slotted.ID+`"} 1`)) {
		t.Errorf("metrics lack the slot or the locate LED of %s", slotted.ID)
	}
}
