package netboot

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// filesRoot makes a files root with a kernel and two initrds.
func filesRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{
		"vmlinuz":             "KERNEL-BYTES-0123456789",
		"stowage.cpio.gz":     "INITRD-STOWAGE",
		"burnin.cpio.gz":      "INITRD-BURNIN",
		"conf/node.json":      `{"node":"x"}`,
		"rescue/vmlinuz-resc": "RESCUE-KERNEL",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const goodProfiles = `{
  "default": "rescue",
  "profiles": {
    "storage": {"kernel": "vmlinuz", "initrd": ["stowage.cpio.gz"], "cmdline": "console=ttyS0 stowage.profile={{.Profile}} stowage.mac={{.MAC}} stowage.server={{.ServerURL}}"},
    "burnin":  {"kernel": "vmlinuz", "initrd": ["stowage.cpio.gz", "burnin.cpio.gz"], "cmdline": "stowage.profile={{.Profile}}"},
    "erase":   {"kernel": "http://images.example/erase/vmlinuz", "initrd": ["http://images.example/erase/initrd"], "cmdline": "stowage.profile=erase"},
    "rescue":  {"kernel": "rescue/vmlinuz-resc", "cmdline": "stowage.profile={{.Profile}} mac={{.MAC}}"}
  },
  "machines": {
    "52:54:00:12:34:56": "storage",
    "52-54-00-AB-CD-EF": "erase",
    "52:54:00": "burnin",
    "52:54": "storage"
  }
}`

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProfilesMatch(t *testing.T) {
	root, err := os.OpenRoot(filesRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	p, err := ParseProfiles([]byte(goodProfiles), root.FS())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mac, want string
	}{
		{"52:54:00:12:34:56", "storage"}, // exact beats the 3-octet prefix
		{"52:54:00:ab:cd:ef", "erase"},   // exact, written upper case with dashes
		{"52:54:00:00:00:01", "burnin"},  // longest prefix
		{"52:54:01:00:00:01", "storage"}, // shorter prefix
		{"52:55:00:00:00:01", "rescue"},  // default
	} {
		got, ok := p.Match(mustMAC(t, tc.mac))
		if !ok || got != tc.want {
			t.Errorf("Match(%s) = %q, %v; want %q", tc.mac, got, ok, tc.want)
		}
	}
	b, ok, err := p.Boot(mustMAC(t, "52:54:00:12:34:56"), "http://10.0.0.1:8080")
	if err != nil || !ok {
		t.Fatalf("Boot: %v %v", ok, err)
	}
	want := Boot{Profile: "storage", Kernel: "vmlinuz", Initrd: []string{"stowage.cpio.gz"},
		Cmdline: "console=ttyS0 stowage.profile=storage stowage.mac=52:54:00:12:34:56 stowage.server=http://10.0.0.1:8080"}
	if b.Profile != want.Profile || b.Kernel != want.Kernel || strings.Join(b.Initrd, ",") != strings.Join(want.Initrd, ",") || b.Cmdline != want.Cmdline {
		t.Errorf("Boot = %+v\nwant   %+v", b, want)
	}
}

func TestProfilesNoDefaultIgnoresUnknown(t *testing.T) {
	p, err := ParseProfiles([]byte(`{"profiles":{"storage":{"kernel":"k"}},"machines":{"52:54:00:12:34:56":"storage"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if prof, ok := p.Match(mustMAC(t, "52:54:00:12:34:57")); ok {
		t.Fatalf("unknown machine got %q, want ignored", prof)
	}
	if _, ok, err := p.Boot(mustMAC(t, "52:54:00:12:34:57"), "http://x"); ok || err != nil {
		t.Fatalf("Boot of unknown machine: ok=%v err=%v, want ignored", ok, err)
	}
}

func TestProfilesValidation(t *testing.T) {
	root, err := os.OpenRoot(filesRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tc := range []struct {
		name, json, wantErr string
	}{
		{"bad MAC", `{"profiles":{"storage":{"kernel":"vmlinuz"}},"machines":{"52:54:zz:00:00:01":"storage"}}`, `octet 3 ("zz")`},
		{"seven octets", `{"profiles":{"storage":{"kernel":"vmlinuz"}},"machines":{"52:54:00:00:00:01:02":"storage"}}`, "want 1 to 6 octets"},
		{"unknown profile name", `{"profiles":{"gaming":{"kernel":"vmlinuz"}}}`, `profile "gaming": unknown profile name`},
		{"machine names undefined profile", `{"profiles":{"storage":{"kernel":"vmlinuz"}},"machines":{"52:54:00:00:00:01":"erase"}}`, `profile "erase" is not defined`},
		{"default undefined", `{"default":"rescue","profiles":{"storage":{"kernel":"vmlinuz"}}}`, `default: profile "rescue" is not defined`},
		{"missing kernel file", `{"profiles":{"storage":{"kernel":"nope/vmlinuz"}}}`, `kernel "nope/vmlinuz"`},
		{"missing initrd file", `{"profiles":{"storage":{"kernel":"vmlinuz","initrd":["stowage.cpio.gz","gone.img"]}}}`, `initrd[1] "gone.img"`},
		{"kernel is a directory", `{"profiles":{"storage":{"kernel":"conf"}}}`, "not a regular file"},
		{"path escapes", `{"profiles":{"storage":{"kernel":"../etc/passwd"}}}`, "not a clean relative path"},
		{"absolute path", `{"profiles":{"storage":{"kernel":"/boot/vmlinuz"}}}`, "not a clean relative path"},
		{"ftp URL", `{"profiles":{"storage":{"kernel":"ftp://x/vmlinuz"}}}`, "want a relative path or an http(s) URL"},
		{"empty kernel", `{"profiles":{"storage":{"kernel":""}}}`, "kernel is empty"},
		{"template syntax", `{"profiles":{"storage":{"kernel":"vmlinuz","cmdline":"{{.MAC"}}}`, "cmdline template"},
		{"template unknown field", `{"profiles":{"storage":{"kernel":"vmlinuz","cmdline":"{{.Serial}}"}}}`, "Serial"},
		{"duplicate MAC spelled twice", `{"profiles":{"storage":{"kernel":"vmlinuz"}},"machines":{"52:54:00:00:00:01":"storage","52-54-00-00-00-01":"storage"}}`, "same address"},
		{"unknown field", `{"profiles":{"storage":{"kernel":"vmlinuz","kernal":"x"}}}`, `unknown field "kernal"`},
		{"no profiles", `{"default":""}`, "no profiles"},
		{"not JSON", `default: rescue`, "profile file"},
		{"trailing data", `{"profiles":{"storage":{"kernel":"vmlinuz"}}} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProfiles([]byte(tc.json), root.FS())
			if err == nil {
				t.Fatalf("accepted; want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestNormalizeMAC(t *testing.T) {
	for in, want := range map[string]string{
		"52:54:00:AB:CD:EF": "52:54:00:ab:cd:ef",
		"52-54-00-ab-cd-ef": "52:54:00:ab:cd:ef",
		"5254.00ab.cdef":    "52:54:00:ab:cd:ef",
		"52:54:00":          "52:54:00",
		"0A":                "0a",
	} {
		got, err := NormalizeMAC(in)
		if err != nil || got != want {
			t.Errorf("NormalizeMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "5", "52:54:0", "52:54:00:00:00:00:00:00", "g0:00", "52::00"} {
		if got, err := NormalizeMAC(bad); err == nil {
			t.Errorf("NormalizeMAC(%q) = %q, want error", bad, got)
		}
	}
}
