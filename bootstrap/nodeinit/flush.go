package nodeinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
