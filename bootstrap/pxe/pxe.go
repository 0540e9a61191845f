// Package pxe is a proxyDHCP server (PXE specification 2.1, section 2.2.5)
// that runs beside a site's own DHCP server: it never hands out addresses
// (yiaddr is always 0.0.0.0); it answers only PXE clients (option 60
// starting "PXEClient") with where to boot from.
//
// On UDP 67 it answers a DHCPDISCOVER with a DHCPOFFER; on UDP 4011 it
// answers the DHCPREQUEST that PXE firmware and iPXE send to the proxy
// with a DHCPACK carrying the same boot information.
//
// What a client is told depends on what it is:
//
//	client                              boot file            option 43
//	PXE firmware, BIOS (arch 0/absent)  undionly.kpxe, TFTP  discovery control 8
//	PXE firmware, x86-64 UEFI (7, 9)    ipxe.efi, TFTP       none (BINL style)
//	iPXE (user class "iPXE" or opt 175) HTTP script URL      discovery control 8
//
// Discovery control 8 (bit 3) tells the client to take the boot file in
// this offer and skip PXE boot-server discovery and menus. UEFI firmware
// (EDK2) gets no option 43, the variant every firmware accepts (pixiecore
// found some UEFI firmware ignores offers that bypass discovery); it then
// asks port 4011, as for a boot server. iPXE clients get the per-MAC HTTP
// script URL, never an iPXE binary, so there is no chainload loop. Other
// architectures and machines the profile lookup does not know are ignored.
package pxe

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// Ports the proxy listens on.
const (
	PortDHCP = 67
	PortPXE  = 4011
)

// Client kinds.
const (
	ClientBIOS = "bios"    // PXE firmware on BIOS
	ClientEFI  = "efi-x64" // PXE firmware on x86-64 UEFI
	ClientIPXE = "ipxe"    // iPXE, BIOS or UEFI
)

// Config is what the proxy advertises.
type Config struct {
	ServerIP net.IP // next-server (siaddr), server identifier (54), TFTP server (66)
	// HTTPURL is the HTTP boot server's base URL; iPXE clients get
	// HTTPURL/boot/<mac>.ipxe.
	HTTPURL  string
	BIOSFile string // TFTP file for BIOS PXE firmware; default "undionly.kpxe"
	EFIFile  string // TFTP file for x86-64 UEFI PXE firmware; default "ipxe.efi"
}

// ProfileFunc tells whether a machine is to be booted, and with which
// profile. ok false means ignore the machine.
type ProfileFunc func(ctx context.Context, mac net.HardwareAddr) (profile string, ok bool, err error)

// Decision is the proxy's answer to one packet.
type Decision struct {
	Reply    *dhcpv4.DHCPv4 // nil: stay silent
	Ignore   string         // why Reply is nil (a short metric label)
	Err      error          // a lookup failure, when Ignore is "lookup_error"
	MAC      net.HardwareAddr
	Type     dhcpv4.MessageType // of the request
	Client   string             // ClientBIOS, ClientEFI, ClientIPXE
	Arch     iana.Arch
	Profile  string
	BootFile string
}

// pxeDiscoveryControl is option 43 with sub-option 6 (PXE_DISCOVERY_CONTROL)
// = 8: use the boot file in this offer, no boot-server discovery, no menu.
var pxeDiscoveryControl = []byte{6, 1, 8, 255}

// Decide computes the answer to req, received on port (PortDHCP or
// PortPXE). It never hands out an address.
func Decide(ctx context.Context, c Config, lookup ProfileFunc, req *dhcpv4.DHCPv4, port int) Decision {
	d := Decision{MAC: req.ClientHWAddr, Type: req.MessageType()}
	ignore := func(why string) Decision { d.Ignore = why; return d }
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return ignore("not_request")
	}
	if req.HWType != iana.HWTypeEthernet || len(req.ClientHWAddr) != 6 {
		return ignore("not_ethernet")
	}
	var replyType dhcpv4.MessageType
	switch {
	case port == PortDHCP && d.Type == dhcpv4.MessageTypeDiscover:
		replyType = dhcpv4.MessageTypeOffer
	case port == PortPXE && d.Type == dhcpv4.MessageTypeRequest:
		replyType = dhcpv4.MessageTypeAck
	default:
		return ignore("message_type")
	}
	if !strings.HasPrefix(req.ClassIdentifier(), "PXEClient") {
		return ignore("not_pxe")
	}
	if archs := req.ClientArch(); len(archs) > 0 {
		d.Arch = archs[0]
	} else if req.Options.Has(dhcpv4.OptionClientSystemArchitectureType) {
		return ignore("bad_arch_option")
	}
	isIPXE := req.Options.Has(dhcpv4.GenericOptionCode(175))
	for _, uc := range req.UserClass() {
		if uc == "iPXE" {
			isIPXE = true
		}
	}
	switch {
	case d.Arch != iana.INTEL_X86PC && d.Arch != iana.EFI_X86_64 && d.Arch != iana.EFI_BC:
		return ignore("unsupported_arch")
	case isIPXE:
		d.Client = ClientIPXE
	case d.Arch == iana.INTEL_X86PC:
		d.Client = ClientBIOS
	default:
		d.Client = ClientEFI
	}
	profile, ok, err := lookup(ctx, req.ClientHWAddr)
	if err != nil {
		d.Err = err
		return ignore("lookup_error")
	}
	if !ok {
		return ignore("unknown_machine")
	}
	d.Profile = profile

	server := c.ServerIP.To4()
	if server == nil {
		d.Err = fmt.Errorf("server IP %v is not IPv4", c.ServerIP)
		return ignore("config_error")
	}
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(replyType),
		dhcpv4.WithYourIP(net.IPv4zero),
		dhcpv4.WithServerIP(server),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(server)),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient")),
	}
	if replyType == dhcpv4.MessageTypeAck && req.ClientIPAddr != nil {
		mods = append(mods, dhcpv4.WithClientIP(req.ClientIPAddr))
	}
	if guid := req.Options.Get(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, bytes.Clone(guid)))
	}
	switch d.Client {
	case ClientIPXE:
		d.BootFile = strings.TrimSuffix(c.HTTPURL, "/") + "/boot/" + req.ClientHWAddr.String() + ".ipxe"
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
	case ClientBIOS:
		d.BootFile = orDefault(c.BIOSFile, "undionly.kpxe")
		mods = append(mods, dhcpv4.WithGeneric(dhcpv4.OptionVendorSpecificInformation, pxeDiscoveryControl))
	case ClientEFI:
		d.BootFile = orDefault(c.EFIFile, "ipxe.efi")
	}
	if d.Client != ClientIPXE {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptTFTPServerName(server.String())))
	}
	mods = append(mods, dhcpv4.WithOption(dhcpv4.OptBootFileName(d.BootFile)))
	reply, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		d.Err = err
		return ignore("reply_error")
	}
	if len(d.BootFile) >= 128 {
		d.Err = fmt.Errorf("boot file name %q is longer than the 127 bytes of the BOOTP file field", d.BootFile)
		return ignore("config_error")
	}
	reply.BootFileName = d.BootFile
	if d.Client != ClientIPXE {
		reply.ServerHostName = server.String()
	}
	d.Reply = reply
	return d
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
