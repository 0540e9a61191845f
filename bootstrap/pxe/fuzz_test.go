package pxe

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzHandle feeds arbitrary bytes to the proxy on both ports. Whatever it
// answers must obey the proxy's invariants (checkReply: no address handed
// out, same transaction and MAC, PXE clients only, a reply that parses and
// round-trips), and it must never panic.
func FuzzHandle(f *testing.F) {
	for _, tc := range decideCases() {
		f.Add(tc.req(f).ToBytes())
	}
	// Packets captured from real clients.
	files, _ := filepath.Glob(filepath.Join("testdata", "captures", "*.hex"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			f.Fatalf("%s: %v", file, err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("not dhcp"))
	s := &Server{Config: testConfig, Lookup: testLookup}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, port := range []int{PortDHCP, PortPXE} {
			d, err := s.Handle(context.Background(), port, b)
			if err != nil {
				if d.Reply != nil {
					t.Fatal("reply to a packet that does not parse")
				}
				continue
			}
			if d.Reply == nil {
				if d.Ignore == "" {
					t.Fatal("silent without a reason")
				}
				continue
			}
			req, err := dhcpv4.FromBytes(b)
			if err != nil {
				t.Fatal(err)
			}
			checkReply(t, req, d, port)
		}
	})
}
