package netboot

import (
	"net"
	"testing"
)

// FuzzParseProfiles: whatever profile file ParseProfiles accepts, every
// machine it boots gets a known profile whose kernel and initrds are clean
// references (a relative path inside the files root or an http(s) URL) and
// whose command line is one line; nothing panics.
func FuzzParseProfiles(f *testing.F) {
	f.Add([]byte(goodProfiles))
	f.Add([]byte(`{"profiles":{"storage":{"kernel":"k"}},"machines":{"52:54":"storage"}}`))
	f.Add([]byte(`{"default":"rescue","profiles":{"rescue":{"kernel":"{{.MAC}}/k","initrd":["i-{{.Profile}}"],"cmdline":"{{.ServerURL}}"}}}`))
	f.Add([]byte(`{"profiles":{"erase":{"kernel":"http://x/{{.MAC}}"}}}`))
	macs := []net.HardwareAddr{
		{0x52, 0x54, 0x00, 0x12, 0x34, 0x56},
		{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef},
		{0x02, 0, 0, 0, 0, 1},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProfiles(data, nil)
		if err != nil {
			return
		}
		for _, mac := range macs {
			b, ok, err := p.Boot(mac, "http://10.0.0.1:8080")
			if err != nil || !ok {
				continue
			}
			if !knownProfile(b.Profile) {
				t.Fatalf("%s booted unknown profile %q", mac, b.Profile)
			}
			if err := checkRef("kernel", b.Profile, b.Kernel); err != nil {
				t.Fatalf("%s: %v", mac, err)
			}
			for _, r := range b.Initrd {
				if err := checkRef("initrd", b.Profile, r); err != nil {
					t.Fatalf("%s: %v", mac, err)
				}
			}
			for _, c := range b.Cmdline {
				if c == '\n' || c == '\r' {
					t.Fatalf("%s: cmdline %q has a line break", mac, b.Cmdline)
				}
			}
		}
	})
}
