package smart

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu/loopdev"
)

// needSmartctl skips when smartctl is absent, unless CI is set.
func needSmartctl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("smartctl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("smartctl missing under CI: %v", err)
		}
		t.Skip("smartctl not installed")
	}
	return p
}

func TestRunnerArgs(t *testing.T) {
	got := Runner{}.Args("/dev/sda", "")
	want := []string{"--json=c", "-x", "-n", "standby", "/dev/sda"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
	got = Runner{Basic: true, StandbyExit: 9}.Args("/dev/sdb", "megaraid,3")
	want = []string{"--json=c", "-a", "-n", "standby,9", "-d", "megaraid,3", "/dev/sdb"}
	if !slices.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

// A missing device: real smartctl exits 2 (device open failed); that is
// decoded, not returned as an error, and the record says "error".
func TestRunnerMissingDevice(t *testing.T) {
	path := needSmartctl(t)
	out, err := Runner{Path: path}.Run(context.Background(), "/dev/stowage-no-such-disk", "sat")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if out.ExitStatus != ExitDeviceOpen || out.Record.ExitStatus != out.ExitStatus {
		t.Errorf("exit %v (record %v), want device_open_failed", out.ExitStatus, out.Record.ExitStatus)
	}
	if out.Record.Status != StatusError || len(out.Record.Messages) == 0 {
		t.Errorf("record %+v", out.Record)
	}
}

// An unknown -d type is a command-line error (bit 0).
func TestRunnerCommandLine(t *testing.T) {
	path := needSmartctl(t)
	out, err := Runner{Path: path}.Run(context.Background(), "/dev/sda", "bogus")
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !out.ExitStatus.Has(ExitCommandLine) || out.Record.Status != StatusError {
		t.Errorf("exit %v status %q", out.ExitStatus, out.Record.Status)
	}
}

// Real smartctl with -n standby on a real loop device through SAT: the
// pass-through reads back as a low-power mode and smartctl stops before
// touching the drive. Default and custom standby exit codes both come out
// as "asleep", whatever bits the exit code happens to set.
func TestRunnerStandby(t *testing.T) {
	path := needSmartctl(t)
	dev := loopdev.Zero(t, 16<<20)
	for _, code := range []uint8{0, 7} {
		out, err := Runner{Path: path, StandbyExit: code}.Run(context.Background(), dev, "sat")
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		want := ExitStatus(code)
		if code == 0 {
			want = ExitDeviceOpen
		}
		if out.ExitStatus != want {
			t.Errorf("standby,%d: exit %v, want %v", code, out.ExitStatus, want)
		}
		if out.Record.Status != StatusAsleep || out.Record.Asleep == "" {
			t.Errorf("standby,%d: status %q asleep %q, messages %+v", code, out.Record.Status, out.Record.Asleep, out.Record.Messages)
		}
	}
}

func TestRunnerTimeout(t *testing.T) {
	dir := t.TempDir()
	hang := filepath.Join(dir, "smartctl")
	if err := os.WriteFile(hang, []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Runner{Path: hang, Timeout: 100 * time.Millisecond}.Run(context.Background(), "/dev/sda", "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want deadline exceeded", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Runner{Path: hang}.Run(ctx, "/dev/sda", "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want canceled", err)
	}
}

func TestRunnerNotSmartctl(t *testing.T) {
	if _, err := (Runner{Path: "/bin/echo"}).Run(context.Background(), "/dev/sda", ""); err == nil {
		t.Error("echo's output parsed as smartctl JSON")
	}
	if _, err := (Runner{Path: filepath.Join(t.TempDir(), "none")}).Run(context.Background(), "/dev/sda", ""); err == nil {
		t.Error("missing binary: no error")
	}
}
