package nodeinit

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/u-root/u-root/pkg/dhclient"
	"github.com/vishvananda/netlink"
)

// LoopbackUp brings up lo (hwmgr's health checks and the banner use it).
func LoopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network: lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network: lo up: %w", err)
	}
	return nil
}

// DHCP configures every non-loopback Ethernet interface that gets a link
// with DHCPv4 (insomniacslk/dhcp's nclient4, through u-root's dhclient),
// within timeout in all. It returns the configured interfaces' names;
// interfaces without a link or a lease are logged and skipped.
func DHCP(ctx context.Context, timeout time.Duration, logger *slog.Logger) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("network: list links: %w", err)
	}
	var ifs []netlink.Link
	for _, l := range links {
		a := l.Attrs()
		if a.Flags&0x8 != 0 /* IFF_LOOPBACK */ || l.Type() != "device" || len(a.HardwareAddr) != 6 {
			continue
		}
		ifs = append(ifs, l)
	}
	if len(ifs) == 0 {
		return nil, fmt.Errorf("network: no Ethernet interface (is its driver in the image?)")
	}
	// u-root's dhclient logs through the standard logger; keep it quiet
	// and report the results ourselves.
	log.SetOutput(io.Discard)
	defer log.SetOutput(logWriter{logger})
	linkUp := min(timeout/2, 10*time.Second)
	cfg := dhclient.Config{Timeout: min(timeout/3, 5*time.Second), Retries: 3}
	var out []string
	for r := range dhclient.SendRequests(ctx, ifs, true, false, cfg, linkUp) {
		name := r.Interface.Attrs().Name
		if r.Err != nil {
			logger.Warn("DHCP failed", "iface", name, "err", r.Err)
			continue
		}
		if err := r.Lease.Configure(); err != nil {
			logger.Warn("DHCP lease not applied", "iface", name, "err", err)
			continue
		}
		out = append(out, name)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("network: no DHCP lease on %d interface(s) within %s", len(ifs), timeout)
	}
	return out, nil
}

// logWriter sends standard-library log lines to slog.
type logWriter struct{ l *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.l.Info(string(p))
	return len(p), nil
}
