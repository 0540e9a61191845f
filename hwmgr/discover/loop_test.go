package discover

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu/loopdev"
)

// needRoot skips when loop devices cannot be made: not root and CI unset.
// Under CI=true the test runs (and fails) regardless.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 && os.Getenv("CI") == "" {
		t.Skip("needs root for losetup (set CI=true to force)")
	}
	if _, err := exec.LookPath("losetup"); err != nil && os.Getenv("CI") == "" {
		t.Skip("losetup not installed")
	}
}

// attachLoop backs a loop device with a sparse file of size bytes in dir
// and returns its kernel name; cleanup detaches it (only this one).
func attachLoop(t testing.TB, dir string, size int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "disk-*.img")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return filepath.Base(loopdev.Attach(t, f.Name()))
}

// TestLoopDiscovery: real loop devices are found with the right size,
// transport and backing file, and only those the filter allows.
func TestLoopDiscovery(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	a := attachLoop(t, dir, 1<<20)
	b := attachLoop(t, dir, 3<<20)
	s := NewScanner(Config{Filter: Filter{Loop: true, LoopBackingDir: dir}})
	drives, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Drive{}
	for _, d := range drives {
		if d.Transport == TransportLoop { // the host's real disks count too
			got[d.Name] = d
		}
	}
	if len(got) != 2 {
		t.Fatalf("found %v, want exactly %s and %s", drives, a, b)
	}
	for name, size := range map[string]uint64{a: 1 << 20, b: 3 << 20} {
		d, ok := got[name]
		if !ok {
			t.Fatalf("%s not found in %v", name, drives)
		}
		if d.SizeBytes != size || d.Transport != TransportLoop || d.LogicalSectorSize == 0 || d.Zoned != ZonedNone {
			t.Errorf("%s = %+v", name, d)
		}
		if !strings.HasPrefix(d.BackingFile, dir) {
			t.Errorf("%s backing file %q not in %s", name, d.BackingFile, dir)
		}
		if fi, err := os.Stat(d.DevPath); err != nil || fi.Mode()&os.ModeDevice == 0 {
			t.Errorf("%s dev path %s: %v %v", name, d.DevPath, fi, err)
		}
	}
	// The default filter never counts loop devices.
	def, err := NewScanner(Config{}).Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range def {
		if d.Transport == TransportLoop {
			t.Errorf("default filter counted %s", d.Name)
		}
	}
}

// TestLoopWatch: the netlink watcher sees a loop device come and go.
func TestLoopWatch(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	s := NewScanner(Config{Filter: Filter{Loop: true, LoopBackingDir: dir}})
	updates := make(chan Update, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// The periodic rescan is pushed out of the way: only uevents count.
		done <- s.Watch(ctx, WatchConfig{Interval: time.Hour, Settle: 50 * time.Millisecond}, func(u Update) { updates <- u })
	}()
	u := recv(t, updates)
	if u.Reason != "initial" || loops(u.Drives) != 0 {
		t.Fatalf("initial: %s %v", u.Reason, u.Drives)
	}
	hostDrives := len(u.Drives)
	name := attachLoop(t, dir, 2<<20)
	u = recv(t, updates)
	if u.Reason != "uevent" || len(u.Diff.Added) != 1 || u.Diff.Added[0].Name != name || u.Diff.Added[0].SizeBytes != 2<<20 {
		t.Fatalf("after attaching %s: %s %+v", name, u.Reason, u.Diff)
	}
	loopdev.Detach(t, name)
	u = recv(t, updates)
	if u.Reason != "uevent" || len(u.Diff.Removed) != 1 || u.Diff.Removed[0].Name != name || len(u.Drives) != hostDrives {
		t.Fatalf("after detaching %s: %s %+v", name, u.Reason, u.Diff)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Watch: %v", err)
	}
}

// TestUeventConnCancel: a blocked Read returns when its context ends.
func TestUeventConnCancel(t *testing.T) {
	c, err := DialUevents()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no uevent socket here: %v", err)
		}
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Read(ctx); err != nil {
				res <- err
				return
			}
		}
	}()
	cancel()
	select {
	case err := <-res:
		if err != context.Canceled {
			t.Errorf("Read after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal(fmt.Errorf("Read did not return within 10s of cancel"))
	}
}

func loops(ds []Drive) int {
	n := 0
	for _, d := range ds {
		if d.Transport == TransportLoop {
			n++
		}
	}
	return n
}
