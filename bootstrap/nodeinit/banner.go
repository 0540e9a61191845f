package nodeinit

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ReadyMarker is the console line the init prints once hwmgr answers; the
// boot tests wait for it.
const ReadyMarker = "STOWAGE-NODE: hwmgr API ready"

// OSDReadyMarker starts the console line the init prints once the OSD's
// /readyz answers (the OSD opens or forms its volumes first, so it can
// come after the banner).
const OSDReadyMarker = "STOWAGE-NODE: osd API ready"

// Drive is one block device as the banner shows it.
type Drive struct {
	Name   string // kernel name, e.g. nvme0n1
	Size   int64  // bytes
	Model  string
	Serial string
	Zoned  string // none, host-managed, host-aware
}

// Banner is the status the init prints on the console.
type Banner struct {
	Version, Kernel, Hostname string
	Addresses                 []string // "eth0 10.0.2.15/24"
	Drives                    []Drive
	APIs                      []string // hwmgr's URLs
	Ready                     bool     // hwmgr answered /readyz
	OSDAPIs                   []string // the OSD's URLs
	OSDState                  string   // ready, starting, not started: why
	Problems                  []string // config errors, module failures, ...
}

// String renders the banner: a framed block of lines and, when Ready,
// ReadyMarker as its last line.
func (b Banner) String() string {
	var s strings.Builder
	line := strings.Repeat("=", 72)
	fmt.Fprintf(&s, "%s\n", line)
	fmt.Fprintf(&s, " Stowage node %s   version %s   kernel %s\n", b.Hostname, b.Version, b.Kernel)
	if len(b.Addresses) == 0 {
		fmt.Fprintf(&s, " network:   no address (see the DHCP messages above)\n")
	}
	for _, a := range b.Addresses {
		fmt.Fprintf(&s, " network:   %s\n", a)
	}
	fmt.Fprintf(&s, " drives:    %d\n", len(b.Drives))
	for _, d := range b.Drives {
		z := ""
		if d.Zoned != "" && d.Zoned != "none" {
			z = " zoned=" + d.Zoned
		}
		fmt.Fprintf(&s, "   %-10s %9s  %-24s %s%s\n", d.Name, humanBytes(d.Size), orDash(d.Model), orDash(d.Serial), z)
	}
	for _, u := range b.APIs {
		fmt.Fprintf(&s, " hwmgr API: %s\n", u)
	}
	if !b.Ready {
		fmt.Fprintf(&s, " hwmgr:     NOT READY (its output above says why)\n")
	}
	for _, u := range b.OSDAPIs {
		fmt.Fprintf(&s, " OSD API:   %s\n", u)
	}
	if b.OSDState != "" {
		note := ""
		if b.OSDState == "starting" {
			note = " (it opens or forms its volumes; a line follows once its API answers)"
		}
		fmt.Fprintf(&s, " osd:       %s%s\n", b.OSDState, note)
	}
	for _, p := range b.Problems {
		fmt.Fprintf(&s, " problem:   %s\n", p)
	}
	fmt.Fprintf(&s, " rescue shell: press Enter on this console\n")
	fmt.Fprintf(&s, "%s\n", line)
	if b.Ready {
		fmt.Fprintf(&s, "%s\n", ReadyMarker)
	}
	return s.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := "KMGTPE"
	v, i := float64(n)/unit, 0
	for v >= unit && i < len(units)-1 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[i])
}

// Drives lists the block devices under sysRoot/block, leaving out
// loop, ram, zram, device-mapper, md, sr and nbd devices, sorted by name.
func Drives(sysRoot string) ([]Drive, error) {
	ents, err := os.ReadDir(filepath.Join(sysRoot, "block"))
	if err != nil {
		return nil, err
	}
	var out []Drive
	for _, e := range ents {
		name := e.Name()
		if skipDevice(name) {
			continue
		}
		dir := filepath.Join(sysRoot, "block", name)
		read := func(rel string) string {
			b, _ := os.ReadFile(filepath.Join(dir, rel))
			return strings.TrimSpace(string(b))
		}
		sectors, _ := strconv.ParseInt(read("size"), 10, 64)
		serial := read("device/serial")
		if serial == "" {
			serial = read("serial")
		}
		if serial == "" {
			serial = vpdSerial(read("device/vpd_pg80"))
		}
		out = append(out, Drive{Name: name, Size: sectors * 512, Model: read("device/model"), Serial: serial, Zoned: read("queue/zoned")})
	}
	slices.SortFunc(out, func(a, b Drive) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// vpdSerial extracts the serial of a raw VPD page 0x80 (4-byte header).
func vpdSerial(raw string) string {
	if len(raw) < 4 || raw[1] != 0x80 {
		return ""
	}
	n := int(raw[3])
	if 4+n > len(raw) {
		n = len(raw) - 4
	}
	return strings.TrimSpace(strings.Trim(raw[4:4+n], "\x00"))
}

// Addresses lists "iface addr/prefix" for every global unicast IPv4/IPv6
// address of an up interface other than loopback.
func Addresses() []string {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
				out = append(out, i.Name+" "+n.String())
			}
		}
	}
	return out
}

// APIURLs turns hwmgr's listen address into the URLs to show: one per
// address when it listens on all of them.
func APIURLs(listen string, addrs []string) []string { return urls(listen, addrs, "/v1/inventory") }

// OSDURLs is APIURLs for the OSD (its status page).
func OSDURLs(listen string, addrs []string) []string { return urls(listen, addrs, "/v1/status") }

func urls(listen string, addrs []string, path string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		return []string{"http://" + net.JoinHostPort(host, port) + path}
	}
	var out []string
	for _, a := range addrs {
		_, cidr, _ := strings.Cut(a, " ")
		ip, _, err := net.ParseCIDR(cidr)
		if err != nil {
			continue
		}
		out = append(out, "http://"+net.JoinHostPort(ip.String(), port)+path)
	}
	out = append(out, "http://"+net.JoinHostPort("127.0.0.1", port)+path+" (on the node)")
	return out
}
