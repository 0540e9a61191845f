package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmartParseFixtures runs `hwmgr smart parse` over every real smartctl
// output in hwmgr/smart's fixtures and checks each printed object against
// the file itself: the serial and the overall-health flag smartctl wrote,
// and the verdict that flag implies (a drive whose self-assessment failed
// must be judged fail).
func TestSmartParseFixtures(t *testing.T) {
	files, err := filepath.Glob("../../smart/testdata/smartctl-json/*.json")
	if err != nil || len(files) < 100 {
		t.Fatalf("fixtures: %d files, %v", len(files), err)
	}
	var out, errb bytes.Buffer
	if rc := run(append([]string{"smart", "parse"}, files...), &out, &errb); rc != 0 {
		t.Fatalf("exit %d: %s", rc, errb.String())
	}
	dec := json.NewDecoder(&out)
	failed := 0
	for i := 0; ; i++ {
		var p struct {
			File   string `json:"file"`
			Record *struct {
				Identity struct {
					Serial string `json:"serial"`
				} `json:"identity"`
				Passed *bool `json:"passed"`
			} `json:"record"`
			Health struct {
				Verdict string `json:"verdict"`
			} `json:"health"`
		}
		if err := dec.Decode(&p); err == io.EOF {
			if i != len(files) {
				t.Fatalf("%d objects for %d files", i, len(files))
			}
			break
		} else if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(p.File)
		if err != nil {
			t.Fatal(err)
		}
		var src struct {
			Serial      string `json:"serial_number"`
			SmartStatus *struct {
				Passed *bool `json:"passed"`
			} `json:"smart_status"`
		}
		if err := json.Unmarshal(raw, &src); err != nil {
			t.Fatal(err)
		}
		if p.Record == nil {
			t.Errorf("%s: no record", p.File)
			continue
		}
		if strings.TrimSpace(src.Serial) != "" && p.Record.Identity.Serial != strings.TrimSpace(src.Serial) {
			t.Errorf("%s: serial %q, file says %q", p.File, p.Record.Identity.Serial, src.Serial)
		}
		switch p.Health.Verdict {
		case "ok", "warn", "fail":
		default:
			t.Errorf("%s: verdict %q", p.File, p.Health.Verdict)
		}
		if src.SmartStatus != nil && src.SmartStatus.Passed != nil && !*src.SmartStatus.Passed {
			failed++
			if p.Health.Verdict != "fail" {
				t.Errorf("%s: smartctl says the self-assessment failed, verdict %q", p.File, p.Health.Verdict)
			}
		}
	}
	if failed == 0 {
		t.Error("no fixture with a failed self-assessment: the fail check never ran")
	}
}

func TestSmartParseBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"not":"smartctl"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	rc := run([]string{"smart", "parse", bad, filepath.Join(dir, "missing.json")}, &out, &errb)
	if rc != 1 {
		t.Fatalf("exit %d, want 1", rc)
	}
	dec := json.NewDecoder(&out)
	for i := 0; i < 2; i++ {
		var p parsed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Error == "" || p.Record != nil {
			t.Errorf("%s: %+v", p.File, p)
		}
	}
	if rc := run([]string{"smart"}, &out, &errb); rc != 2 {
		t.Errorf("hwmgr smart: exit %d, want 2", rc)
	}
	if rc := run([]string{"bogus"}, &out, &errb); rc != 2 {
		t.Errorf("hwmgr bogus: exit %d, want 2", rc)
	}
}
