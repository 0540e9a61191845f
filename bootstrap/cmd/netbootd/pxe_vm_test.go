//go:build vmtest

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu"
)

// The real PXE test: in network namespaces made here, dnsmasq plays the
// site's DHCP server (addresses only, no PXE options), netbootd answers as
// proxyDHCP/TFTP/HTTP, and a QEMU guest with Debian's iPXE option ROM
// network-boots Debian's kernel and a busybox initramfs built here. The
// guest's init prints the profile from its kernel command line; it must be
// the profile the guest's MAC maps to (not the default).
//
// Topology (two namespaces, so the DHCP server and the proxy are two hosts
// as on a real site):
//
//	ns stw-lan-<id>:  br0 10.77.0.1/24 (netbootd) -- tap0 (QEMU guest)
//	                   \-- vd0 ===veth=== vd1 10.77.0.2/24 (dnsmasq) :ns stw-dhcp-<id>

const (
	guestMAC     = "52:54:00:5a:00:01"
	wantProfile  = "burnin"
	netbootIP    = "10.77.0.1"
	markerPrefix = "STOWAGE-NETBOOT-OK"
)

// TestVMPXEBootBIOS: SeaBIOS, the NIC's iPXE ROM, proxyDHCP.
func TestVMPXEBootBIOS(t *testing.T) {
	runPXE(t, pxeRun{uefi: false, proxy: true})
}

// TestVMPXEBootUEFI: OVMF, proxyDHCP.
func TestVMPXEBootUEFI(t *testing.T) {
	runPXE(t, pxeRun{uefi: true, proxy: true})
}

// TestVMPXEBootNoProxy: netbootd as HTTP server only (-dhcp=false) and the
// site's DHCP server handing out the script URL itself (dnsmasq
// --dhcp-boot, still no PXE options), the setup LAB.md timed. Its log
// shows how long iPXE waits between the DHCP offer and its request, for
// comparison with the proxyDHCP runs.
func TestVMPXEBootNoProxy(t *testing.T) {
	runPXE(t, pxeRun{uefi: false, proxy: false})
}

// TestVMPXEBootUEFIFirmware: OVMF's own PXE client (EDK2 PxeBcDxe on its
// VirtioNetDxe; the NIC has no option ROM), so the whole chain runs:
// proxyDHCP offer, the 4011 request, ipxe.efi over TFTP, then iPXE's DHCP
// and the HTTP script.
func TestVMPXEBootUEFIFirmware(t *testing.T) {
	runPXE(t, pxeRun{uefi: true, proxy: true, firmwarePXE: true})
}

type pxeRun struct {
	uefi        bool // OVMF instead of SeaBIOS
	proxy       bool // netbootd answers DHCP as a proxy
	firmwarePXE bool // no iPXE option ROM: the firmware's own PXE client boots
}

func (r pxeRun) String() string {
	fw := "BIOS"
	if r.uefi {
		fw = "UEFI"
	}
	switch {
	case !r.proxy:
		return fw + ", no proxyDHCP"
	case r.firmwarePXE:
		return fw + " firmware PXE, proxyDHCP, TFTP chainload"
	}
	return fw + ", proxyDHCP"
}

// need skips (or, under CI, fails) when a tool or file is missing.
func need(t *testing.T, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("missing %s (CI is set: this test must run; make deps installs it)", what)
	}
	t.Skipf("missing %s (run make deps as root)", what)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func lookPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

func runPXE(t *testing.T, run pxeRun) {
	uefi := run.uefi
	need(t, "root (network namespaces)", os.Geteuid() == 0)
	for _, tool := range []string{"qemu-system-x86_64", "dnsmasq", "ip", "flock"} {
		need(t, tool, lookPath(tool))
	}
	// The NIC's option ROM is QEMU's default for virtio-net-pci:
	// efi-virtio.rom from Debian's ipxe-qemu (/usr/lib/ipxe/qemu, on
	// QEMU's ROM search path), iPXE for legacy BIOS and as a UEFI driver in
	// one image. Naming it with romfile= (absolute or not, efi- or pxe-)
	// left SeaBIOS with no boot entry for the NIC on this QEMU 7.2, so the
	// test leaves the property alone.
	rom := "/usr/lib/ipxe/qemu/efi-virtio.rom"
	if uefi {
		need(t, "/usr/share/OVMF/OVMF_CODE.fd (ovmf)", exists("/usr/share/OVMF/OVMF_CODE.fd") && exists("/usr/share/OVMF/OVMF_VARS.fd"))
	}
	need(t, rom+" (ipxe-qemu)", exists(rom))
	need(t, "/bin/busybox (busybox-static)", exists("/bin/busybox"))
	if run.firmwarePXE {
		// Only the firmware's own PXE client fetches iPXE over TFTP
		// (Debian package ipxe, which make deps installs).
		need(t, "/usr/lib/ipxe/ipxe.efi and undionly.kpxe (ipxe)", exists("/usr/lib/ipxe/ipxe.efi") && exists("/usr/lib/ipxe/undionly.kpxe"))
	}
	kernel, err := qemu.FindKernel("/")
	need(t, fmt.Sprintf("a kernel (%v)", err), err == nil)

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// netbootd, built from this package.
	bin := filepath.Join(dir, "netbootd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build netbootd: %v\n%s", err, out)
	}

	// The files root: kernel, initramfs, profiles.
	files := filepath.Join(dir, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, kernel.Image, filepath.Join(files, "vmlinuz"))
	writeInitramfs(t, filepath.Join(files, "initrd.cpio"))
	profiles := fmt.Sprintf(`{
  "default": "rescue",
  "profiles": {
    "storage": {"kernel": "vmlinuz", "initrd": ["initrd.cpio"], "cmdline": "console=ttyS0 panic=-1 stowage.profile={{.Profile}} stowage.mac={{.MAC}}"},
    "burnin":  {"kernel": "vmlinuz", "initrd": ["initrd.cpio"], "cmdline": "console=ttyS0 panic=-1 stowage.profile={{.Profile}} stowage.mac={{.MAC}} stowage.server={{.ServerURL}}"},
    "rescue":  {"kernel": "vmlinuz", "initrd": ["initrd.cpio"], "cmdline": "console=ttyS0 panic=-1 stowage.profile={{.Profile}}"}
  },
  "machines": {"%s": "%s", "52:54:00": "storage"}
}`, guestMAC, wantProfile)
	if err := os.WriteFile(filepath.Join(files, "profiles.json"), []byte(profiles), 0o644); err != nil {
		t.Fatal(err)
	}

	// The TFTP root: real copies of Debian's iPXE binaries. Debian's
	// /usr/lib/ipxe/ipxe.efi is a symlink to /boot/ipxe.efi, which the
	// TFTP server rightly refuses as leaving its root.
	tftpRoot := filepath.Join(dir, "tftp")
	if err := os.MkdirAll(tftpRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/usr/lib/ipxe/ipxe.efi", "/usr/lib/ipxe/undionly.kpxe"} {
		if exists(f) {
			copyFile(t, f, filepath.Join(tftpRoot, filepath.Base(f)))
		}
	}

	// Namespaces with unique names; everything in them goes with them.
	id := make([]byte, 3)
	_, _ = rand.Read(id)
	lan, dhcp := "stw-lan-"+hex.EncodeToString(id), "stw-dhcp-"+hex.EncodeToString(id)
	t.Cleanup(func() {
		for _, ns := range []string{lan, dhcp} {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Logf("ip netns del %s: %v %s", ns, err, out)
			}
		}
	})
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	sh("ip", "netns", "add", lan)
	sh("ip", "netns", "add", dhcp)
	sh("ip", "-n", lan, "link", "set", "lo", "up")
	sh("ip", "-n", dhcp, "link", "set", "lo", "up")
	// STP off, so the bridge forwards from the moment a port has carrier
	// and sends no BPDUs that would make iPXE wait for the port to settle.
	sh("ip", "-n", lan, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
	sh("ip", "-n", lan, "tuntap", "add", "dev", "tap0", "mode", "tap")
	sh("ip", "-n", lan, "link", "set", "tap0", "master", "br0")
	sh("ip", "-n", lan, "link", "add", "vd0", "type", "veth", "peer", "name", "vd1", "netns", dhcp)
	sh("ip", "-n", lan, "link", "set", "vd0", "master", "br0")
	sh("ip", "-n", lan, "addr", "add", netbootIP+"/24", "dev", "br0")
	sh("ip", "-n", dhcp, "addr", "add", "10.77.0.2/24", "dev", "vd1")
	// The site router also advertises an IPv6 prefix (see the RA note at
	// dnsmasq below).
	sh("ip", "-n", dhcp, "-6", "addr", "add", "fd77::2/64", "dev", "vd1", "nodad")
	for _, l := range []string{"br0", "tap0", "vd0"} {
		sh("ip", "-n", lan, "link", "set", l, "up")
	}
	sh("ip", "-n", dhcp, "link", "set", "vd1", "up")

	// The site's DHCP server: addresses only, no PXE options. It also
	// sends IPv6 router advertisements (SLAAC only, no DHCPv6): iPXE
	// configures IPv4 (DHCP) and IPv6 (router discovery) together and
	// waits for both before it boots; on a link without an IPv6 router its
	// router solicitations time out after about 13 s, which is the idle
	// time after the DHCP ACK that LAB.md measured. Sites with IPv6 have
	// routers answering; the test models such a site.
	leases := filepath.Join(dir, "dnsmasq.leases")
	dnsmasqLog := &consoleLog{}
	dnsmasqArgs := []string{"netns", "exec", dhcp,
		"dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--user=root", "--port=0",
		"--interface=vd1", "--bind-interfaces", "--dhcp-range=10.77.0.100,10.77.0.150,255.255.255.0,1h",
		"--dhcp-leasefile=" + leases, "--log-dhcp", "--pid-file=",
		"--enable-ra", "--dhcp-range=::,constructor:vd1,ra-only"}
	if !run.proxy {
		dnsmasqArgs = append(dnsmasqArgs, "--dhcp-boot=http://"+netbootIP+":8080/boot/"+guestMAC+".ipxe")
	}
	startProc(t, ctx, "dnsmasq", dnsmasqLog, dnsmasqLog, "ip", dnsmasqArgs...)

	// netbootd.
	events := newEventLog()
	if os.Getenv("STOWAGE_VM_CONSOLE") != "" {
		events.copyTo = os.Stderr
	}
	startProc(t, ctx, "netbootd", io.Discard, events, "ip", "netns", "exec", lan, bin,
		"-dhcp="+fmt.Sprint(run.proxy), "-iface", "br0", "-http-listen", ":8080", "-tftp-listen", ":69", "-tftp-root", tftpRoot,
		"-profiles", filepath.Join(files, "profiles.json"), "-log-format", "json", "-log-level", "debug")
	if _, err := events.wait(ctx, 30*time.Second, func(e event) bool { return e.Msg == "netbootd serving" }); err != nil {
		t.Fatalf("netbootd did not start: %v\n%s", err, events.text())
	}

	// The guest.
	args := []string{"netns", "exec", lan, "qemu-system-x86_64", "-accel", "tcg", "-m", "512M", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + guestMAC + ",bootindex=1",
	}
	if run.firmwarePXE {
		args[len(args)-1] += ",romfile="
	}
	if uefi {
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		copyFile(t, "/usr/share/OVMF/OVMF_VARS.fd", vars)
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE.fd",
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	if !uefi {
		// SeaBIOS mirrors its text console (and so iPXE's messages) to
		// the serial port: failures show what iPXE said.
		// etc/sercon-port holds the port as a little-endian integer.
		port := filepath.Join(dir, "sercon-port")
		if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-fw_cfg", "name=etc/sercon-port,file="+port)
	}
	console := &consoleLog{}
	if os.Getenv("STOWAGE_VM_CONSOLE") != "" {
		console.copyTo = os.Stderr
	}
	// Hold the host-wide QEMU lock for the guest's life, so that the boot
	// timeout below counts from QEMU's start, not from the lock wait.
	unlock := lockHost(t, ctx, qemu.LockPath)
	t.Cleanup(unlock)
	qemuStart := time.Now()
	qemuExited := startProc(t, ctx, "qemu", console, console, "ip", args...)

	marker, markerAt, err := console.wait(ctx, 6*time.Minute, markerPrefix, qemuExited)
	if err != nil {
		t.Fatalf("no %s marker: %v\n--- console tail ---\n%s\n--- netbootd ---\n%s\n--- dnsmasq ---\n%s",
			markerPrefix, err, console.tail(40), events.text(), dnsmasqLog.tail(200))
	}
	t.Logf("marker: %s", marker)
	m := regexp.MustCompile(`profile=(\S+) mac=(\S+)`).FindStringSubmatch(marker)
	if m == nil || m[1] != wantProfile || m[2] != guestMAC {
		t.Fatalf("booted %q, want profile=%s mac=%s (the MAC's profile, not the default)", marker, wantProfile, guestMAC)
	}

	// The first DHCPDISCOVER: as netbootd answered it (proxy), or as
	// dnsmasq logged it.
	stages := events.stages(guestMAC)
	dhcpEvents := dnsmasqLog.matching(regexp.MustCompile(`DHCP(DISCOVER|OFFER|REQUEST|ACK)\(vd1\).*` + guestMAC))
	var first time.Time
	if run.proxy {
		for _, s := range stages {
			if s.Stage == "dhcp_offer" {
				first = s.Time
				break
			}
		}
	} else if len(dhcpEvents) > 0 {
		first = dhcpEvents[0].at
	}
	if first.IsZero() {
		t.Fatalf("no DHCPDISCOVER from %s seen:\n%s\n%s", guestMAC, events.text(), dnsmasqLog.tail(200))
	}
	// The timeline, netbootd's stages and the site DHCP server's messages.
	type step struct {
		at   time.Time
		what string
	}
	var steps []step
	for _, e := range dhcpEvents {
		steps = append(steps, step{e.at, "dnsmasq " + regexp.MustCompile(`DHCP[A-Z]+`).FindString(e.line)})
	}
	seen := map[string]bool{}
	for _, s := range stages {
		seen[s.Stage] = true
		if s.Profile != "" && s.Profile != wantProfile {
			t.Errorf("stage %s served profile %s", s.Stage, s.Profile)
		}
		steps = append(steps, step{s.Time, fmt.Sprintf("netbootd %s %s %s", s.Stage, s.Client, s.File)})
	}
	steps = append(steps, step{markerAt, "guest marker"})
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at.Before(steps[j].at) })
	for _, s := range steps {
		t.Logf("  +%6.2fs %s", s.at.Sub(first).Seconds(), s.what)
	}
	want := []string{"script", "kernel", "initrd"}
	if run.proxy {
		want = append([]string{"dhcp_offer"}, want...)
	}
	if run.firmwarePXE {
		want = append(want, "dhcp_ack", "tftp")
	}
	for _, st := range want {
		if !seen[st] {
			t.Errorf("stage %s never served to %s", st, guestMAC)
		}
	}
	t.Logf("QEMU start to first DHCPDISCOVER: %.1fs (firmware)", first.Sub(qemuStart).Seconds())
	t.Logf("first DHCPDISCOVER to marker: %.1fs (%s)", markerAt.Sub(first).Seconds(), run)

	// The address came from dnsmasq, not from us.
	lease, err := os.ReadFile(leases)
	if err != nil || !strings.Contains(string(lease), guestMAC) {
		t.Errorf("dnsmasq leases lack %s (%v):\n%s", guestMAC, err, lease)
	}
	// /metrics counted the stages.
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", lan, "/bin/busybox", "wget", "-q", "-O", "-", "http://"+netbootIP+":8080/metrics").CombinedOutput()
	if err != nil {
		t.Fatalf("metrics: %v %s", err, out)
	}
	for _, want := range []string{
		`stowage_netboot_stage_total{profile="burnin",stage="kernel"} 1`,
		`stowage_netboot_stage_total{profile="burnin",stage="script"}`,
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeInitramfs writes a newc cpio: busybox, /dev/console and an /init
// that prints the marker with the profile and MAC from the kernel command
// line, then powers off.
func writeInitramfs(t *testing.T, out string) {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	initScript := `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
p=none; m=none
for x in $(/bin/busybox cat /proc/cmdline); do
  case "$x" in
    stowage.profile=*) p="${x#stowage.profile=}";;
    stowage.mac=*) m="${x#stowage.mac=}";;
  esac
done
echo "` + markerPrefix + ` profile=$p mac=$m"
/bin/busybox poweroff -f
`
	var b bytes.Buffer
	ino := uint32(1)
	entry := func(name string, mode uint32, data []byte, rmaj, rmin uint32) {
		fmt.Fprintf(&b, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rmaj, rmin, len(name)+1, 0)
		ino++
		b.WriteString(name)
		b.WriteByte(0)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(data)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for _, d := range []string{"bin", "dev", "proc", "sys"} {
		entry(d, syscall.S_IFDIR|0o755, nil, 0, 0)
	}
	entry("dev/console", syscall.S_IFCHR|0o600, nil, 5, 1)
	entry("bin/busybox", syscall.S_IFREG|0o755, bb, 0, 0)
	entry("init", syscall.S_IFREG|0o755, []byte(initScript), 0, 0)
	entry("TRAILER!!!", 0, nil, 0, 0)
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startProc starts a command in its own process group and kills the group
// when the test ends.
func startProc(t *testing.T, ctx context.Context, name string, stdout, stderr io.Writer, argv0 string, args ...string) <-chan struct{} {
	t.Helper()
	cmd := exec.Command(argv0, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	t.Cleanup(func() {
		stop()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	return done
}

// consoleLog keeps the guest console and when each line arrived.
type consoleLog struct {
	copyTo io.Writer
	mu     sync.Mutex
	buf    []byte
	lines  []string
	at     []time.Time
	grew   chan struct{}
}

func (c *consoleLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.copyTo != nil {
		_, _ = c.copyTo.Write(p)
	}
	now := time.Now()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, strings.TrimRight(string(c.buf[:i]), "\r"))
		c.at = append(c.at, now)
		c.buf = c.buf[i+1:]
	}
	if c.grew != nil {
		close(c.grew)
		c.grew = nil
	}
	return len(p), nil
}

// wait returns the first line containing substr, waiting at most d, and
// giving up early when exited closes (the guest is gone).
func (c *consoleLog) wait(ctx context.Context, d time.Duration, substr string, exited <-chan struct{}) (string, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		c.mu.Lock()
		for i, l := range c.lines {
			if strings.Contains(l, substr) {
				c.mu.Unlock()
				return l, c.at[i], nil
			}
		}
		if c.grew == nil {
			c.grew = make(chan struct{})
		}
		grew := c.grew
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", time.Time{}, fmt.Errorf("after %v: %w", d, ctx.Err())
		case <-exited:
			// One more look: cmd.Wait has copied all output by now.
			c.mu.Lock()
			for i, l := range c.lines {
				if strings.Contains(l, substr) {
					c.mu.Unlock()
					return l, c.at[i], nil
				}
			}
			c.mu.Unlock()
			return "", time.Time{}, errors.New("QEMU exited")
		case <-grew:
		}
	}
}

type timedLine struct {
	at   time.Time
	line string
}

// matching returns the lines that match re, with their arrival times.
func (c *consoleLog) matching(re *regexp.Regexp) []timedLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []timedLine
	for i, l := range c.lines {
		if re.MatchString(l) {
			out = append(out, timedLine{c.at[i], l})
		}
	}
	return out
}

func (c *consoleLog) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n") + "\n" + string(c.buf)
}

// event is one JSON log record of netbootd.
type event struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Stage   string    `json:"stage"`
	MAC     string    `json:"mac"`
	Profile string    `json:"profile"`
	Client  string    `json:"client"`
	File    string    `json:"file"`
	raw     string
}

// eventLog parses netbootd's JSON log as it is written.
type eventLog struct {
	copyTo io.Writer
	pw     *io.PipeWriter
	mu     sync.Mutex
	ev     []event
	gr     chan struct{}
}

func newEventLog() *eventLog {
	pr, pw := io.Pipe()
	l := &eventLog{pw: pw}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = event{Msg: sc.Text(), Time: time.Now()}
			}
			e.raw = sc.Text()
			l.mu.Lock()
			l.ev = append(l.ev, e)
			if l.gr != nil {
				close(l.gr)
				l.gr = nil
			}
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventLog) Write(p []byte) (int, error) {
	if l.copyTo != nil {
		_, _ = l.copyTo.Write(p)
	}
	return l.pw.Write(p)
}

// lockHost takes the host-wide QEMU lock (flock on path), waiting as long
// as ctx allows.
func lockHost(t *testing.T, ctx context.Context, path string) func() {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			if w := time.Since(start); w > time.Second {
				t.Logf("waited %v for the host QEMU lock", w.Round(time.Second))
			}
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			t.Fatalf("lock %s: %v", path, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waited %v for the host QEMU lock %s: %v", time.Since(start).Round(time.Second), path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (l *eventLog) wait(ctx context.Context, d time.Duration, match func(event) bool) (event, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		l.mu.Lock()
		for _, e := range l.ev {
			if match(e) {
				l.mu.Unlock()
				return e, nil
			}
		}
		if l.gr == nil {
			l.gr = make(chan struct{})
		}
		gr := l.gr
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return event{}, ctx.Err()
		case <-gr:
		}
	}
}

func (l *eventLog) stages(mac string) []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []event
	for _, e := range l.ev {
		if e.Msg == "boot stage" && e.MAC == mac {
			out = append(out, e)
		}
	}
	return out
}

func (l *eventLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sb strings.Builder
	for _, e := range l.ev {
		sb.WriteString(e.raw)
		sb.WriteByte('\n')
	}
	return sb.String()
}
