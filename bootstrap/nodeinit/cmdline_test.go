package nodeinit

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCmdline(t *testing.T) {
	c, err := ParseCmdline(`BOOT_IMAGE=/vmlinuz console=ttyS0 quiet stowage.net=none stowage.hwmgr.listen=127.0.0.1:8080 ` +
		`stowage.token=adm1,adm2 stowage.read_token=rd stowage.rescue stowage.modules=null_blk,dm-flakey ` +
		`stowage.hostname=node-7 stowage.dhcp.timeout=45s stowage.osd.listen=:8081 stowage.osd.devices=/dev/nvme*n1,/dev/sda` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Net: "none", DHCPTimeout: 45 * time.Second, HwmgrListen: "127.0.0.1:8080", OSDListen: ":8081", OSDDevices: "/dev/nvme*n1,/dev/sda",
		AdminTokens: []string{"adm1", "adm2"}, ReadTokens: []string{"rd"}, Rescue: true,
		Modules: []string{"null_blk", "dm-flakey"}, Hostname: "node-7"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if c, err := ParseCmdline("console=ttyS0 quiet"); err != nil || !reflect.DeepEqual(c, DefaultConfig()) {
		t.Fatalf("no stowage keys: %+v, %v; want the defaults", c, err)
	}
}

func TestParseCmdlineErrors(t *testing.T) {
	for _, c := range []struct {
		cmdline, wantErr string
	}{
		{"stowage.net=static", `stowage.net="static": want dhcp or none`},
		{"stowage.hwmgr.listen=9741", "want HOST:PORT"},
		{"stowage.hwmgr.listen=:99999", "port must be 1-65535"},
		{"stowage.hwmgr.listen=node:80", "host must be an IP"},
		{"stowage.osd.listen=osd", "want HOST:PORT"},
		{"stowage.osd.devices=sda", "want auto, conventional or"},
		{"stowage.osd.devices=/dev/../etc/passwd", "want auto, conventional or"},
		{"stowage.token=", "empty token"},
		{"stowage.token=a,,b", "empty token"},
		{"stowage.rescue=maybe", "want 1/0"},
		{"stowage.modules=nvme,../../etc", "bad module name"},
		{"stowage.hostname=-x", "want 1-63"},
		{"stowage.dhcp.timeout=1h", "1s to 10m"},
		{"stowage.dhcp.timeout=soon", "1s to 10m"},
		{"stowage.colour=blue", `unknown key "stowage.colour"`},
	} {
		cfg, err := ParseCmdline("console=ttyS0 " + c.cmdline + " stowage.hostname=kept")
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%q: err = %v, want it to say %q", c.cmdline, err, c.wantErr)
			continue
		}
		// The other keys still apply; the bad one keeps its default.
		if c.cmdline != "stowage.hostname=-x" && cfg.Hostname != "kept" {
			t.Errorf("%q: a bad key dropped the good ones: %+v", c.cmdline, cfg)
		}
		def := DefaultConfig()
		if cfg.Net != def.Net || cfg.HwmgrListen != def.HwmgrListen || cfg.DHCPTimeout != def.DHCPTimeout || cfg.Rescue {
			t.Errorf("%q: bad value not replaced by the default: %+v", c.cmdline, cfg)
		}
	}
	// Two bad keys: both are reported.
	_, err := ParseCmdline("stowage.net=x stowage.rescue=y")
	if err == nil || !strings.Contains(err.Error(), "stowage.net") || !strings.Contains(err.Error(), "stowage.rescue") {
		t.Fatalf("two bad keys: %v", err)
	}
}

func TestSplitCmdline(t *testing.T) {
	got := SplitCmdline(`a  b="x y" "c d"=e  f=""` + "\n")
	want := []string{"a", "b=x y", "c d=e", "f="}
	if !slices.Equal(got, want) {
		t.Fatalf("SplitCmdline = %q, want %q", got, want)
	}
}

func TestCmdlineRoundTrip(t *testing.T) {
	c := Config{Net: "none", DHCPTimeout: 90 * time.Second, HwmgrListen: "[::1]:9000", OSDListen: "127.0.0.1:1", OSDDevices: "/dev/vd?", AdminTokens: []string{"a=b"},
		Rescue: true, Modules: []string{"x"}, Hostname: "h"}
	back, err := ParseCmdline(c.Cmdline())
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, c)
	}
}

// FuzzParseCmdline: never panics, and whatever parses without error
// renders (Config.Cmdline) to a command line that parses back to the same
// Config.
func FuzzParseCmdline(f *testing.F) {
	f.Add("console=ttyS0 stowage.net=dhcp stowage.rescue=1")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCmdline(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		back, err := ParseCmdline(c.Cmdline())
		if err != nil {
			t.Fatalf("re-parse of %q: %v", c.Cmdline(), err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", s, back, c)
		}
	})
}
