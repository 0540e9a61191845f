package nodeinit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/url"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
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

// ConfigURLOption is the site-specific DHCPv4 option (RFC 2132 §2: codes
// 224-254 are the site's) that carries the node's config URL, the same
// document stowage.config_url names. The init asks for it in its
// parameter request list; dnsmasq serves it with
// --dhcp-option=224,"http://config.example/node.conf".
const ConfigURLOption = 224

// VendorClass is the DHCP vendor class identifier (option 60) the node
// sends, so a site's DHCP server can match Stowage nodes.
const VendorClass = "stowage-node"

// Lease is what DHCP configured on one interface.
type Lease struct {
	Iface string
	// Addr is the leased address ("10.0.2.15/24").
	Addr string
	// ConfigURL is the URL in option ConfigURLOption, if the server sent
	// a valid http(s) one; BadConfigURL holds an invalid one, to report.
	ConfigURL, BadConfigURL string
}

// configURLFrom reads option ConfigURLOption of a DHCPv4 reply.
func configURLFrom(p *dhcpv4.DHCPv4) (ok, bad string) {
	if p == nil {
		return "", ""
	}
	v := p.Options.Get(dhcpv4.GenericOptionCode(ConfigURLOption))
	if v == nil {
		return "", ""
	}
	s := string(bytes.TrimRight(v, "\x00"))
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", s
	}
	return s, ""
}

// DHCP configures every non-loopback Ethernet interface that gets a link
// with DHCPv4 (insomniacslk/dhcp's nclient4, through u-root's dhclient),
// within timeout in all, asking for option ConfigURLOption. It returns the
// configured interfaces' leases; interfaces without a link or a lease are
// logged and skipped.
func DHCP(ctx context.Context, timeout time.Duration, logger *slog.Logger) ([]Lease, error) {
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
	return dhcpOn(ctx, ifs, timeout, logger)
}

// dhcpOn runs DHCPv4 on the interfaces (the tests pass a veth).
func dhcpOn(ctx context.Context, ifs []netlink.Link, timeout time.Duration, logger *slog.Logger) ([]Lease, error) {
	// u-root's dhclient logs through the standard logger; keep it quiet
	// and report the results ourselves.
	log.SetOutput(io.Discard)
	defer log.SetOutput(logWriter{logger})
	linkUp := min(timeout/2, 10*time.Second)
	cfg := dhclient.Config{Timeout: min(timeout/3, 5*time.Second), Retries: 3, Modifiers4: []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(VendorClass)),
		dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(ConfigURLOption)),
	}}
	var out []Lease
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
		l := Lease{Iface: name}
		if p, ok := r.Lease.(*dhclient.Packet4); ok {
			if n := p.Lease(); n != nil {
				l.Addr = n.String()
			}
			msg, _ := p.Message()
			l.ConfigURL, l.BadConfigURL = configURLFrom(msg)
		}
		out = append(out, l)
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
