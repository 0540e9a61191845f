package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Machine describes a guest to boot. Zero values are the documented defaults.
type Machine struct {
	// QEMU is the emulator binary; default "qemu-system-x86_64" from PATH.
	QEMU string
	// Kernel and Initrd are the boot files (required).
	Kernel, Initrd string
	// Cmdline is the kernel command line; default
	// "console=ttyS0 quiet panic=-1 no_timer_check mitigations=off".
	Cmdline string
	// MemoryMiB is the guest RAM; default 1024.
	MemoryMiB int
	// Drives are attached at boot.
	Drives []Drive
	// Dir holds the drive images and the QMP socket (required). Keep its
	// path short: unix socket paths are limited to 107 bytes.
	Dir string
	// Console, if set, gets a copy of everything the guest prints.
	Console io.Writer
	// Input, if set, is typed into the serial console (QEMU reads it
	// from a pipe, so a terminal behind it stays in the caller's hands).
	Input io.Reader
	// OwnProcessGroup starts QEMU in a process group of its own: a
	// terminal's Ctrl-C then reaches only the caller, which can power the
	// guest off cleanly instead of QEMU dying at once.
	OwnProcessGroup bool
	// ExtraArgs are appended to the QEMU command line.
	ExtraArgs []string
	// LockPath is the host-wide lock; default LockPath. Start waits for it
	// as long as ctx allows.
	LockPath string
}

// VM is a running QEMU guest.
type VM struct {
	// Started is when the QEMU process started.
	Started time.Time
	// QMP is connected to the guest's monitor.
	QMP *QMP

	cmd     *exec.Cmd
	console *console
	stderr  bytes.Buffer // QEMU's own messages; written by exec, read after done
	done    chan struct{}
	waitErr error
	unlock  func()

	dir     string
	killed  atomic.Bool
	ctlPath string // control serial port socket (guest /dev/ttyS1)
	sockTmp string // a temporary socket directory to remove, if any
	ctlMu   sync.Mutex
	ctl     net.Conn
	mu      sync.Mutex
	drives  map[string]Drive // by ID, as attached
	ahci    int              // next free AHCI port
}

// defaultCmdline: no_timer_check because a TCG guest on a loaded host
// can fail the kernel's IO-APIC timer check and panic ("IO-APIC + timer
// doesn't work!"), seen here with 8 engineers sharing 2 cores;
// mitigations=off because page-table isolation costs every guest syscall
// a TLB flush, which TCG emulates slowly (20000 preads: 130 ms -> 88-114 ms).
const defaultCmdline = "console=ttyS0 quiet panic=-1 no_timer_check mitigations=off"

// Start boots the machine. It takes the host lock first (waiting while ctx
// allows), creates the drive images, starts QEMU and connects QMP. The VM
// holds the lock until QEMU exits.
func Start(ctx context.Context, m Machine) (*VM, error) {
	if m.Kernel == "" || m.Initrd == "" || m.Dir == "" {
		return nil, errors.New("qemu: Machine needs Kernel, Initrd and Dir")
	}
	if m.QEMU == "" {
		m.QEMU = "qemu-system-x86_64"
	}
	if m.Cmdline == "" {
		m.Cmdline = defaultCmdline
	}
	if m.MemoryMiB == 0 {
		m.MemoryMiB = 1024
	}
	if m.LockPath == "" {
		m.LockPath = LockPath
	}
	vm := &VM{drives: map[string]Drive{}, done: make(chan struct{}), dir: m.Dir}
	args := []string{
		"-accel", "tcg", "-M", "pc", "-m", strconv.Itoa(m.MemoryMiB), "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", m.Kernel, "-initrd", m.Initrd, "-append", m.Cmdline,
		"-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0",
	}
	sockDir := m.Dir
	if len(filepath.Join(sockDir, "qmp.sock")) > 100 { // sun_path holds 108 bytes
		d, err := os.MkdirTemp("", "stwvm")
		if err != nil {
			return nil, fmt.Errorf("qemu: socket dir: %w", err)
		}
		sockDir = d
		vm.sockTmp = d
	}
	sock := filepath.Join(sockDir, "qmp.sock")
	vm.ctlPath = filepath.Join(sockDir, "ctl.sock")
	args = append(args, "-qmp", "unix:"+sock+",server=on,wait=off",
		"-chardev", "socket,id=ctl0,path="+vm.ctlPath+",server=on,wait=off", "-serial", "chardev:ctl0")
	var hasAHCI, hasSCSI bool
	for i, d := range m.Drives {
		d, err := d.withDefaults(i, m.Dir)
		if err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
		if _, dup := vm.drives[d.ID]; dup {
			return nil, fmt.Errorf("qemu: two drives with id %q", d.ID)
		}
		if err := d.createImage(); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
		bus := ""
		switch d.Kind {
		case SATA:
			if !hasAHCI {
				args = append(args, "-device", "ahci,id=ahci0")
				hasAHCI = true
			}
			if vm.ahci >= 6 {
				return nil, fmt.Errorf("qemu: drive %s: the AHCI controller has 6 ports", d.ID)
			}
			bus = "ahci0." + strconv.Itoa(vm.ahci)
			vm.ahci++
		case SCSI:
			if !hasSCSI {
				args = append(args, "-device", "virtio-scsi-pci,id=scsi0")
				hasSCSI = true
			}
			bus = "scsi0.0"
		}
		args = append(args, "-blockdev", d.blockdevArg())
		for _, q := range d.devices(bus) {
			args = append(args, "-device", q.arg())
		}
		vm.drives[d.ID] = d
	}
	args = append(args, m.ExtraArgs...)

	unlock, err := lockHost(ctx, m.LockPath)
	if err != nil {
		vm.removeSockTmp()
		return nil, fmt.Errorf("qemu: %w", err)
	}
	vm.unlock = unlock
	_ = os.Remove(sock)
	_ = os.Remove(vm.ctlPath)
	vm.cmd = exec.Command(m.QEMU, args...)
	vm.console = newConsole(m.Console)
	vm.cmd.Stdout = vm.console
	vm.cmd.Stderr = &vm.stderr
	var inW *os.File
	if m.Input != nil {
		// Our own pipe, not exec's copying goroutine: Wait must not wait
		// for a read from a terminal that may never come.
		r, w, err := os.Pipe()
		if err != nil {
			unlock()
			vm.removeSockTmp()
			return nil, fmt.Errorf("qemu: console input: %w", err)
		}
		vm.cmd.Stdin, inW = r, w
		defer r.Close() // QEMU holds its own copy once started
		go func() { _, _ = io.Copy(w, m.Input) }()
	}
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: m.OwnProcessGroup}
	vm.Started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		if inW != nil {
			inW.Close()
		}
		unlock()
		vm.removeSockTmp()
		return nil, fmt.Errorf("qemu: start %s: %w", m.QEMU, err)
	}
	go func() {
		vm.waitErr = vm.cmd.Wait()
		if inW != nil {
			inW.Close()
		}
		vm.console.close()
		vm.removeSockTmp()
		vm.unlock()
		close(vm.done)
	}()
	if err := vm.connectQMP(ctx, sock); err != nil {
		vm.Kill()
		<-vm.done
		return nil, fmt.Errorf("qemu: %w (qemu: %s)", err, strings.TrimSpace(vm.Stderr()))
	}
	return vm, nil
}

func (vm *VM) removeSockTmp() {
	if vm.sockTmp != "" {
		os.RemoveAll(vm.sockTmp)
	}
}

// connectQMP dials the monitor socket as soon as QEMU has created it.
func (vm *VM) connectQMP(ctx context.Context, sock string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		q, err := DialQMP(ctx, sock)
		if err == nil {
			vm.QMP = q
			return nil
		}
		select {
		case <-vm.done:
			return fmt.Errorf("QEMU exited before its monitor came up: %v", vm.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("connect QMP: %w", err)
		case <-t.C:
		}
	}
}

// Stderr is what QEMU itself printed (complete once Done is closed).
func (vm *VM) Stderr() string {
	select {
	case <-vm.done:
		return vm.stderr.String()
	default:
		return ""
	}
}

// Done is closed when QEMU has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Wait waits for QEMU to exit, killing it when ctx ends first.
func (vm *VM) Wait(ctx context.Context) error {
	select {
	case <-vm.done:
		return vm.exitErr()
	case <-ctx.Done():
		vm.Kill()
		<-vm.done
		return fmt.Errorf("qemu: killed: %w", ctx.Err())
	}
}

func (vm *VM) exitErr() error {
	if vm.waitErr != nil {
		return fmt.Errorf("qemu: %w: %s", vm.waitErr, strings.TrimSpace(vm.stderr.String()))
	}
	return nil
}

// Kill cuts the power: QEMU is killed with SIGKILL, so nothing the guest
// did not already hand to the emulated drives reaches the images.
func (vm *VM) Kill() {
	select {
	case <-vm.done:
		return
	default:
	}
	vm.killed.Store(true)
	if vm.cmd.Process != nil {
		_ = vm.cmd.Process.Kill()
	}
}

// PowerDown presses the guest's ACPI power button (QMP
// system_powerdown) and waits for QEMU to exit, which the node's init
// makes happen once it has stopped its daemons and flushed the drives.
// When ctx ends first (a stop timeout, a second Ctrl-C: see
// context.WithCancelCause) it kills QEMU, a power cut, and returns an
// error wrapping context.Cause(ctx). An exit with an error status is an
// error too.
func (vm *VM) PowerDown(ctx context.Context) error {
	select {
	case <-vm.done:
		if err := vm.exitErr(); err != nil {
			return fmt.Errorf("qemu: power down: QEMU had exited: %w", err)
		}
		return errors.New("qemu: power down: QEMU had exited")
	default:
	}
	if _, err := vm.QMP.Execute(ctx, "system_powerdown", nil); err != nil {
		vm.Kill()
		<-vm.done
		return fmt.Errorf("qemu: power down: system_powerdown: %w (QEMU killed)", err)
	}
	select {
	case <-vm.done:
		return vm.exitErr()
	case <-ctx.Done():
		vm.Kill()
		<-vm.done
		return fmt.Errorf("qemu: power down: QEMU killed: %w", context.Cause(ctx))
	}
}

// Killed reports whether Kill ended QEMU.
func (vm *VM) Killed() bool { return vm.killed.Load() }

// Close ends the VM if it still runs and releases its resources.
func (vm *VM) Close() error {
	vm.Kill()
	<-vm.done
	if vm.QMP != nil {
		vm.QMP.Close()
	}
	vm.ctlMu.Lock()
	if vm.ctl != nil {
		vm.ctl.Close()
	}
	vm.ctlMu.Unlock()
	return nil
}

// Signal sends a named signal line to the guest's control port
// (/dev/ttyS1), where Guest.WaitHost(name) waits for it.
func (vm *VM) Signal(ctx context.Context, name string) error {
	if name == "" || strings.ContainsAny(name, "\r\n") {
		return fmt.Errorf("qemu: signal %q: want a non-empty name without line breaks", name)
	}
	vm.ctlMu.Lock()
	defer vm.ctlMu.Unlock()
	if vm.ctl == nil {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", vm.ctlPath)
		if err != nil {
			return fmt.Errorf("qemu: signal %q: control port: %w", name, err)
		}
		vm.ctl = c
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = vm.ctl.SetWriteDeadline(dl)
	}
	if _, err := vm.ctl.Write([]byte(name + "\n")); err != nil {
		return fmt.Errorf("qemu: signal %q: %w", name, err)
	}
	return nil
}

// Console returns everything the guest printed so far.
func (vm *VM) Console() string { return vm.console.String() }

// ConsoleTail returns the last n lines the guest printed.
func (vm *VM) ConsoleTail(n int) string { return vm.console.tail(n) }

// WaitConsole waits until a console line (since boot) satisfies match and
// returns it; it fails when ctx ends or QEMU exits first.
func (vm *VM) WaitConsole(ctx context.Context, match func(line string) bool) (string, error) {
	return vm.console.wait(ctx, match)
}

// Drive returns the attached drive with the id.
func (vm *VM) Drive(id string) (Drive, bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	d, ok := vm.drives[id]
	return d, ok
}

// Unplug hot-unplugs the drive with the id (device_del) and waits until
// QEMU reports the device deleted, which for PCI devices needs the guest's
// cooperation. The drive's image stays; Plug attaches it again.
func (vm *VM) Unplug(ctx context.Context, id string) error {
	d, ok := vm.Drive(id)
	if !ok {
		return fmt.Errorf("qemu: unplug %s: no such drive", id)
	}
	if d.Kind == SATA {
		return fmt.Errorf("qemu: unplug %s: ide-hd (SATA) drives cannot be hot-unplugged in QEMU", id)
	}
	if _, err := vm.QMP.Execute(ctx, "device_del", map[string]any{"id": id}); err != nil {
		return fmt.Errorf("qemu: unplug %s: %w", id, err)
	}
	if _, err := vm.QMP.WaitEvent(ctx, "DEVICE_DELETED", func(data json.RawMessage) bool {
		var ev struct {
			Device string `json:"device"`
		}
		return json.Unmarshal(data, &ev) == nil && ev.Device == id
	}); err != nil {
		return fmt.Errorf("qemu: unplug %s: %w", id, err)
	}
	vm.mu.Lock()
	delete(vm.drives, id)
	vm.mu.Unlock()
	return nil
}

// Plug hot-plugs a drive: a new one (its image is created as for Start)
// or one that Unplug removed. SATA drives cannot be hot-plugged; SCSI
// drives need a SCSI drive attached at boot (for the controller).
func (vm *VM) Plug(ctx context.Context, d Drive) error {
	d, err := d.withDefaults(len(vm.drives)+100, vm.dir)
	if err != nil {
		return fmt.Errorf("qemu: plug: %w", err)
	}
	if d.Kind == SATA {
		return fmt.Errorf("qemu: plug %s: ide-hd (SATA) drives cannot be hot-plugged in QEMU", d.ID)
	}
	if _, ok := vm.Drive(d.ID); ok {
		return fmt.Errorf("qemu: plug %s: a drive with that id is attached", d.ID)
	}
	if err := d.createImage(); err != nil {
		return fmt.Errorf("qemu: plug: %w", err)
	}
	// The block node of a drive attached before stays after device_del.
	if _, err := vm.QMP.Execute(ctx, "blockdev-add", d.blockdevQMP()); err != nil {
		var qe *QMPError
		if !errors.As(err, &qe) || !strings.Contains(qe.Desc, "already exists") && !strings.Contains(qe.Desc, "Duplicate") {
			return fmt.Errorf("qemu: plug %s: %w", d.ID, err)
		}
	}
	bus := ""
	if d.Kind == SCSI {
		bus = "scsi0.0"
	}
	for _, q := range d.devices(bus) {
		if _, err := vm.QMP.Execute(ctx, "device_add", q.qmpArgs()); err != nil {
			return fmt.Errorf("qemu: plug %s: %w", d.ID, err)
		}
	}
	vm.mu.Lock()
	vm.drives[d.ID] = d
	vm.mu.Unlock()
	return nil
}
