// Package nvme talks to an NVMe controller through Linux's admin passthrough
// ioctl (NVME_IOCTL_ADMIN_CMD): Identify Controller and Namespace, Get Log
// Page (sanitize status), Format NVM and Sanitize. The byte layouts of the
// responses are decoded by small parsers (decode.go) that never panic on
// short or hostile input. The caller needs CAP_SYS_ADMIN.
package nvme

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl numbers from linux/nvme_ioctl.h.
const (
	ioctlID       = 0x4E40     // _IO('N', 0x40)
	ioctlAdminCmd = 0xC0484E41 // _IOWR('N', 0x41, struct nvme_passthru_cmd)
)

// Admin command opcodes (NVMe base specification 2.0, figure 28).
const (
	OpGetLogPage = 0x02
	OpIdentify   = 0x06
	OpFormatNVM  = 0x80
	OpSanitize   = 0x84
)

// passthruCmd is struct nvme_passthru_cmd (72 bytes).
type passthruCmd struct {
	Opcode      uint8
	Flags       uint8
	Rsvd1       uint16
	NSID        uint32
	CDW2, CDW3  uint32
	Metadata    uint64
	Addr        uint64
	MetadataLen uint32
	DataLen     uint32
	CDW10       uint32
	CDW11       uint32
	CDW12       uint32
	CDW13       uint32
	CDW14       uint32
	CDW15       uint32
	TimeoutMs   uint32
	Result      uint32
}

var _ [72]byte = [unsafe.Sizeof(passthruCmd{})]byte{}

// Command is one admin command. Data, when set, is the transfer buffer
// (read from the controller for Identify and Get Log Page, written to it
// otherwise).
type Command struct {
	Opcode  uint8
	NSID    uint32
	CDW10   uint32
	CDW11   uint32
	CDW12   uint32
	Data    []byte
	Timeout time.Duration // 0: the kernel's admin timeout (60 s)
}

// Status is a command the controller completed with a non-zero status.
type Status struct {
	Opcode uint8
	Code   uint16 // the status field as the ioctl returns it: SCT in bits 10:8, SC in 7:0, DNR in 14
}

// Status code types and codes that callers branch on.
const (
	SCTGeneric        = 0
	SCInvalidOpcode   = 0x01
	SCInvalidField    = 0x02
	SCTCommandSpecifc = 1
)

// SCT is the status code type.
func (s *Status) SCT() uint8 { return uint8(s.Code>>8) & 0x7 }

// SC is the status code.
func (s *Status) SC() uint8 { return uint8(s.Code) }

// Unsupported reports whether the controller said it does not implement the
// command or a field of it (Invalid Command Opcode, Invalid Field in
// Command).
func (s *Status) Unsupported() bool {
	return s.SCT() == SCTGeneric && (s.SC() == SCInvalidOpcode || s.SC() == SCInvalidField)
}

func (s *Status) Error() string {
	what := ""
	if s.SCT() == SCTGeneric {
		switch s.SC() {
		case SCInvalidOpcode:
			what = " (invalid command opcode)"
		case SCInvalidField:
			what = " (invalid field in command)"
		}
	}
	return fmt.Sprintf("nvme: admin opcode %#02x failed: status %#04x, type %d code %#02x%s", s.Opcode, s.Code, s.SCT(), s.SC(), what)
}

// Device is an open NVMe namespace block device (/dev/nvme0n1) or
// controller character device (/dev/nvme0).
type Device struct {
	f    *os.File
	path string
}

// Open opens path for admin commands.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("nvme: %w", err)
	}
	return &Device{f: f, path: path}, nil
}

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// Path is the device's path.
func (d *Device) Path() string { return d.path }

// NSID returns the namespace id of a namespace block device (NVME_IOCTL_ID).
func (d *Device) NSID() (uint32, error) {
	var id uintptr
	rc, err := d.rawConn()
	if err != nil {
		return 0, err
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, fd, ioctlID, 0)
		id, errno = r, e
	}); cerr != nil {
		return 0, fmt.Errorf("nvme: %s: %w", d.path, cerr)
	}
	if errno != 0 {
		return 0, fmt.Errorf("nvme: %s: %w", d.path, os.NewSyscallError("ioctl(NVME_IOCTL_ID)", errno))
	}
	return uint32(id), nil
}

func (d *Device) rawConn() (interface {
	Control(func(uintptr)) error
}, error) {
	rc, err := d.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("nvme: %s: %w", d.path, err)
	}
	return rc, nil
}

// Admin issues one admin command and returns the completion's dword 0. A
// command the controller failed returns a *Status error; a refused ioctl
// an *os.SyscallError. The kernel does not let a command be interrupted: ctx
// is checked before it is issued.
func (d *Device) Admin(ctx context.Context, c Command) (uint32, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("nvme: %s: opcode %#02x: %w", d.path, c.Opcode, err)
	}
	cmd := passthruCmd{Opcode: c.Opcode, NSID: c.NSID, CDW10: c.CDW10, CDW11: c.CDW11, CDW12: c.CDW12,
		TimeoutMs: uint32(c.Timeout / time.Millisecond)}
	if len(c.Data) > 0 {
		cmd.Addr = uint64(uintptr(unsafe.Pointer(&c.Data[0])))
		cmd.DataLen = uint32(len(c.Data))
	}
	rc, err := d.rawConn()
	if err != nil {
		return 0, err
	}
	var (
		r     uintptr
		errno unix.Errno
	)
	if cerr := rc.Control(func(fd uintptr) {
		r, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, ioctlAdminCmd, uintptr(unsafe.Pointer(&cmd)))
	}); cerr != nil {
		return 0, fmt.Errorf("nvme: %s: %w", d.path, cerr)
	}
	runtime.KeepAlive(c.Data)
	if errno != 0 {
		return 0, fmt.Errorf("nvme: %s: opcode %#02x: %w", d.path, c.Opcode, os.NewSyscallError("ioctl(NVME_IOCTL_ADMIN_CMD)", errno))
	}
	if r != 0 {
		return cmd.Result, fmt.Errorf("nvme: %s: %w", d.path, &Status{Opcode: c.Opcode, Code: uint16(r)})
	}
	return cmd.Result, nil
}

// IdentifyController returns the Identify Controller data structure (CNS 1).
func (d *Device) IdentifyController(ctx context.Context) (Controller, error) {
	b := make([]byte, 4096)
	if _, err := d.Admin(ctx, Command{Opcode: OpIdentify, CDW10: 1, Data: b}); err != nil {
		return Controller{}, err
	}
	return ParseController(b)
}

// IdentifyNamespace returns the Identify Namespace data structure (CNS 0).
func (d *Device) IdentifyNamespace(ctx context.Context, nsid uint32) (Namespace, error) {
	b := make([]byte, 4096)
	if _, err := d.Admin(ctx, Command{Opcode: OpIdentify, NSID: nsid, CDW10: 0, Data: b}); err != nil {
		return Namespace{}, err
	}
	return ParseNamespace(b)
}

// ActiveNamespaces returns the active namespace ids (CNS 2, the first 1024).
func (d *Device) ActiveNamespaces(ctx context.Context) ([]uint32, error) {
	b := make([]byte, 4096)
	if _, err := d.Admin(ctx, Command{Opcode: OpIdentify, CDW10: 2, Data: b}); err != nil {
		return nil, err
	}
	return ParseNamespaceList(b)
}

// SanitizeLog reads the Sanitize Status log page (0x81).
func (d *Device) SanitizeLog(ctx context.Context) (SanitizeStatus, error) {
	b := make([]byte, 512)
	numd := uint32(len(b)/4 - 1)
	if _, err := d.Admin(ctx, Command{Opcode: OpGetLogPage, NSID: 0xffffffff, CDW10: 0x81 | (numd&0xffff)<<16, CDW11: numd >> 16, Data: b}); err != nil {
		return SanitizeStatus{}, err
	}
	return ParseSanitizeLog(b)
}

// Secure erase settings of Format NVM (SES).
const (
	SESNone     = 0
	SESUserData = 1
	SESCrypto   = 2
)

// Format issues Format NVM to nsid with LBA format lbaf (keep the
// namespace's current one: Namespace.FormatIndex) and secure erase setting
// ses, without protection information or metadata changes. It blocks until
// the controller completes (timeout bounds it).
func (d *Device) Format(ctx context.Context, nsid uint32, lbaf uint8, ses uint8, timeout time.Duration) error {
	if ses > SESCrypto || lbaf > 63 {
		return fmt.Errorf("nvme: %s: format: ses %d lbaf %d out of range", d.path, ses, lbaf)
	}
	cdw10 := uint32(lbaf&0xf) | uint32(ses)<<9 | uint32(lbaf>>4)<<12
	_, err := d.Admin(ctx, Command{Opcode: OpFormatNVM, NSID: nsid, CDW10: cdw10, Timeout: timeout})
	return err
}

// Sanitize actions (SANACT).
const (
	SanitizeExitFailure = 1
	SanitizeBlockErase  = 2
	SanitizeOverwrite   = 3
	SanitizeCrypto      = 4
)

// Sanitize starts a sanitize operation of the whole controller (every
// namespace) with action; pattern is the overwrite pattern (one pass).
// The command returns when the operation has started: poll SanitizeLog.
func (d *Device) Sanitize(ctx context.Context, action uint8, pattern uint32) error {
	if action < SanitizeExitFailure || action > SanitizeCrypto {
		return fmt.Errorf("nvme: %s: sanitize action %d out of range", d.path, action)
	}
	cdw10 := uint32(action)
	if action == SanitizeOverwrite {
		cdw10 |= 1 << 4 // OWPASS: one pass
	}
	_, err := d.Admin(ctx, Command{Opcode: OpSanitize, CDW10: cdw10, CDW11: pattern})
	return err
}

// WaitSanitize polls the sanitize log every interval until the operation
// ends, calling progress with the fraction done. It returns an error when the
// log says the sanitize failed.
func (d *Device) WaitSanitize(ctx context.Context, interval time.Duration, progress func(float64)) (SanitizeStatus, error) {
	return waitSanitize(ctx, d.path, interval, d.SanitizeLog, progress)
}

// waitSanitize is WaitSanitize's loop over any source of the log page.
func waitSanitize(ctx context.Context, path string, interval time.Duration, log func(context.Context) (SanitizeStatus, error), progress func(float64)) (SanitizeStatus, error) {
	for {
		s, err := log(ctx)
		if err != nil {
			return s, err
		}
		switch s.State {
		case SanitizeInProgress:
			progress(s.Progress)
		case SanitizeFailed:
			return s, fmt.Errorf("nvme: %s: sanitize failed (log state %d)", path, s.State)
		case SanitizeNever:
			return s, fmt.Errorf("nvme: %s: sanitize log says no sanitize ran", path)
		default:
			progress(1)
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("nvme: %s: waiting for sanitize at %.0f%%: %w", path, 100*s.Progress, ctx.Err())
		case <-time.After(interval):
		}
	}
}

// IsUnsupported reports whether err is the controller saying it does not
// implement a command or field.
func IsUnsupported(err error) bool {
	var s *Status
	return errors.As(err, &s) && s.Unsupported()
}
