package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// mount is one filesystem the init mounts before anything else.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

var initMounts = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"configfs", "/sys/kernel/config", "configfs", 0, ""},
	{"debugfs", "/sys/kernel/debug", "debugfs", 0, ""},
}

// Init is the guest init's whole job: mount the pseudo filesystems, load
// the modules, wait for the drives, run the test command with its output
// on out, and return the command's exit status. The caller prints the exit
// marker and powers off. Every failure is written to out as a MarkError
// line and gives ExitInitFailed; Init never panics on bad input.
func Init(out io.Writer, cfgPath string) int {
	initStart := time.Now()
	fail := func(err error) int {
		printKernelLog(out, kernelLogLines)
		fmt.Fprintln(out, MarkLine(MarkError, err.Error()))
		return ExitInitFailed
	}
	for _, m := range initMounts {
		optional := m.fstype == "configfs" || m.fstype == "debugfs"
		if optional {
			// Their mount points exist only when the kernel has them.
			if _, err := os.Stat(m.target); err != nil {
				continue
			}
		} else if err := os.MkdirAll(m.target, 0o755); err != nil {
			return fail(fmt.Errorf("mkdir %s: %w", m.target, err))
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			// configfs and debugfs are modules or absent on some kernels; the test may not need them.
			if optional {
				continue
			}
			return fail(fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	cfg, err := ReadConfig(cfgPath)
	if err != nil {
		return fail(err)
	}
	for _, m := range cfg.Modules {
		if err := LoadModule(m); err != nil {
			return fail(err)
		}
		if m.Name == "configfs" {
			// null_blk and friends want configfs mounted once it exists;
			// without it they still work from module parameters.
			_ = unix.Mount("configfs", "/sys/kernel/config", "configfs", 0, "")
		}
	}
	wait := time.Duration(cfg.WaitTimeout)
	if wait == 0 {
		wait = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, s := range cfg.WaitSerials {
		if _, err := WaitSerial(ctx, "/sys", s); err != nil {
			return fail(err)
		}
	}
	cmd := exec.Command(cfg.Args[0], cfg.Args[1:]...)
	cmd.Env = cfg.Env
	cmd.Dir = "/tmp"
	cmd.Stdout = out
	cmd.Stderr = out
	if cfg.Control != "" {
		ctl, err := openControl(cfg.Control)
		if err != nil {
			return fail(err)
		}
		defer ctl.Close()
		cmd.ExtraFiles = []*os.File{ctl} // fd 3 == ControlFD
	}
	fmt.Fprintln(out, MarkLine(MarkStart, fmt.Sprintf("uptime=%s init=%s", uptime(), time.Since(initStart).Round(time.Millisecond))))
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.ExitCode() >= 0 {
			printKernelLog(out, kernelLogLines)
			return ee.ExitCode()
		}
		return fail(fmt.Errorf("%s: %v", cfg.Args[0], err))
	default:
		return fail(fmt.Errorf("run %s: %w", cfg.Args[0], err))
	}
}

// kernelLogLines is how much of the kernel log a failure shows.
const kernelLogLines = 40

// printKernelLog prints the last n kernel log messages (all levels, which
// "quiet" keeps off the console), each prefixed "dmesg: ".
func printKernelLog(out io.Writer, n int) {
	// Raw syscalls: an *os.File would park a non-blocking read at the end
	// of the log in the poller instead of returning EAGAIN.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var tail []string
	buf := make([]byte, 8192) // one record per read
	for {
		k, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			continue // records overwritten while reading, or a signal: go on
		}
		if err != nil || k <= 0 {
			break // EAGAIN: the end of the log
		}
		if msg, ok := ParseKmsg(string(buf[:k])); ok {
			tail = append(tail, msg)
			if len(tail) > n {
				tail = tail[1:]
			}
		}
	}
	for _, l := range tail {
		fmt.Fprintln(out, "dmesg: "+l)
	}
}

// ParseKmsg returns the message of one /dev/kmsg record
// ("prio,seq,usec,flags[,...];message\n[ KEY=value\n...]") prefixed with
// its time stamp in seconds, and ok=false for anything else.
func ParseKmsg(rec string) (string, bool) {
	head, rest, ok := strings.Cut(rec, ";")
	if !ok {
		return "", false
	}
	f := strings.Split(head, ",")
	if len(f) < 4 {
		return "", false
	}
	usec, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return "", false
	}
	msg, _, _ := strings.Cut(rest, "\n")
	return fmt.Sprintf("[%d.%06d] %s", usec/1e6, usec%1e6, msg), true
}

// uptime is the kernel's /proc/uptime, "?" when unreadable.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

// openControl opens the control serial port in raw mode: no echo, no line
// editing, no signals, no CR/NL translation.
func openControl(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("control port: %w", err)
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("control port %s: %w", path, err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		f.Close()
		return nil, fmt.Errorf("control port %s: raw mode: %w", path, err)
	}
	return f, nil
}

// WaitSignal reads signal lines from the control port (ControlFD in the
// test process) until one equals name or ctx ends. Lines before it are
// consumed.
func WaitSignal(ctx context.Context, name string) error {
	fd, err := unix.Dup(ControlFD)
	if err != nil {
		return fmt.Errorf("waiting for host signal %q: control port (fd %d): %w", name, ControlFD, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("waiting for host signal %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "control")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = f.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	var line []byte
	b := make([]byte, 1) // one byte at a time: later signals stay in the tty
	for {
		n, err := f.Read(b)
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return fmt.Errorf("waiting for host signal %q: %w", name, err)
		}
		if n == 0 {
			continue
		}
		if b[0] != '\n' {
			if len(line) < 4096 {
				line = append(line, b[0])
			}
			continue
		}
		if strings.TrimRight(string(line), "\r") == name {
			return nil
		}
		line = line[:0]
	}
}

// LoadModule loads one kernel module from its .ko file with its parameters.
// A module that is already loaded is not an error.
func LoadModule(m Module) error {
	f, err := os.Open(m.Path)
	if err != nil {
		return fmt.Errorf("load module %s: %w", m.Name, err)
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), m.Params, 0)
	if errors.Is(err, unix.ENOSYS) {
		var b []byte
		if b, err = io.ReadAll(f); err == nil {
			err = unix.InitModule(b, m.Params)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s (%s) params %q: %w", m.Name, m.Path, m.Params, err)
	}
	return nil
}

// PowerOff flushes the filesystems and powers the machine off. It returns
// only if the kernel refused.
func PowerOff() error {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	return nil
}
