package netboot

import (
	"net"
	"testing"
)

func TestNeighborMAC(t *testing.T) {
	root := "testdata/fixtures/proc"
	mac, err := NeighborMAC(root, net.IPv4(10, 77, 0, 50))
	if err != nil || mac.String() != "52:54:00:12:34:56" {
		t.Fatalf("10.77.0.50: %v %v", mac, err)
	}
	for _, ip := range []net.IP{net.IPv4(10, 77, 0, 51), net.IPv4(10, 77, 0, 52), net.IPv4(10, 77, 0, 99)} {
		if mac, err := NeighborMAC(root, ip); err == nil {
			t.Errorf("%v: got %v, want an error (incomplete, malformed, absent)", ip, mac)
		}
	}
	if _, err := NeighborMAC("testdata/none", net.IPv4(10, 77, 0, 50)); err == nil {
		t.Error("missing proc root: no error")
	}
}
