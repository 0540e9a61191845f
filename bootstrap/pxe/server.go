package pxe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
)

// Server answers proxyDHCP on the connections given to Serve.
type Server struct {
	Config
	Lookup ProfileFunc
	Log    *slog.Logger // default slog.Default()
	// OnDecision is called for every packet received, answered or not
	// (for logging and metrics); it may be nil. raw is the packet, valid
	// only during the call.
	OnDecision func(port int, d Decision, raw []byte)
}

// Listen opens the UDP socket for port (PortDHCP or PortPXE) on all
// addresses, bound to the interface iface when it is not empty (needed to
// broadcast offers on the right network), with SO_BROADCAST and
// SO_REUSEPORT so that it can share port 67 with a DHCP server on the same
// host.
func Listen(iface string, port int) (*net.UDPConn, error) {
	c, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: port})
	if err != nil {
		return nil, fmt.Errorf("proxyDHCP: listen on %s port %d: %w", iface, port, err)
	}
	return c, nil
}

// Handle parses one packet and decides the answer. A packet that does not
// parse is an error; everything else yields a Decision.
func (s *Server) Handle(ctx context.Context, port int, b []byte) (Decision, error) {
	req, err := dhcpv4.FromBytes(b)
	if err != nil {
		return Decision{Ignore: "malformed"}, fmt.Errorf("proxyDHCP port %d: %d-byte packet: %w", port, len(b), err)
	}
	return Decide(ctx, s.Config, s.Lookup, req, port), nil
}

// ReplyAddr is where an answer to a request received on port from peer
// goes: to the relay (giaddr) if there is one, else a broadcast to port 68
// for offers (the client has no address yet, as far as we know), else back
// to the sender on 4011.
func ReplyAddr(port int, req *dhcpv4.DHCPv4, peer net.Addr) *net.UDPAddr {
	if gw := req.GatewayIPAddr.To4(); gw != nil && !gw.Equal(net.IPv4zero) {
		return &net.UDPAddr{IP: gw, Port: dhcpv4.ServerPort}
	}
	if port == PortPXE {
		if ua, ok := peer.(*net.UDPAddr); ok && ua.IP.To4() != nil && !ua.IP.Equal(net.IPv4zero) {
			return ua
		}
	}
	return &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
}

// Serve answers packets arriving on conn (received on port) until ctx is
// done or conn fails.
func (s *Server) Serve(ctx context.Context, port int, conn net.PacketConn) error {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 4096)
	for {
		n, peer, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("proxyDHCP port %d: %w", port, err)
		}
		raw := buf[:n]
		d, err := s.Handle(ctx, port, raw)
		if err != nil {
			log.Debug("proxyDHCP: malformed packet", "port", port, "peer", peer, "err", err)
		}
		if s.OnDecision != nil {
			s.OnDecision(port, d, raw)
		}
		if d.Reply == nil {
			continue
		}
		req, _ := dhcpv4.FromBytes(raw) // parsed once already in Handle
		to := ReplyAddr(port, req, peer)
		if _, err := conn.WriteTo(d.Reply.ToBytes(), to); err != nil {
			log.Error("proxyDHCP: send", "port", port, "to", to, "mac", d.MAC, "err", err)
		}
	}
}
