// Command vminit is the init (PID 1) of a stowage QEMU test guest. It
// mounts /proc, /sys, /dev, /tmp and /run, loads the kernel modules and
// waits for the drives named in /stowage/config.json, runs the test binary
// with its output on the serial console, prints
// "STOWAGE-VM: exit <status>" and powers the guest off.
//
// The host side (package github.com/stowage/stowage/qemu) builds it static
// and puts it at /init in the initramfs; it is not meant to run on a host.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/stowage/stowage/qemu/guest"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: not PID 1; this is the init of a stowage QEMU test guest")
		os.Exit(2)
	}
	status := guest.Init(os.Stdout, guest.ConfigPath)
	fmt.Fprintln(os.Stdout, guest.MarkLine(guest.MarkExit, strconv.Itoa(status)))
	if err := guest.PowerOff(); err != nil {
		fmt.Fprintln(os.Stdout, guest.MarkLine(guest.MarkError, err.Error()))
	}
	// Returning from PID 1 panics the kernel; panic=-1 and -no-reboot end QEMU.
}
