package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServerAddr(t *testing.T) {
	ip, err := serverAddr(options{serverIP: "10.1.2.3"})
	if err != nil || ip.String() != "10.1.2.3" {
		t.Fatalf("serverAddr: %v %v", ip, err)
	}
	ip, err = serverAddr(options{iface: "lo"})
	if err != nil || ip.String() != "127.0.0.1" {
		t.Fatalf("serverAddr(-iface lo): %v %v", ip, err)
	}
	for _, o := range []options{{serverIP: "fe80::1"}, {serverIP: "nope"}, {}, {iface: "no-such-if0"}} {
		if ip, err := serverAddr(o); err == nil {
			t.Errorf("serverAddr(%+v) = %v, want an error", o, ip)
		}
	}
}

func TestNewLogger(t *testing.T) {
	if _, err := newLogger("json", "debug"); err != nil {
		t.Fatal(err)
	}
	if _, err := newLogger("xml", "info"); err == nil {
		t.Error("-log-format xml accepted")
	}
	if _, err := newLogger("text", "loud"); err == nil {
		t.Error("-log-level loud accepted")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{serverIP: "127.0.0.1", httpListen: "127.0.0.1:0"}, "give -profiles FILE or -api URL"},
		{options{serverIP: "127.0.0.1", httpListen: "127.0.0.1:0", api: "http://x", profiles: "p.json"}, "not both"},
		{options{serverIP: "127.0.0.1", httpListen: "127.0.0.1:0", profiles: t.TempDir() + "/none.json"}, "profile file"},
		{options{serverIP: "127.0.0.1", httpListen: "127.0.0.1:http"}, "numeric port"},
	} {
		err := run(context.Background(), tc.o, log)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func TestCheckServable(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "undionly.kpxe"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := checkServable(root, "undionly.kpxe"); err != nil {
		t.Errorf("undionly.kpxe: %v", err)
	}
	for _, bad := range []string{"ipxe.efi", "missing.efi", "../x", "."} {
		if err := checkServable(root, bad); err == nil {
			t.Errorf("%s: servable, want an error", bad)
		}
	}
}
