package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// LockPath is the host-wide lock every QEMU guest holds for its whole life,
// so that two TCG guests never share this machine's two cores. Shell users
// take it with `flock /tmp/stowage-qemu.lock qemu-system-x86_64 ...`.
const LockPath = "/tmp/stowage-qemu.lock"

// lockHost takes an exclusive flock on path, retrying until ctx ends. The
// returned function releases it.
func lockHost(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("host lock %s: %w", path, err)
	}
	start := time.Now()
	delay := 50 * time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("host lock %s: %w", path, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("waiting %v for the host QEMU lock %s (another guest is running; see `fuser %s`): %w",
				time.Since(start).Round(time.Second), path, path, ctx.Err())
		case <-t.C:
		}
		if delay < time.Second {
			delay *= 2
		}
	}
}
