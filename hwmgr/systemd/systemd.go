// Package systemd runs hwmgr under systemd: readiness, stopping and
// watchdog notifications (sd_notify) and socket activation, through
// coreos/go-systemd. It also holds the unit files (hwmgr.service,
// hwmgr.socket). Without systemd (our own init) the notifications are
// no-ops and Listen opens a plain listener, so one binary serves both.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// Notify sends one sd_notify state ("READY=1", "STOPPING=1",
// "WATCHDOG=1", "STATUS=..."). It reports false, nil when NOTIFY_SOCKET is
// not set (not under systemd).
func Notify(state string) (bool, error) {
	ok, err := daemon.SdNotify(false, state)
	if err != nil {
		return false, fmt.Errorf("sd_notify %q: %w", state, err)
	}
	return ok, nil
}

// Ready tells systemd the service is up (Type=notify), with a status line.
func Ready(status string) (bool, error) {
	return Notify(daemon.SdNotifyReady + "\nSTATUS=" + status)
}

// Stopping tells systemd the service is shutting down.
func Stopping() (bool, error) { return Notify(daemon.SdNotifyStopping) }

// WatchdogInterval returns how often to ping the watchdog: half of
// WATCHDOG_USEC, or 0 when the watchdog is off or meant for another
// process (WATCHDOG_PID).
func WatchdogInterval() (time.Duration, error) {
	d, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, fmt.Errorf("watchdog: %w", err)
	}
	return d / 2, nil
}

// Watchdog pings WATCHDOG=1 every interval while healthy() holds, until
// ctx ends. A daemon whose core is stuck stops pinging and systemd
// restarts it. With interval 0 it returns at once.
func Watchdog(ctx context.Context, interval time.Duration, healthy func() bool) error {
	if interval <= 0 {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if healthy != nil && !healthy() {
				continue
			}
			if _, err := Notify(daemon.SdNotifyWatchdog); err != nil {
				return err
			}
		}
	}
}

// ErrTooManySockets: systemd passed more than one socket; hwmgr serves one.
var ErrTooManySockets = errors.New("socket activation: more than one socket passed")

// Listen returns the socket systemd passed (LISTEN_FDS/LISTEN_PID, socket
// activation), or else a TCP listener on addr. activated says which.
func Listen(addr string) (l net.Listener, activated bool, err error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, false, fmt.Errorf("socket activation: %w", err)
	}
	var got []net.Listener
	for _, x := range ls {
		if x != nil {
			got = append(got, x)
		}
	}
	switch len(got) {
	case 0:
	case 1:
		return got[0], true, nil
	default:
		for _, x := range got {
			x.Close()
		}
		return nil, false, fmt.Errorf("%w (%d)", ErrTooManySockets, len(got))
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		return nil, false, fmt.Errorf("listen %s: %w", addr, err)
	}
	return l, false, nil
}
