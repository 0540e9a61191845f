package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// FlushDrives asks every whole disk under sysRoot/block (loop, ram, zram,
// dm-, sr and nbd devices left out) to write its volatile cache to media:
// fsync of the block device issues a cache flush, which sync(2) does not.
// Errors are joined; every drive is tried.
func FlushDrives(sysRoot, devRoot string) error {
	ents, err := os.ReadDir(filepath.Join(sysRoot, "block"))
	if err != nil {
		return fmt.Errorf("flush drives: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if skipDevice(name) {
			continue
		}
		f, err := os.OpenFile(filepath.Join(devRoot, name), os.O_RDONLY, 0)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("flush %s: %w", name, err))
			}
			continue
		}
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("flush %s: %w", name, err))
		}
		f.Close()
	}
	return errors.Join(errs...)
}

// skipDevice reports whether a /sys/block name is not a drive.
func skipDevice(name string) bool {
	for _, p := range []string{"loop", "ram", "zram", "dm-", "sr", "nbd", "md"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ConventionalDrives lists, comma-separated, the device paths of the
// whole disks under sysRoot/block that are not zoned (queue/zoned is
// "none" or absent), sorted by name.
func ConventionalDrives(sysRoot, devRoot string) (string, error) {
	drives, err := Drives(sysRoot)
	if err != nil {
		return "", fmt.Errorf("list drives: %w", err)
	}
	var paths []string
	for _, d := range drives {
		if d.Zoned == "" || d.Zoned == "none" {
			paths = append(paths, filepath.Join(devRoot, d.Name))
		}
	}
	if len(paths) == 0 {
		return "", errors.New("no conventional drive")
	}
	return strings.Join(paths, ","), nil
}

// SettleBlockDevices waits until the set of names under sysRoot/block has
// not changed for quiet, at most max; it returns how many there are and
// whether they settled.
func SettleBlockDevices(ctx context.Context, sysRoot string, quiet, max time.Duration) (int, bool) {
	list := func() string {
		ents, _ := os.ReadDir(filepath.Join(sysRoot, "block"))
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return strings.Join(names, " ")
	}
	deadline := time.Now().Add(max)
	last, since := list(), time.Now()
	for {
		if time.Since(since) >= quiet {
			return len(strings.Fields(last)), true
		}
		if time.Now().After(deadline) {
			return len(strings.Fields(last)), false
		}
		select {
		case <-ctx.Done():
			return len(strings.Fields(last)), false
		case <-time.After(100 * time.Millisecond):
		}
		if now := list(); now != last {
			last, since = now, time.Now()
		}
	}
}
