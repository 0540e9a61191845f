package qemu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/image/kmod"
	"github.com/stowage/stowage/qemu/guest"
)

// GuestEnv is set (to "1") in the environment of the test binary inside
// the guest; RunTest uses it to tell the guest side from the host side.
const GuestEnv = "STOWAGE_VMTEST_GUEST"

// BootEnv names, inside the guest, which RunTest call of the test function
// is booted (Options.Boot), so a test can boot several times.
const BootEnv = "STOWAGE_VMTEST_BOOT"

// ConsoleEnv, when set to 1 on the host, copies the guest's console to the
// host's stderr as it comes, for debugging.
const ConsoleEnv = "STOWAGE_VM_CONSOLE"

// DefaultTimeout bounds a guest's run after it has the host lock: TCG on a
// loaded two-core machine is slow.
const DefaultTimeout = 5 * time.Minute

// Options say what guest RunTest boots. Zero values are the documented defaults.
type Options struct {
	// Drives attached at boot; the guest init waits (up to 60 s) until
	// every drive's serial shows in sysfs before the test starts.
	Drives []Drive
	// Modules loaded in order (with their dependencies) before the test.
	// The modules the drives need (nvme, ahci, virtio_blk, virtio_scsi,
	// sd_mod) are added first on their own; scsi_debug gets sd_mod and sg
	// loaded before it.
	Modules []Module
	// Binaries are host programs (with their libraries) to copy into the
	// guest at their host paths: "smartctl", "nvme", "blkzone", "sg_inq".
	Binaries []string
	// Files maps guest paths to host files copied there.
	Files map[string]string
	// Env is added to the guest test's environment.
	Env []string
	// Timeout bounds the guest from QEMU start to power-off; default
	// DefaultTimeout, shortened to fit the test's deadline.
	Timeout time.Duration
	// MemoryMiB is the guest RAM; default 1024.
	MemoryMiB int
	// Cmdline is appended to the kernel command line.
	Cmdline string
	// Kernel overrides the kernel image to boot (a bzImage or an ELF
	// vmlinux with a PVH note); modules still come from FindKernel's
	// version, so it must be the same build.
	Kernel string
	// Host, if set, runs on the host while the guest runs, with the VM
	// (QMP, console marks, Kill). Its ctx ends when the guest test ends.
	// A non-nil error fails the test. If it calls vm.Kill (a power cut)
	// and returns nil, the guest ending without an exit status is a pass.
	Host func(ctx context.Context, vm *VM) error
	// Boot names this RunTest call when one test function boots more than
	// once (before and after a power cut): in the guest, only the body of
	// the call whose Boot matches runs. Default "".
	Boot string
}

// Guest is what the guest body of RunTest gets: the drives as configured
// (defaults filled in) and helpers to find them.
type Guest struct {
	// Drives are Options.Drives with their defaults (ID, Serial, sizes);
	// Image is the host path only when Options set it.
	Drives []Drive
	// SysRoot is "/sys".
	SysRoot string
}

// IsGuest reports whether this process is a test binary inside a guest.
func IsGuest() bool { return os.Getenv(GuestEnv) == "1" }

// RunTest runs body inside a QEMU guest. Call it from a TestVM* function
// in a file tagged vmtest. On the host it builds the package's test binary
// (go test -c -tags vmtest, static), an initramfs with the init, modules,
// binaries and files, boots QEMU with the drives (holding the host lock),
// and runs the same test function in the guest, where RunTest calls body.
// The guest's output is logged on the host; a failure in the guest fails
// the host test with that output, a hung guest is killed at the timeout
// with the console tail in the message.
func RunTest(t *testing.T, opts Options, body func(t *testing.T, g *Guest)) {
	t.Helper()
	drives := make([]Drive, len(opts.Drives))
	for i, d := range opts.Drives {
		dd, err := d.withDefaults(i, "")
		if err != nil {
			t.Fatalf("qemu: %v", err)
		}
		dd.Image = d.Image // the default image lives in the host's run directory
		drives[i] = dd
	}
	if IsGuest() {
		if os.Getenv(BootEnv) == opts.Boot {
			fmt.Fprintln(os.Stdout, "\n"+guest.MarkLine(guest.MarkBody, opts.Boot))
			body(t, &Guest{Drives: drives, SysRoot: "/sys"})
		}
		return
	}
	runHost(t, opts, drives)
}

// Prerequisites finds QEMU and the kernel. When either is missing it skips
// the test with a clear message, unless CI is set: then the test fails.
func Prerequisites(t testing.TB) (qemuPath string, k Kernel) {
	t.Helper()
	missing := func(err error) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("qemu: %v (CI is set, so this fails instead of skipping; run `make deps`)", err)
		}
		t.Skipf("qemu: %v; skipping (run `make deps` as root; under CI=true this fails)", err)
	}
	q, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		missing(fmt.Errorf("qemu-system-x86_64 not found: %w", err))
		return "", Kernel{}
	}
	k, err = FindKernel("/")
	if err != nil {
		missing(err)
		return "", Kernel{}
	}
	return q, k
}

// ModuleRoot returns the directory of the main module's go.mod.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// CacheDir is out/qemu under the module root.
func CacheDir(ctx context.Context) (string, error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "out", "qemu"), nil
}

// BuildInit builds the guest init (static) into cacheDir and returns its path.
func BuildInit(ctx context.Context, cacheDir string) (string, error) {
	out := filepath.Join(cacheDir, "bin", "vminit")
	if err := goBuild(ctx, "", "build", "-trimpath", "-o", out, "github.com/stowage/stowage/qemu/cmd/vminit"); err != nil {
		return "", fmt.Errorf("build guest init: %w", err)
	}
	return out, nil
}

// testBinary returns a static build of the test binary of the package in
// dir, with the host binary's build tags plus vmtest. It is cached under
// cacheDir/tests keyed by the running host test binary's contents (which
// change whenever the package's code does), so several boots of one
// package build it once.
func testBinary(ctx context.Context, dir, cacheDir string) (string, error) {
	tags := []string{"vmtest"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-tags" {
				for _, tg := range strings.Split(s.Value, ",") {
					if tg != "" && tg != "vmtest" {
						tags = append(tags, tg)
					}
				}
			}
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", dir, strings.Join(tags, ","))
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("test binary: %w", err)
	}
	f, err := os.Open(self)
	if err != nil {
		return "", fmt.Errorf("test binary: %w", err)
	}
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("test binary: hash %s: %w", self, err)
	}
	out := filepath.Join(cacheDir, "tests", hex.EncodeToString(h.Sum(nil))[:24]+".test")
	if _, err := os.Stat(out); err == nil {
		now := time.Now()
		_ = os.Chtimes(out, now, now) // keep it from pruning
		return out, nil
	}
	pruneCache(filepath.Dir(out), "*.test", cacheMaxAge)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", fmt.Errorf("test binary: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	defer os.Remove(tmp)
	if err := goBuild(ctx, dir, "test", "-c", "-tags", strings.Join(tags, ","), "-o", tmp, "."); err != nil {
		return "", fmt.Errorf("build test binary of %s: %w", dir, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("test binary: %w", err)
	}
	return out, nil
}

func goBuild(ctx context.Context, dir string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return nil
}

// runPattern turns a test name ("TestVMX" or "TestVMX/sub") into a
// -test.run pattern that selects exactly it.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func hostVerbose() bool {
	f := flag.Lookup("test.v")
	return f != nil && f.Value.String() != "false"
}

// guestTestPath is where the test binary goes inside the guest.
const guestTestPath = "/stowage/test"

func runHost(t *testing.T, opts Options, drives []Drive) {
	t.Helper()
	qemuPath, kernel := Prerequisites(t)
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Building has its own bound; waiting for the host lock may use what
	// is left of the test's deadline (other packages' guests run first).
	buildCtx, cancelBuild := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancelBuild()
	lockCtx, cancelLock := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancelLock()
	if dl, ok := t.Deadline(); ok {
		left := time.Until(dl) - 20*time.Second
		if left < 30*time.Second {
			t.Fatalf("qemu: only %v left before the test deadline; run with a longer -timeout", time.Until(dl).Round(time.Second))
		}
		lockCtx, cancelLock = context.WithTimeout(lockCtx, left)
		defer cancelLock()
	}

	buildStart := time.Now()
	cacheDir, err := CacheDir(buildCtx)
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	initBin, err := BuildInit(buildCtx, cacheDir)
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	testBin, err := testBinary(buildCtx, wd, cacheDir)
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}

	mods := moduleList(opts.Modules, drives)
	// The guest's own test timeout fires first, so a hung guest test dumps
	// its goroutines to the console before the host kills QEMU.
	args := []string{guestTestPath, "-test.run", runPattern(t.Name()), "-test.timeout", (timeout * 9 / 10).String()}
	if hostVerbose() {
		args = append(args, "-test.v=true")
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TMPDIR=/tmp", GuestEnv + "=1", BootEnv + "=" + opts.Boot}
	if ci := os.Getenv("CI"); ci != "" {
		env = append(env, "CI="+ci)
	}
	env = append(env, opts.Env...)
	cfg := guest.Config{Args: args, Env: env, WaitTimeout: guest.Duration(60 * time.Second), Control: "/dev/ttyS1"}
	for _, d := range drives {
		cfg.WaitSerials = append(cfg.WaitSerials, d.Serial)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.cpio")
	ir := Initramfs{Init: initBin, Kernel: kernel, Modules: mods, Binaries: opts.Binaries, Files: opts.Files}
	if err := ir.Build(buildCtx, initrd, filepath.Join(cacheDir, "cache"), cfg, testBin, guestTestPath); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	t.Logf("qemu: built test binary and initramfs in %v", time.Since(buildStart).Round(time.Millisecond))

	m := Machine{
		QEMU: qemuPath, Kernel: kernel.Image, Initrd: initrd, Dir: dir,
		Cmdline: strings.TrimSpace(defaultCmdline + " " + opts.Cmdline), MemoryMiB: opts.MemoryMiB,
		Drives: opts.Drives, // Start puts default images in dir (t.TempDir)
	}
	if opts.Kernel != "" {
		m.Kernel = opts.Kernel
	} else if vmlinux, err := PVHKernel(buildCtx, kernel.Image, filepath.Join(cacheDir, "cache")); err == nil {
		m.Kernel = vmlinux
	} else {
		t.Logf("qemu: booting the compressed %s (slower): %v", kernel.Image, err)
	}
	if os.Getenv(ConsoleEnv) == "1" {
		m.Console = os.Stderr
	}
	lockStart := time.Now()
	vm, err := Start(lockCtx, m)
	if err != nil {
		t.Fatalf("qemu: %v", err)
	}
	defer vm.Close()
	if w := vm.Started.Sub(lockStart); w > time.Second {
		t.Logf("qemu: waited %v for the host lock %s", w.Round(time.Millisecond), LockPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	hostCtx, cancelHost := context.WithCancel(ctx)
	defer cancelHost()
	hostDone := make(chan error, 1)
	if opts.Host != nil {
		go func() {
			err := opts.Host(hostCtx, vm)
			if err != nil && hostCtx.Err() == nil {
				vm.Kill() // fail fast: the guest may be waiting for the host
			}
			hostDone <- err
		}()
	} else {
		hostDone <- nil
	}

	endLine, waitErr := vm.WaitConsole(ctx, func(l string) bool {
		k, _, ok := guest.ParseMark(l)
		return ok && (k == guest.MarkExit)
	})
	end := time.Now()
	cancelHost()
	hostErr := <-hostDone

	// After the exit marker the guest powers off on its own.
	offCtx, cancelOff := context.WithTimeout(context.Background(), 30*time.Second)
	qemuErr := vm.Wait(offCtx)
	cancelOff()

	lines := strings.Split(vm.Console(), "\n")
	var out []string
	var bootToTest time.Duration
	started, ranBody := false, false
	var initErrs []string
	var bootTiming string
	for _, l := range lines {
		l = strings.TrimRight(l, "\r")
		k, arg, ok := guest.ParseMark(l)
		switch {
		case ok && k == guest.MarkStart:
			started = true
			bootTiming = arg
		case ok && k == guest.MarkBody:
			ranBody = true
		case ok && k == guest.MarkError:
			initErrs = append(initErrs, arg)
		case ok && k == guest.MarkExit:
			started = false
		case started && strings.TrimSpace(l) != "":
			out = append(out, l)
		}
	}
	if _, at, ok := vm.console.find(func(l string) bool {
		k, _, ok := guest.ParseMark(l)
		return ok && k == guest.MarkStart
	}); ok {
		bootToTest = at.Sub(vm.Started)
	}
	guestOut := strings.Join(out, "\n")
	if bootToTest > 0 {
		t.Logf("qemu: QEMU start to test binary: %v (guest kernel %s); guest test ran %v",
			bootToTest.Round(time.Millisecond), bootTiming, end.Sub(vm.Started.Add(bootToTest)).Round(time.Millisecond))
	}
	if guestOut != "" {
		t.Logf("guest output:\n%s", guestOut)
	}
	if hostErr != nil {
		t.Errorf("qemu: host side: %v", hostErr)
	}
	if waitErr != nil && errors.Is(waitErr, errConsoleClosed) && vm.Killed() && hostErr == nil {
		t.Logf("qemu: the host cut the guest's power (VM.Kill) %v after QEMU started", end.Sub(vm.Started).Round(time.Millisecond))
		return
	}
	if waitErr != nil && hostErr != nil && vm.Killed() {
		t.Fatalf("qemu: the host side failed, so the guest was stopped; console tail:\n%s", vm.ConsoleTail(60))
	}
	if waitErr != nil {
		why := "timed out after " + timeout.String()
		if errors.Is(waitErr, errConsoleClosed) {
			why = "QEMU exited before the test ended"
			if qemuErr != nil {
				why += ": " + qemuErr.Error()
			}
		}
		t.Fatalf("qemu: guest %s; init errors: %q; console tail:\n%s", why, initErrs, vm.ConsoleTail(60))
	}
	_, arg, _ := guest.ParseMark(endLine)
	status, err := guest.ParseExit(arg)
	if err != nil {
		t.Fatalf("qemu: %v; console tail:\n%s", err, vm.ConsoleTail(60))
	}
	if status != 0 {
		if status == guest.ExitInitFailed && len(initErrs) > 0 {
			t.Fatalf("qemu: guest init failed: %s\nconsole tail:\n%s", strings.Join(initErrs, "; "), vm.ConsoleTail(60))
		}
		t.Fatalf("qemu: guest test failed (exit status %s); see the guest output above", strconv.Itoa(status))
	}
	if !ranBody {
		t.Fatalf("qemu: the guest test binary passed without running the body of %s (boot %q): is the test in a file tagged vmtest, and does it call RunTest with the same Options.Boot?", t.Name(), opts.Boot)
	}
}

// moduleList puts the drives' modules first, then the caller's, with sd_mod
// and sg before scsi_debug.
func moduleList(user []Module, drives []Drive) []Module {
	var out []Module
	seen := map[string]bool{}
	add := func(m Module) {
		n := kmod.Name(m.Name)
		if seen[n] && m.Params == "" {
			return
		}
		seen[n] = true
		out = append(out, m)
	}
	for _, d := range drives {
		for _, n := range d.Kind.modules() {
			add(Module{Name: n})
		}
	}
	for _, m := range user {
		if kmod.Name(m.Name) == "scsi_debug" {
			add(Module{Name: "sd_mod"})
			add(Module{Name: "sg"})
		}
		add(m)
	}
	return out
}

// Device waits (up to 60 s) for the block device with the serial.
func (g *Guest) Device(serial string) (guest.BlockDevice, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return guest.WaitSerial(ctx, g.SysRoot, serial)
}

// DriveDevice waits for the block device of the drive with the QEMU id.
func (g *Guest) DriveDevice(id string) (guest.BlockDevice, error) {
	for _, d := range g.Drives {
		if d.ID == id {
			return g.Device(d.Serial)
		}
	}
	return guest.BlockDevice{}, fmt.Errorf("no drive with id %q in Options.Drives", id)
}

// WaitModel waits (up to 60 s) for a block device with the model, such as
// "scsi_debug", and returns it.
func (g *Guest) WaitModel(model string) (guest.BlockDevice, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return guest.WaitFor(ctx, g.SysRoot, "model "+strconv.Quote(model), func(b guest.BlockDevice) bool { return b.Model == model })
}

// WaitName waits (up to 60 s) for the block device with the kernel name,
// such as "nullb0".
func (g *Guest) WaitName(name string) (guest.BlockDevice, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return guest.WaitFor(ctx, g.SysRoot, "device "+name, func(b guest.BlockDevice) bool { return b.Name == name })
}

// WaitGone waits until the device with the serial is gone, up to timeout.
func (g *Guest) WaitGone(serial string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return guest.WaitGone(ctx, g.SysRoot, serial)
}

// WaitHost waits, up to timeout, until the host calls VM.Signal(name).
// Signals that came before, with other names, are consumed.
func (g *Guest) WaitHost(name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return guest.WaitSignal(ctx, name)
}

// Mark prints a named marker on the console for the host's VM.WaitMark.
func (g *Guest) Mark(name string) {
	fmt.Fprintln(os.Stdout, "\n"+guest.MarkLine(guest.MarkUser, name))
}

// WaitMark waits until the guest body calls Guest.Mark(name).
func (vm *VM) WaitMark(ctx context.Context, name string) error {
	_, err := vm.WaitConsole(ctx, func(l string) bool {
		k, arg, ok := guest.ParseMark(l)
		return ok && k == guest.MarkUser && arg == name
	})
	if err != nil {
		return fmt.Errorf("waiting for guest mark %q: %w", name, err)
	}
	return nil
}
