package nodeinit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
)

func TestConfigURLFrom(t *testing.T) {
	msg := func(opt []byte) *dhcpv4.DHCPv4 {
		p, err := dhcpv4.New()
		if err != nil {
			t.Fatal(err)
		}
		if opt != nil {
			p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(ConfigURLOption), opt))
		}
		return p
	}
	for _, c := range []struct {
		opt     []byte
		ok, bad string
	}{
		{nil, "", ""},
		{[]byte("http://10.0.0.1:8080/node.conf"), "http://10.0.0.1:8080/node.conf", ""},
		{[]byte("https://cfg.example/n\x00"), "https://cfg.example/n", ""}, // NUL-terminated, as some servers send strings
		{[]byte("tftp://10.0.0.1/x"), "", "tftp://10.0.0.1/x"},
		{[]byte("http://"), "", "http://"},
		{[]byte{0xff, 0xfe}, "", "\xff\xfe"},
	} {
		ok, bad := configURLFrom(msg(c.opt))
		if ok != c.ok || bad != c.bad {
			t.Errorf("option %q: got (%q, %q), want (%q, %q)", c.opt, ok, bad, c.ok, c.bad)
		}
	}
	if ok, bad := configURLFrom(nil); ok != "" || bad != "" {
		t.Errorf("nil message: %q %q", ok, bad)
	}
}

// dhcpChildEnv makes the test binary, re-run inside the client network
// namespace, do the DHCP side of TestDHCPConfigURLOption.
const dhcpChildEnv = "STOWAGE_DHCP_CHILD_IFACE"

// TestDHCPConfigURLOption runs the init's DHCP client against a real DHCP
// server: dnsmasq in one network namespace serves option 224 (the config
// URL) over a veth pair to this test binary re-run in another namespace,
// which leases an address and reads the URL. dnsmasq's log shows the
// node's vendor class and that it asked for option 224.
func TestDHCPConfigURLOption(t *testing.T) {
	if iface := os.Getenv(dhcpChildEnv); iface != "" {
		dhcpChild(t, iface)
		return
	}
	need := func(ok bool, why string) {
		if !ok {
			if os.Getenv("CI") != "" {
				t.Fatal(why)
			}
			t.Skip(why)
		}
	}
	need(os.Geteuid() == 0, "needs root (network namespaces)")
	for _, tool := range []string{"ip", "dnsmasq"} {
		_, err := exec.LookPath(tool)
		need(err == nil, tool+" not installed (make deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id := fmt.Sprint(os.Getpid())
	srv, cli := "stw-dsrv-"+id, "stw-dcli-"+id
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srv, cli} {
		sh("netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	}
	sh("-n", cli, "link", "add", "eth0", "type", "veth", "peer", "name", "vs0", "netns", srv)
	sh("-n", srv, "addr", "add", "10.78.0.1/24", "dev", "vs0")
	sh("-n", srv, "link", "set", "vs0", "up")
	sh("-n", cli, "link", "set", "lo", "up")

	// The child runs in another network namespace but on this host's
	// files: prove it left /etc/resolv.conf alone.
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	t.Cleanup(func() {
		if now, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(now, resolv) {
			t.Errorf("the DHCP child changed the host's /etc/resolv.conf: %q -> %q", resolv, now)
		}
	})
	// The lease's Configure writes the DNS servers to /etc/resolv.conf;
	// `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf over it in
	// the child's own mount namespace.
	etc := filepath.Join("/etc/netns", cli)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(etc) })
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const url = "http://10.78.0.1:8080/node.conf"
	dir := t.TempDir()
	var dlog syncBuffer
	dm := exec.CommandContext(ctx, "ip", "netns", "exec", srv, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--user=root", "--port=0", "--pid-file="+filepath.Join(dir, "pid"), "--interface=vs0", "--bind-interfaces",
		"--dhcp-range=10.78.0.10,10.78.0.50,255.255.255.0,1h", "--dhcp-leasefile="+filepath.Join(dir, "leases"),
		"--log-dhcp", "--log-facility=-", fmt.Sprintf("--dhcp-option=%d,%s", ConfigURLOption, url))
	dm.Stdout, dm.Stderr = &dlog, &dlog
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dm.Process.Kill(); _ = dm.Wait() })

	child := exec.CommandContext(ctx, "ip", "netns", "exec", cli, os.Args[0], "-test.run", "^TestDHCPConfigURLOption$", "-test.v")
	child.Env = append(os.Environ(), dhcpChildEnv+"=eth0")
	out, err := child.CombinedOutput()
	if err != nil {
		t.Fatalf("DHCP client in %s: %v\n%s\n--- dnsmasq ---\n%s", cli, err, out, dlog.String())
	}
	var leases []Lease
	for _, l := range strings.Split(string(out), "\n") {
		if j, ok := strings.CutPrefix(strings.TrimSpace(l), "LEASES "); ok {
			if err := json.Unmarshal([]byte(j), &leases); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(leases) != 1 || leases[0].Iface != "eth0" || leases[0].ConfigURL != url || leases[0].BadConfigURL != "" {
		t.Fatalf("leases %+v, want eth0 with config URL %s\n%s\n--- dnsmasq ---\n%s", leases, url, out, dlog.String())
	}
	ip, _, err := net.ParseCIDR(leases[0].Addr)
	if err != nil || !strings.HasPrefix(ip.String(), "10.78.0.") || ip.String() == "10.78.0.1" {
		t.Fatalf("leased address %q not from dnsmasq's range", leases[0].Addr)
	}
	log := dlog.String()
	for _, want := range []string{"vendor class: " + VendorClass, "requested options: ", "DHCPACK(vs0)"} {
		if !strings.Contains(log, want) {
			t.Errorf("dnsmasq log lacks %q:\n%s", want, log)
		}
	}
	if !strings.Contains(log, "224") {
		t.Errorf("dnsmasq did not log option 224 (requested or sent):\n%s", log)
	}
	t.Logf("leased %s on eth0 with config URL %s", leases[0].Addr, leases[0].ConfigURL)
}

// dhcpChild runs inside the client namespace: the init's DHCP path on the
// veth, then prints the leases for the parent.
func dhcpChild(t *testing.T, iface string) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var logs bytes.Buffer
	leases, err := dhcpOn(ctx, []netlink.Link{l}, 30*time.Second, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	j, _ := json.Marshal(leases)
	fmt.Printf("LEASES %s\n", j)
}

func TestChooseConfigURL(t *testing.T) {
	leases := []Lease{
		{Iface: "eth0", BadConfigURL: "tftp://x/y"},
		{Iface: "eth1", ConfigURL: "http://a/node.conf"},
		{Iface: "eth2", ConfigURL: "http://b/node.conf"},
	}
	url, src, probs := ChooseConfigURL(DefaultConfig(), leases)
	if url != "http://a/node.conf" || src != "DHCP option 224 on eth1" || len(probs) != 1 || !strings.Contains(probs[0], `"tftp://x/y" is not an http(s) URL`) {
		t.Errorf("from DHCP: %q %q %q", url, src, probs)
	}
	cfg := DefaultConfig()
	cfg.ConfigURL = "http://cmdline/node.conf"
	if url, src, _ := ChooseConfigURL(cfg, leases); url != cfg.ConfigURL || src != "kernel command line" {
		t.Errorf("the command line must win: %q %q", url, src)
	}
	if url, _, probs := ChooseConfigURL(DefaultConfig(), nil); url != "" || probs != nil {
		t.Errorf("nothing: %q %q", url, probs)
	}
}
