package burnin

import (
	"context"
	"errors"
	"os/exec"
	"testing"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// writeLabel puts a label record on the device at path.
func writeLabel(t *testing.T, path string, rec label.Record) {
	t.Helper()
	ctx := context.Background()
	dev, err := zone.Open(path, zone.Options{ZoneSize: testZone})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	a, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, cmd string, args ...string) {
	t.Helper()
	if out, err := exec.Command(cmd, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", cmd, args, err, out)
	}
}

// TestGuardRails asks for a burn-in of drives the guard rails protect; every
// refusal must leave the device's bytes exactly as they were, and the same
// drive must be accepted when the request names its serial where the rules
// allow that.
func TestGuardRails(t *testing.T) {
	const serial = "ZA1234"
	cases := []struct {
		name    string
		prep    func(t *testing.T, path string)
		skip    func(path string) target.SkipList
		want    error
		allowed bool // with the serial the drive is burned in
	}{
		{"in-service", func(t *testing.T, p string) {
			writeLabel(t, p, label.Record{State: lifecycle.InService, Serial: serial, Owner: "osd", Payload: []byte("sb")})
		}, nil, lifecycle.ErrInService, false},
		{"owner payload", func(t *testing.T, p string) {
			writeLabel(t, p, label.Record{State: lifecycle.New, Serial: serial, Owner: "osd", Payload: []byte("superblock")})
		}, nil, lifecycle.ErrSerialRequired, true},
		{"foreign ext4", func(t *testing.T, p string) { run(t, "mkfs.ext4", "-q", "-F", p) }, nil, lifecycle.ErrSerialRequired, true},
		{"skip list serial", nil, func(string) target.SkipList { return target.SkipList{Serials: []string{serial}} }, target.ErrSkipped, false},
		{"skip list wwn", nil, func(string) target.SkipList { return target.SkipList{WWNs: []string{"NAA.5000C500ABCDEF01"}} }, target.ErrSkipped, false},
		{"skip list path", nil, func(p string) target.SkipList { return target.SkipList{Paths: []string{p}} }, target.ErrSkipped, false},
		{"blockdev --setro", func(t *testing.T, p string) {
			run(t, "blockdev", "--setro", p)
			t.Cleanup(func() { run(t, "blockdev", "--setrw", p) })
		}, nil, target.ErrReadOnly, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := loopdev.New(t, 64<<20)
			if c.prep != nil {
				c.prep(t, path)
			}
			var skip target.SkipList
			if c.skip != nil {
				skip = c.skip(path)
			}
			before := loopdev.Hash(t, path)
			d := target.Drive{Path: path, Serial: serial, WWN: "naa.5000c500abcdef01", Model: "LOOP"}
			job := []Job{{Drive: d, ZoneSize: testZone, Config: Config{Share: 0.2}}}
			res := Batch{Skip: skip}.Run(context.Background(), job)
			if !errors.Is(res[0].Err, c.want) {
				t.Fatalf("without serial: %v; want %v", res[0].Err, c.want)
			}
			if c.want != lifecycle.ErrSerialRequired {
				// Rules no serial overrides.
				res = Batch{Skip: skip, Serials: map[string]string{path: serial}}.Run(context.Background(), job)
				if !errors.Is(res[0].Err, c.want) {
					t.Fatalf("with serial: %v; want %v", res[0].Err, c.want)
				}
			}
			if after := loopdev.Hash(t, path); after != before {
				t.Fatalf("refused drive changed: sha256 %s → %s", before, after)
			}
			if c.allowed {
				res = Batch{Skip: skip, Serials: map[string]string{path: "WRONG"}}.Run(context.Background(), job)
				if !errors.Is(res[0].Err, lifecycle.ErrSerialMismatch) {
					t.Fatalf("wrong serial: %v", res[0].Err)
				}
				res = Batch{Skip: skip, Serials: map[string]string{path: serial}}.Run(context.Background(), job)
				if res[0].Err != nil || !res[0].Report.Pass {
					t.Fatalf("with serial: %v %+v", res[0].Err, res[0].Report)
				}
			}
		})
	}
	t.Run("losetup -r", func(t *testing.T) {
		path := loopdev.New(t, 16<<20, "--read-only")
		before := loopdev.Hash(t, path)
		_, err := target.Check(context.Background(), target.Drive{Path: path}, target.SkipList{}, target.Request{Action: lifecycle.ActErase})
		if !errors.Is(err, target.ErrReadOnly) {
			t.Fatalf("read-only loop: %v", err)
		}
		if loopdev.Hash(t, path) != before {
			t.Fatal("read-only loop changed")
		}
	})
}
