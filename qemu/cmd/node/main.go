// Command node boots a whole Stowage storage node in QEMU (TCG, 1 vCPU):
// the image from `make image`, 12 drives of five kinds whose sparse images
// persist in a directory across runs, and hwmgr's and the OSD's APIs
// forwarded to ports on 127.0.0.1. It streams the serial console (and
// types what you type into it: Enter opens the node's rescue shell) and
// powers the node off cleanly on Ctrl-C. `make run` drives it.
//
//	node [-image out/image] [-drives out/drives] [-hwmgr-port 9741] [-osd-port 9742]
//	     [-drive-size 1073741824] [-memory 1024] [-cmdline "stowage.rescue=1"]
//	     [-stop-timeout 60s] [-timeout 0]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stowage/stowage/qemu"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// osdReadyText is what the OSD logs (through the init's "osd: " prefix)
// once its API answers.
const osdReadyText = "osd API ready"

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	imageDir := fs.String("image", "out/image", "directory with vmlinuz and initramfs.cpio.gz (make image)")
	drivesDir := fs.String("drives", "out/drives", "directory of the drive images (created when missing, kept across runs)")
	hwmgrPort := fs.Int("hwmgr-port", qemu.HwmgrGuestPort, "host port on 127.0.0.1 for hwmgr's API (another free port when taken; 0: any)")
	osdPort := fs.Int("osd-port", qemu.OSDGuestPort, "host port on 127.0.0.1 for the OSD's API (another free port when taken; 0: any)")
	driveSize := fs.Int64("drive-size", 1<<30, "size in bytes of each new drive image (a multiple of 64 MiB)")
	memory := fs.Int("memory", 1024, "guest memory in MiB (at most 1024 on this lab)")
	cmdline := fs.String("cmdline", "", "extra kernel command line words, e.g. stowage.rescue=1")
	stopTimeout := fs.Duration("stop-timeout", time.Minute, "after Ctrl-C, how long the node gets to power off before QEMU is killed")
	timeout := fs.Duration("timeout", 0, "power the node off after this long (0: run until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *memory < 128 || *memory > 1024 {
		fmt.Fprintf(stderr, "node: -memory %d: want 128-1024 MiB\n", *memory)
		return 2
	}
	if *driveSize <= 0 || *driveSize%(64<<20) != 0 {
		fmt.Fprintf(stderr, "node: -drive-size %d: want a positive multiple of 64 MiB (67108864)\n", *driveSize)
		return 2
	}
	say := func(format string, a ...any) { fmt.Fprintf(stderr, "==> node: "+format+"\n", a...) }

	hp, err := qemu.FreePort(*hwmgrPort)
	if err != nil {
		say("%v", err)
		return 1
	}
	op, err := qemu.FreePort(*osdPort)
	if err == nil && op == hp {
		op, err = qemu.FreePort(0)
	}
	if err != nil {
		say("%v", err)
		return 1
	}
	for _, p := range []struct {
		name      string
		want, got int
	}{{"hwmgr", *hwmgrPort, hp}, {"osd", *osdPort, op}} {
		if p.want != 0 && p.want != p.got {
			say("port %d is taken; forwarding %s's API to %d instead", p.want, p.name, p.got)
		}
	}

	created := 0
	drives := qemu.NodeDrives(*drivesDir, *driveSize)
	for _, d := range drives {
		if _, err := os.Stat(d.Image); errors.Is(err, os.ErrNotExist) {
			created++
		}
	}
	node := qemu.Node{
		ImageDir: *imageDir, DrivesDir: *drivesDir, Drives: drives, HwmgrPort: hp, OSDPort: op,
		Cmdline: *cmdline, MemoryMiB: *memory, Console: stdout, Input: stdin, OwnProcessGroup: true,
	}
	m, err := node.Machine()
	if err != nil {
		say("%v", err)
		return 1
	}
	hwmgrURL := fmt.Sprintf("http://127.0.0.1:%d/v1/inventory", hp)
	osdURL := fmt.Sprintf("http://127.0.0.1:%d/v1/status", op)
	say("%d drives in %s (%d new, %d kept from the last run; make clean-drives wipes them):", len(drives), *drivesDir, created, len(drives)-created)
	for _, d := range drives {
		say("  %-6s %-10s %-9s %5d MiB  %s", d.ID, d.Kind, d.Serial, d.Size>>20, d.Image)
	}
	say("hwmgr API  %s", hwmgrURL)
	say("OSD API    %s", osdURL)
	say("booting (TCG, 1 vCPU, %d MiB); Ctrl-C powers the node off, twice kills QEMU; Enter opens the rescue shell", *memory)

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	startCtx, cancelStart := context.WithCancel(context.Background())
	defer cancelStart()
	go func() {
		select {
		case <-sigs:
			cancelStart() // still waiting for the host lock or QMP
		case <-startCtx.Done():
		}
	}()
	vm, err := qemu.Start(startCtx, m)
	if err != nil {
		say("%v", err)
		return 1
	}
	cancelStart()
	defer vm.Close()

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go func() {
		if _, err := vm.WaitConsole(watchCtx, func(l string) bool { return strings.Contains(l, "STOWAGE-NODE: hwmgr API ready") }); err == nil {
			say("hwmgr API ready %.1fs after QEMU start: %s", time.Since(vm.Started).Seconds(), hwmgrURL)
		}
	}()
	go func() {
		if _, err := vm.WaitConsole(watchCtx, func(l string) bool { return strings.Contains(l, osdReadyText) }); err == nil {
			say("OSD API ready %.1fs after QEMU start: %s", time.Since(vm.Started).Seconds(), osdURL)
		}
	}()

	var deadline <-chan time.Time
	if *timeout > 0 {
		deadline = time.After(*timeout)
	}
	why := ""
	select {
	case <-vm.Done():
		err := vm.Wait(context.Background())
		if err != nil {
			say("QEMU exited: %v", err)
			return 1
		}
		say("the node powered off; drive images kept in %s", *drivesDir)
		return 0
	case s := <-sigs:
		why = s.String()
	case <-deadline:
		why = "-timeout " + timeout.String()
	}
	say("%s: pressing the power button (the init stops the daemons and flushes the drives)", why)
	pressed := time.Now()
	stopCtx, cancel := stopContext(sigs, *stopTimeout)
	defer cancel(nil)
	if err := vm.PowerDown(stopCtx); err != nil {
		say("%v", err)
		return 1
	}
	say("the node powered off cleanly in %.1fs; drive images kept in %s", time.Since(pressed).Seconds(), *drivesDir)
	return 0
}

// stopContext is the context of a power-down after the first Ctrl-C: a
// second signal on sigs or the stop timeout ends it, with a cause that
// says which (VM.PowerDown then kills QEMU: a power cut).
func stopContext(sigs <-chan os.Signal, timeout time.Duration) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case s := <-sigs:
			cancel(fmt.Errorf("%s again (a power cut: the drives keep only what was flushed)", s))
		case <-timer.C:
			cancel(fmt.Errorf("the node did not power off within %s", timeout))
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
