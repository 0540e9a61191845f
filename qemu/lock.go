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

// lockHost takes an exclusive flock on path, waiting until ctx ends. It
// waits in a blocking flock(2), like flock(1) does, so it queues fairly
// with shell users instead of losing every race to them. The returned
// function releases the lock.
func lockHost(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("host lock %s: %w", path, err)
	}
	fd := int(f.Fd())
	release := func() { _ = unix.Flock(fd, unix.LOCK_UN); f.Close() }
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == nil {
		return release, nil
	}
	start := time.Now()
	got := make(chan error) // unbuffered: a send happens only to a caller still waiting
	abandoned := make(chan struct{})
	go func() {
		var err error
		for {
			if err = unix.Flock(fd, unix.LOCK_EX); !errors.Is(err, unix.EINTR) {
				break
			}
		}
		select {
		case got <- err:
		case <-abandoned:
			// The caller gave up: let go at once.
			if err == nil {
				_ = unix.Flock(fd, unix.LOCK_UN)
			}
			f.Close()
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("host lock %s: %w", path, err)
		}
		return release, nil
	case <-ctx.Done():
		close(abandoned)
		// The waiter may have won the lock just now; take its answer if so.
		select {
		case err := <-got:
			if err == nil {
				return release, nil
			}
			f.Close()
		default:
		}
		return nil, fmt.Errorf("waiting %v for the host QEMU lock %s (another guest is running; see `fuser %s`): %w",
			time.Since(start).Round(time.Second), path, path, ctx.Err())
	}
}
