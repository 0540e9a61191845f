package pxe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/decide")

var testConfig = Config{ServerIP: net.IPv4(10, 77, 0, 1), HTTPURL: "http://10.77.0.1:8080"}

// testLookup knows 52:54:00:* as storage except 52:54:00:00:00:ee, which
// fails, and nothing else.
func testLookup(_ context.Context, mac net.HardwareAddr) (string, bool, error) {
	switch {
	case mac.String() == "52:54:00:00:00:ee":
		return "", false, errors.New("api down")
	case strings.HasPrefix(mac.String(), "52:54:00:"):
		return "storage", true, nil
	}
	return "", false, nil
}

var (
	macKnown   = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	macUnknown = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}
	macFailing = net.HardwareAddr{0x52, 0x54, 0x00, 0x00, 0x00, 0xee}
	guid       = append([]byte{0}, []byte("0123456789abcdef")...)
)

// Client identities as real firmware sends them.
func pxeClass(arch uint16) dhcpv4.Modifier {
	return dhcpv4.WithOption(dhcpv4.OptClassIdentifier(fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", arch)))
}
func arch(a uint16) dhcpv4.Modifier {
	return dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{byte(a >> 8), byte(a)})
}

var ipxeUserClass = dhcpv4.WithUserClass("iPXE", false)
var ipxeEncap = dhcpv4.WithGeneric(dhcpv4.GenericOptionCode(175), []byte{177, 5, 1, 0x1a, 0xf4, 0x10, 0x00, 235, 3, 1, 0, 0})

func packet(t testing.TB, mac net.HardwareAddr, typ dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	all := append([]dhcpv4.Modifier{
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{0xde, 0xad, 0xbe, 0xef}),
		dhcpv4.WithMessageType(typ),
	}, mods...)
	p, err := dhcpv4.NewDiscovery(mac, all...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type decideCase struct {
	name string
	port int
	req  func(t testing.TB) *dhcpv4.DHCPv4
}

func decideCases() []decideCase {
	disc := dhcpv4.MessageTypeDiscover
	reqT := dhcpv4.MessageTypeRequest
	return []decideCase{
		{"bios-pxe-discover", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(0), arch(0), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
		}},
		{"bios-pxe-no-arch-option", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, disc, pxeClass(0)) }},
		{"efi-x64-pxe-discover", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(7), arch(7), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
		}},
		{"efi-bc-pxe-discover", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, disc, pxeClass(9), arch(9)) }},
		{"efi-x64-pxe-request-4011", PortPXE, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, reqT, pxeClass(7), arch(7), dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 50)),
				dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
		}},
		{"ipxe-bios-discover", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(0), arch(0), ipxeUserClass, ipxeEncap)
		}},
		{"ipxe-efi-discover-opt175-only", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(7), arch(7), ipxeEncap)
		}},
		{"ipxe-request-4011", PortPXE, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, reqT, pxeClass(0), arch(0), ipxeUserClass, dhcpv4.WithClientIP(net.IPv4(10, 77, 0, 50)))
		}},
		{"relayed-bios-discover", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(0), arch(0), dhcpv4.WithGatewayIP(net.IPv4(10, 1, 0, 1)))
		}},
		{"not-pxe", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, dhcpv4.WithOption(dhcpv4.OptClassIdentifier("MSFT 5.0")))
		}},
		{"no-vendor-class", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, disc, arch(0)) }},
		{"request-on-67", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, reqT, pxeClass(0), arch(0)) }},
		{"discover-on-4011", PortPXE, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, disc, pxeClass(0), arch(0)) }},
		{"unknown-machine", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macUnknown, disc, pxeClass(0), arch(0)) }},
		{"lookup-error", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macFailing, disc, pxeClass(0), arch(0)) }},
		{"arm64-unsupported", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 { return packet(t, macKnown, disc, pxeClass(11), arch(11)) }},
		{"bad-arch-option", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			return packet(t, macKnown, disc, pxeClass(0), dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{7}))
		}},
		{"bootreply-ignored", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			p := packet(t, macKnown, disc, pxeClass(0), arch(0))
			p.OpCode = dhcpv4.OpcodeBootReply
			return p
		}},
		{"not-ethernet", PortDHCP, func(t testing.TB) *dhcpv4.DHCPv4 {
			p := packet(t, macKnown, disc, pxeClass(0), arch(0))
			p.HWType = iana.HWTypeIEEE802
			return p
		}},
	}
}

// dump renders a decision as stable text for the golden files.
func dump(d Decision) string {
	var b strings.Builder
	if d.Reply == nil {
		fmt.Fprintf(&b, "ignore: %s\n", d.Ignore)
		if d.Err != nil {
			fmt.Fprintf(&b, "err: %v\n", d.Err)
		}
		return b.String()
	}
	r := d.Reply
	fmt.Fprintf(&b, "client: %s profile: %s arch: %d\n", d.Client, d.Profile, uint16(d.Arch))
	fmt.Fprintf(&b, "op: %s type: %s xid: %s flags: %s\n", r.OpCode, r.MessageType(), r.TransactionID, r.FlagsToString())
	fmt.Fprintf(&b, "ciaddr: %s yiaddr: %s siaddr: %s giaddr: %s\n", r.ClientIPAddr, r.YourIPAddr, r.ServerIPAddr, r.GatewayIPAddr)
	fmt.Fprintf(&b, "chaddr: %s sname: %q file: %q\n", r.ClientHWAddr, r.ServerHostName, r.BootFileName)
	codes := make([]int, 0, len(r.Options))
	for c := range r.Options {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	for _, c := range codes {
		fmt.Fprintf(&b, "option %3d: % x\n", c, r.Options[uint8(c)])
	}
	return b.String()
}

func TestDecideGolden(t *testing.T) {
	ctx := context.Background()
	for _, tc := range decideCases() {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req(t)
			// Go through the wire form, as the server does.
			d := Decide(ctx, testConfig, testLookup, mustParse(t, req.ToBytes()), tc.port)
			got := dump(d)
			if d.Reply != nil {
				checkReply(t, req, d, tc.port)
			}
			golden := filepath.Join("testdata", "decide", tc.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Fatalf("decision differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

func mustParse(t testing.TB, b []byte) *dhcpv4.DHCPv4 {
	t.Helper()
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// checkReply holds for every answer: no address handed out, the client's
// transaction and MAC, PXEClient, server id, boot file in both places, and
// the GUID echoed when sent.
func checkReply(t testing.TB, req *dhcpv4.DHCPv4, d Decision, port int) {
	t.Helper()
	r := d.Reply
	if !r.YourIPAddr.Equal(net.IPv4zero) {
		t.Fatalf("reply hands out %v", r.YourIPAddr)
	}
	if r.TransactionID != req.TransactionID || r.ClientHWAddr.String() != req.ClientHWAddr.String() {
		t.Fatalf("reply xid %v mac %v, request %v %v", r.TransactionID, r.ClientHWAddr, req.TransactionID, req.ClientHWAddr)
	}
	if r.ClassIdentifier() != "PXEClient" {
		t.Fatalf("reply option 60 %q", r.ClassIdentifier())
	}
	if !strings.HasPrefix(req.ClassIdentifier(), "PXEClient") {
		t.Fatalf("answered a non-PXE client (option 60 %q)", req.ClassIdentifier())
	}
	want := dhcpv4.MessageTypeOffer
	if port == PortPXE {
		want = dhcpv4.MessageTypeAck
	}
	if r.MessageType() != want {
		t.Fatalf("reply type %s on port %d", r.MessageType(), port)
	}
	if r.BootFileName == "" || r.BootFileName != r.BootFileNameOption() {
		t.Fatalf("boot file %q vs option 67 %q", r.BootFileName, r.BootFileNameOption())
	}
	if g := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); g != nil && string(r.Options.Get(dhcpv4.OptionClientMachineIdentifier)) != string(g) {
		t.Fatal("GUID not echoed")
	}
	back, err := dhcpv4.FromBytes(r.ToBytes())
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if string(back.ToBytes()) != string(r.ToBytes()) {
		t.Fatal("reply does not round-trip")
	}
}

func TestReplyAddr(t *testing.T) {
	peer := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 50), Port: 68}
	req := packet(t, macKnown, dhcpv4.MessageTypeDiscover)
	if got := ReplyAddr(PortDHCP, req, peer); got.String() != "255.255.255.255:68" {
		t.Errorf("offer goes to %v, want broadcast", got)
	}
	if got := ReplyAddr(PortPXE, req, peer); got.String() != peer.String() {
		t.Errorf("4011 ack goes to %v, want %v", got, peer)
	}
	if got := ReplyAddr(PortPXE, req, &net.UDPAddr{IP: net.IPv4zero, Port: 68}); got.String() != "255.255.255.255:68" {
		t.Errorf("4011 ack to an address-less client goes to %v, want broadcast", got)
	}
	req.GatewayIPAddr = net.IPv4(10, 1, 0, 1)
	if got := ReplyAddr(PortDHCP, req, peer); got.String() != "10.1.0.1:67" {
		t.Errorf("relayed offer goes to %v, want the relay", got)
	}
}

// TestServe4011 runs the server on a real UDP socket and asks it as a
// UEFI PXE client asks a proxy on port 4011.
func TestServe4011(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	decisions := make(chan Decision, 4)
	s := &Server{Config: testConfig, Lookup: testLookup, OnDecision: func(_ int, d Decision, _ []byte) { decisions <- d }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, PortPXE, conn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	cl, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Garbage first: it must be dropped without an answer or a crash.
	if _, err := cl.WriteTo([]byte("not dhcp"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	req := packet(t, macKnown, dhcpv4.MessageTypeRequest, pxeClass(7), arch(7), dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))
	if _, err := cl.WriteTo(req.ToBytes(), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = cl.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := cl.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	ack := mustParse(t, buf[:n])
	if ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" || !ack.ServerIPAddr.Equal(testConfig.ServerIP) {
		t.Fatalf("answer: %s", ack.Summary())
	}
	if d := <-decisions; d.Ignore != "malformed" {
		t.Fatalf("first decision %+v, want malformed", d)
	}
	if d := <-decisions; d.Reply == nil || d.Profile != "storage" || d.Client != ClientEFI {
		t.Fatalf("second decision %+v", d)
	}
}
