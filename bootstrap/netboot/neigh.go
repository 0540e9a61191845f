package netboot

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// NeighborMAC finds the MAC of an IPv4 neighbour in the kernel's ARP table
// (<procRoot>/net/arp), so that TFTP fetches, which carry only an IP
// address, can be logged per MAC. procRoot is normally /proc.
func NeighborMAC(procRoot string, ip net.IP) (net.HardwareAddr, error) {
	file := filepath.Join(procRoot, "net", "arp")
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := ip.String()
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // header
		}
		// IP address  HW type  Flags  HW address  Mask  Device
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[0] != want {
			continue
		}
		mac, err := net.ParseMAC(fields[3])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", file, line, err)
		}
		if fields[2] == "0x0" || mac.String() == "00:00:00:00:00:00" {
			continue // incomplete entry
		}
		return mac, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return nil, fmt.Errorf("%s: no entry for %s", file, ip)
}
