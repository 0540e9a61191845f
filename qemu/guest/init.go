package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	fail := func(err error) int {
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
	fmt.Fprintln(out, MarkLine(MarkStart, ""))
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if ee.ExitCode() >= 0 {
			return ee.ExitCode()
		}
		return fail(fmt.Errorf("%s: %v", cfg.Args[0], err))
	default:
		return fail(fmt.Errorf("run %s: %w", cfg.Args[0], err))
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
