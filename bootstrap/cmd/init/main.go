// Command init is PID 1 of the Stowage node image: it mounts the kernel
// filesystems and runs bootstrap/nodeinit (modules, network, config,
// hwmgr and the OSD under supervision, the status banner, the rescue
// shell), then syncs and powers the machine off when asked to shut down
// (SIGTERM, SIGINT from ctrl-alt-del, SIGPWR, the ACPI power button). It never exits and
// never lets a panic through: the kernel would panic with it.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/bootstrap/nodeinit"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "stowage-init: not PID 1; this is the node image's init, not a command")
		os.Exit(2)
	}
	os.Setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin")
	fmt.Printf("stowage-init %s starting\n", version)
	func() {
		defer recoverPrint("startup")
		if err := nodeinit.Mount(); err != nil {
			fmt.Printf("stowage-init: mounts: %v\n", err)
		}
		// ctrl-alt-del sends SIGINT to init instead of rebooting at once.
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF); err != nil {
			fmt.Printf("stowage-init: ctrl-alt-del off: %v\n", err)
		}
		in := &nodeinit.Init{Version: version}
		if err := in.Run(context.Background()); err != nil {
			in.Emergency(err) // never returns
		}
	}()
	for {
		func() {
			defer recoverPrint("poweroff")
			unix.Sync()
			if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
				fmt.Printf("stowage-init: poweroff: %v\n", err)
			}
		}()
		time.Sleep(5 * time.Second) // PID 1 must not exit; try again
	}
}

func recoverPrint(where string) {
	if r := recover(); r != nil {
		fmt.Printf("stowage-init: PANIC in %s (recovered): %v\n%s\n", where, r, debug.Stack())
	}
}
