// Package nodeinit is the logic of the Stowage node's init (PID 1 of the
// image, bootstrap/cmd/init): it mounts the kernel filesystems, reads the
// node config from the kernel command line (stowage.* keys), an HTTP URL
// given there or in DHCP option 224, loads the kernel modules the devices
// ask for (modalias against modules.alias), brings up the network with
// DHCP, starts hwmgr and the OSD and supervises them with back-off,
// prints a status banner, offers a rescue shell on the console
// and shuts the node down cleanly on SIGTERM, SIGINT (ctrl-alt-del),
// SIGPWR or the ACPI power button.
//
// Every piece reads the hardware through a root path (sysfs, /dev) so the
// tests run it on fixture trees; only Init.Run touches the real machine.
package nodeinit

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Init is the node's PID 1. Zero values are the documented defaults.
type Init struct {
	// Version is shown in the banner.
	Version string
	// Console is where the init writes (default os.Stdout); Input is where
	// it reads the rescue-shell request (default os.Stdin).
	Console io.Writer
	Input   io.Reader
	// SysRoot, DevRoot, ProcRoot: default /sys, /dev, /proc.
	SysRoot, DevRoot, ProcRoot string
	// ModulesDir is the parent of /lib/modules/<release>; default /lib/modules.
	ModulesDir string
	// Hwmgr and OSD are the daemon binaries; defaults /bin/hwmgr and
	// /bin/osd (an image without the OSD boots on, reporting it). Shell
	// is the rescue shell; default /bin/gosh.
	Hwmgr, OSD, Shell string
	// ShellArgs are the shell's arguments; default "-comp=false": gosh's
	// plain line editor, which works on any serial console (the rich one
	// queries the terminal and hangs on consoles that do not answer).
	ShellArgs []string
	// ReadyTimeout bounds the wait for hwmgr's /readyz before the banner
	// is printed anyway; default 120s.
	ReadyTimeout time.Duration

	log    *slog.Logger
	reaper Reaper
}

func (in *Init) defaults() {
	if in.Console == nil {
		in.Console = os.Stdout
	}
	if in.Input == nil {
		in.Input = os.Stdin
	}
	in.SysRoot = or(in.SysRoot, "/sys")
	in.DevRoot = or(in.DevRoot, "/dev")
	in.ProcRoot = or(in.ProcRoot, "/proc")
	in.ModulesDir = or(in.ModulesDir, "/lib/modules")
	in.Hwmgr = or(in.Hwmgr, "/bin/hwmgr")
	in.OSD = or(in.OSD, "/bin/osd")
	in.Shell = or(in.Shell, "/bin/gosh")
	if in.ShellArgs == nil {
		in.ShellArgs = []string{"-comp=false"}
	}
	in.Version = or(in.Version, "dev")
	if in.ReadyTimeout <= 0 {
		in.ReadyTimeout = 2 * time.Minute
	}
	in.log = slog.New(slog.NewTextHandler(in.Console, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Go runs fn in a goroutine that prints a panic instead of crashing
// PID 1.
func (in *Init) Go(name string, fn func()) {
	go func() {
		defer in.Recover(name)
		fn()
	}()
}

// Recover prints a recovered panic with its stack; defer it.
func (in *Init) Recover(where string) {
	if r := recover(); r != nil {
		fmt.Fprintf(in.Console, "stowage-init: PANIC in %s (recovered, the node keeps running): %v\n%s\n", where, r, debug.Stack())
	}
}

// Mount mounts the kernel filesystems. A filesystem already mounted is
// not an error.
func Mount() error {
	var errs []error
	for _, m := range []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "ptmxmode=0666,mode=0620"},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"debugfs", "/sys/kernel/debug", "debugfs", 0, ""},
	} {
		if strings.HasPrefix(m.dst, "/sys/") {
			if _, err := os.Stat(m.dst); err != nil {
				continue // the kernel makes these mount points when it has the filesystem
			}
		} else if err := os.MkdirAll(m.dst, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("mkdir %s: %w", m.dst, err))
			continue
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err))
		}
	}
	return errors.Join(errs...)
}

// Run is the whole life of the node after the mounts: it returns nil when
// a shutdown was asked for and everything is stopped and synced (the
// caller powers off), or the panic it recovered from.
func (in *Init) Run(ctx context.Context) (err error) {
	in.defaults()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("init panicked: %v\n%s", r, debug.Stack())
		}
	}()
	bootStart := time.Now()
	var problems []string
	problem := func(msg string) {
		problems = append(problems, msg)
		fmt.Fprintf(in.Console, "stowage-init: %s\n", msg)
	}

	// Shutdown requests: SIGTERM, SIGINT (ctrl-alt-del once CAD is off),
	// SIGPWR, and the power button.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	shutdown := make(chan string, 4)
	in.Go("signals", func() {
		for {
			select {
			case s := <-sigs:
				if s == syscall.SIGCHLD {
					in.reaper.Reap()
					continue
				}
				shutdown <- "signal " + s.String()
			case <-ctx.Done():
				return
			}
		}
	})

	cmdline, err := os.ReadFile(filepath.Join(in.ProcRoot, "cmdline"))
	if err != nil {
		problem(fmt.Sprintf("cannot read the kernel command line: %v; using defaults", err))
	}
	cfg, err := ParseCmdline(string(cmdline))
	if err != nil {
		for _, e := range strings.Split(err.Error(), "\n") {
			problem(e + " (default kept)")
		}
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		problem(fmt.Sprintf("sethostname %q: %v", cfg.Hostname, err))
	}

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	ml := &ModuleLoader{SysRoot: in.SysRoot, Dir: filepath.Join(in.ModulesDir, release), Log: in.log}
	t0 := time.Now()
	// evdev has no modalias; the power button is read through it.
	loaded, err := ml.LoadAll(ctx, append([]string{"evdev"}, cfg.Modules...))
	in.log.Info("modules loaded", "count", len(loaded), "took", time.Since(t0).Round(time.Millisecond), "modules", strings.Join(loaded, ","))
	if err != nil {
		problem(fmt.Sprintf("some modules did not load: %v", strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	in.Go("power button", func() {
		WatchPowerButton(ctx, in.DevRoot, func() { shutdown <- "power button" })
	})

	if err := LoopbackUp(); err != nil {
		problem(err.Error())
	}
	netDone := make(chan struct{})
	var leases []Lease // written before netDone closes
	netCfg := cfg      // the goroutine's own copy: cfg may change below
	in.Go("network", func() {
		defer close(netDone)
		cfg := netCfg
		if cfg.Net != "dhcp" {
			in.log.Info("network: stowage.net=none, not configuring")
			return
		}
		// DHCP is bounded by its context, but crypto/rand (the transaction
		// ID) blocks until the kernel's RNG is seeded, which can take
		// minutes on a machine without RDRAND or virtio-rng: bound the
		// wait here too.
		type result struct {
			leases []Lease
			err    error
		}
		res := make(chan result, 1)
		in.Go("dhcp", func() {
			ls, err := DHCP(ctx, cfg.DHCPTimeout, in.log)
			res <- result{ls, err}
		})
		var err error
		select {
		case r := <-res:
			leases, err = r.leases, r.err
		case <-time.After(cfg.DHCPTimeout + 2*time.Second):
			err = fmt.Errorf("network: DHCP did not finish within %s (is the kernel's RNG seeded? it goes on in the background)", cfg.DHCPTimeout)
		case <-ctx.Done():
			return
		}
		if err != nil {
			fmt.Fprintf(in.Console, "stowage-init: %v; the node runs without network (rescue shell: press Enter)\n", err)
			return
		}
		for _, l := range leases {
			in.log.Info("network configured", "iface", l.Iface, "addr", l.Addr, "config_url", l.ConfigURL)
		}
	})

	// The daemons start with the node's config, which may come from the
	// network: wait for DHCP (bounded) first.
	netUp := cfg.Net != "dhcp"
	if !netUp {
		select {
		case <-netDone:
			netUp = true
		case <-time.After(cfg.DHCPTimeout + 5*time.Second):
		}
	}
	var got []Lease
	if netUp {
		got = leases // complete: written before netDone closed
	}
	configURL, source, bad := ChooseConfigURL(cfg, got)
	for _, b := range bad {
		problem(b)
	}
	if configURL != "" {
		cur := cfg
		cur.ConfigURL = configURL
		next, err := FetchConfig(ctx, cur, 15*time.Second)
		if err != nil {
			for _, e := range strings.Split(err.Error(), "\n") {
				problem(e)
			}
		} else {
			in.log.Info("config fetched", "url", configURL, "from", source)
		}
		if next.Hostname != cfg.Hostname {
			if err := unix.Sethostname([]byte(next.Hostname)); err != nil {
				problem(fmt.Sprintf("sethostname %q: %v", next.Hostname, err))
			}
		}
		if more, err := ml.LoadAll(ctx, next.Modules); err != nil {
			problem(fmt.Sprintf("some modules did not load: %v", strings.ReplaceAll(err.Error(), "\n", "; ")))
		} else if len(more) > 0 {
			in.log.Info("modules loaded", "count", len(more), "modules", strings.Join(more, ","))
		}
		cfg = next
	}

	var wg sync.WaitGroup
	tokenArgs, err := writeTokenFiles(cfg)
	if err != nil {
		problem(fmt.Sprintf("daemons start without tokens: %v", err))
	}
	in.supervise(ctx, &wg, "hwmgr", in.Hwmgr, append([]string{"serve", "-listen", cfg.HwmgrListen}, tokenArgs...), 0)
	osdState := "starting"
	if _, err := os.Stat(in.OSD); err != nil {
		osdState = "not started: " + err.Error()
		problem("osd: " + osdState)
	} else {
		// The OSD flushes its drives on SIGTERM; give it time to.
		// The OSD takes the drives it finds at start: let the disks the
		// drivers are still probing (AHCI links, SCSI scans) show up.
		n, settled := SettleBlockDevices(ctx, in.SysRoot, 2*time.Second, 20*time.Second)
		in.log.Info("block devices settled", "count", n, "settled", settled)
		devices := cfg.OSDDevices
		if devices == "conventional" {
			devices, err = ConventionalDrives(in.SysRoot, in.DevRoot)
			if err != nil {
				problem(fmt.Sprintf("osd: stowage.osd.devices=conventional: %v", err))
			}
			in.log.Info("osd drives: the conventional ones", "devices", devices)
		}
		in.supervise(ctx, &wg, "osd", in.OSD, append([]string{"-listen", cfg.OSDListen, "-devices", devices}, tokenArgs...), 25*time.Second)
	}

	in.Go("banner", func() {
		ready := in.waitReady(ctx, cfg.HwmgrListen, in.ReadyTimeout)
		select {
		case <-netDone:
		case <-ctx.Done():
			return
		}
		osd := osdState
		if osd == "starting" && in.waitReady(ctx, cfg.OSDListen, time.Millisecond) {
			osd = "ready"
		}
		in.printBanner(cfg, ready, osd, problems, bootStart)
		if !ready {
			if in.waitReady(ctx, cfg.HwmgrListen, time.Hour) {
				in.printBanner(cfg, true, osd, problems, bootStart)
			}
		}
	})
	if osdState == "starting" {
		in.Go("osd ready", func() {
			if in.waitReady(ctx, cfg.OSDListen, time.Hour) {
				fmt.Fprintf(in.Console, "%s at %s%s\n", OSDReadyMarker, strings.Join(OSDURLs(cfg.OSDListen, Addresses()), ", "), in.uptime(bootStart))
			}
		})
	}
	in.Go("rescue shell", func() { in.rescueLoop(ctx, cfg.Rescue) })

	why := <-shutdown
	fmt.Fprintf(in.Console, "stowage-init: shutting down (%s): stopping daemons\n", why)
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(in.Console, "stowage-init: daemons still running after 30s; going on")
	}
	unix.Sync()
	if err := FlushDrives(in.SysRoot, in.DevRoot); err != nil {
		fmt.Fprintf(in.Console, "stowage-init: %v\n", err)
	}
	fmt.Fprintln(in.Console, "stowage-init: drives synced; powering off")
	return nil
}

// ChooseConfigURL picks the node config document's URL: the command
// line's stowage.config_url wins, else the first valid option
// ConfigURLOption among the DHCP leases. It returns where the URL came
// from and a problem line for every invalid option value.
func ChooseConfigURL(cfg Config, leases []Lease) (url, source string, problems []string) {
	if cfg.ConfigURL != "" {
		url, source = cfg.ConfigURL, "kernel command line"
	}
	for _, l := range leases {
		if l.BadConfigURL != "" {
			problems = append(problems, fmt.Sprintf("DHCP option %d on %s: %q is not an http(s) URL (ignored)", ConfigURLOption, l.Iface, l.BadConfigURL))
		}
		if url == "" && l.ConfigURL != "" {
			url, source = l.ConfigURL, fmt.Sprintf("DHCP option %d on %s", ConfigURLOption, l.Iface)
		}
	}
	return url, source, problems
}

// Emergency runs the rescue shell on the console over and over: what PID 1
// does when Run failed, instead of exiting (which panics the kernel).
func (in *Init) Emergency(why error) {
	in.defaults()
	for {
		func() {
			defer in.Recover("emergency shell")
			fmt.Fprintf(in.Console, "stowage-init: EMERGENCY: %v\nstowage-init: starting %s; power off with ctrl-alt-del or the power button\n", why, in.Shell)
			cmd := exec.Command(in.Shell, in.ShellArgs...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
			cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "TERM=linux"}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Run(); err != nil {
				fmt.Fprintf(in.Console, "stowage-init: shell: %v\n", err)
			}
		}()
		time.Sleep(time.Second)
	}
}

// writeTokenFiles writes the bearer tokens to 0600 files under
// /run/stowage (never on argv) and returns the daemons' flags naming them.
func writeTokenFiles(cfg Config) ([]string, error) {
	var args []string
	if len(cfg.AdminTokens) == 0 && len(cfg.ReadTokens) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll("/run/stowage", 0o700); err != nil {
		return nil, err
	}
	for _, tf := range []struct {
		flag, file string
		toks       []string
	}{{"-admin-token-file", "/run/stowage/admin-tokens", cfg.AdminTokens}, {"-read-token-file", "/run/stowage/read-tokens", cfg.ReadTokens}} {
		if len(tf.toks) == 0 {
			continue
		}
		if err := os.WriteFile(tf.file, []byte(strings.Join(tf.toks, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		args = append(args, tf.flag, tf.file)
	}
	return args, nil
}

// supervise starts a daemon's supervisor (restart with back-off, output
// prefixed "name: " on the console, SIGTERM then SIGKILL after stop
// (default 10s) when ctx ends).
func (in *Init) supervise(ctx context.Context, wg *sync.WaitGroup, name, path string, args []string, stop time.Duration) {
	s := &Supervisor{
		Name: name, Path: path, Args: args, Output: in.Console, Log: in.log, StopTimeout: stop,
		Env:   []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root"},
		Start: in.reaper.Start, Untrack: in.reaper.Untrack,
	}
	wg.Add(1)
	in.Go(name+" supervisor", func() {
		defer wg.Done()
		s.Run(ctx)
	})
}

// waitReady polls hwmgr's /readyz on the loopback until it answers 200.
func (in *Init) waitReady(ctx context.Context, listen string, timeout time.Duration) bool {
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return false
}

func (in *Init) uptime(bootStart time.Time) string {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return ""
	}
	return fmt.Sprintf(" (kernel uptime %ds, init %.1fs)", si.Uptime, time.Since(bootStart).Seconds())
}

func (in *Init) printBanner(cfg Config, ready bool, osdState string, problems []string, bootStart time.Time) {
	drives, err := Drives(in.SysRoot)
	if err != nil {
		problems = append(problems, "drives: "+err.Error())
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	addrs := Addresses()
	b := Banner{
		Version: in.Version, Kernel: unix.ByteSliceToString(uts.Release[:]), Hostname: cfg.Hostname,
		Addresses: addrs, Drives: drives, APIs: APIURLs(cfg.HwmgrListen, addrs), Ready: ready, Problems: problems,
		OSDAPIs: OSDURLs(cfg.OSDListen, addrs), OSDState: osdState,
	}
	uptime := in.uptime(bootStart)
	fmt.Fprintf(in.Console, "\n%s", b)
	if ready {
		fmt.Fprintf(in.Console, "stowage-init: hwmgr API ready%s\n", uptime)
	}
}

// rescueLoop starts the rescue shell at once when now is set, and then
// every time Enter is pressed on the console.
func (in *Init) rescueLoop(ctx context.Context, now bool) {
	r := bufio.NewReader(in.Input)
	for ctx.Err() == nil {
		if !now {
			if _, err := r.ReadString('\n'); err != nil {
				return // no console input (e.g. QEMU without stdin)
			}
		}
		now = false
		if ctx.Err() != nil {
			return
		}
		fmt.Fprintf(in.Console, "stowage-init: rescue shell %s (exit to return; the daemons keep running)\n", in.Shell)
		cmd := exec.Command(in.Shell, in.ShellArgs...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env = []string{"PATH=/bin:/sbin:/usr/bin:/usr/sbin", "HOME=/root", "TERM=linux"}
		cmd.Dir = "/root"
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := in.reaper.Start(cmd); err != nil {
			fmt.Fprintf(in.Console, "stowage-init: rescue shell: %v\n", err)
			continue
		}
		err := cmd.Wait()
		in.reaper.Untrack(cmd.Process.Pid)
		fmt.Fprintf(in.Console, "stowage-init: rescue shell ended (%v); press Enter for another\n", exitStatus(err))
	}
}
