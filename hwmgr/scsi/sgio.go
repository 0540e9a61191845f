// Package scsi issues SCSI commands through Linux's SG_IO ioctl on a block
// device (/dev/sdX): SANITIZE, FORMAT UNIT, REPORT SUPPORTED OPERATION
// CODES, REQUEST SENSE, and ATA commands wrapped in ATA PASS-THROUGH(16)
// (IDENTIFY DEVICE and the security feature set) for SATA drives behind
// libata or a SAT layer. The byte layouts of CDBs and responses are built
// and decoded by small functions that never panic on hostile input (sense
// data, IDENTIFY DEVICE, supported-opcode lists). The caller needs
// CAP_SYS_RAWIO for commands the kernel's filter does not allow.
package scsi

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

const sgIO = 0x2285 // SG_IO, scsi/sg.h

// Transfer directions (sg_io_hdr.dxfer_direction).
const (
	dxferNone    = -1
	dxferToDev   = -2
	dxferFromDev = -3
)

// sgIOHdr is struct sg_io_hdr on 64-bit Linux (88 bytes).
type sgIOHdr struct {
	InterfaceID    int32
	DxferDirection int32
	CmdLen         uint8
	MxSbLen        uint8
	IovecCount     uint16
	DxferLen       uint32
	Dxferp         unsafe.Pointer
	Cmdp           unsafe.Pointer
	Sbp            unsafe.Pointer
	Timeout        uint32
	Flags          uint32
	PackID         int32
	_              [4]byte
	UsrPtr         unsafe.Pointer
	Status         uint8
	MaskedStatus   uint8
	MsgStatus      uint8
	SbLenWr        uint8
	HostStatus     uint16
	DriverStatus   uint16
	Resid          int32
	Duration       uint32
	Info           uint32
	_              [4]byte
}

var _ [88]byte = [unsafe.Sizeof(sgIOHdr{})]byte{}

// Direction of a command's data.
type Direction int

// Directions.
const (
	None Direction = iota
	FromDevice
	ToDevice
)

// Status values (SAM).
const (
	StatusGood           = 0x00
	StatusCheckCondition = 0x02
)

// Error is a command that did not complete with GOOD status: a CHECK
// CONDITION with its decoded sense data, or a host/driver error.
type Error struct {
	Op           string // the command's name
	Status       uint8
	HostStatus   uint16
	DriverStatus uint16
	Sense        Sense
	SenseErr     error // when the sense data did not decode
}

func (e *Error) Error() string {
	if e.Status == StatusCheckCondition && e.SenseErr == nil {
		return fmt.Sprintf("scsi: %s: check condition: %s", e.Op, e.Sense)
	}
	s := fmt.Sprintf("scsi: %s: status %#02x host %#x driver %#x", e.Op, e.Status, e.HostStatus, e.DriverStatus)
	if e.SenseErr != nil {
		s += ": " + e.SenseErr.Error()
	}
	return s
}

// Unsupported reports whether the device rejected the command as one it
// does not implement: ILLEGAL REQUEST with INVALID COMMAND OPERATION CODE
// (20h/00h) or INVALID FIELD IN CDB (24h/00h).
func (e *Error) Unsupported() bool {
	return e.Status == StatusCheckCondition && e.SenseErr == nil && e.Sense.Key == KeyIllegalRequest &&
		(e.Sense.ASC == 0x20 || e.Sense.ASC == 0x24) && e.Sense.ASCQ == 0
}

// IsUnsupported reports whether err is a device saying it does not
// implement a command (see Error.Unsupported).
func IsUnsupported(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Unsupported()
}

// Device is an open SCSI block device.
type Device struct {
	f    *os.File
	path string
}

// Open opens path read-write (SG_IO of commands that change the medium
// needs it).
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("scsi: %w", err)
	}
	return &Device{f: f, path: path}, nil
}

// Close closes the device.
func (d *Device) Close() error { return d.f.Close() }

// Path is the device's path.
func (d *Device) Path() string { return d.path }

// Result is a completed command's outcome besides its data.
type Result struct {
	Resid int   // bytes not transferred
	Sense Sense // sense data returned with GOOD status (ATA PASS-THROUGH with CK_COND)
	// HasSense reports whether Sense was returned.
	HasSense bool
}

// Do runs one command: cdb, data in dir, bounded by timeout (0: 60 s). A
// command that does not complete with GOOD status returns *Error. ctx is
// checked before the command is issued (SG_IO cannot be interrupted).
func (d *Device) Do(ctx context.Context, op string, cdb []byte, dir Direction, data []byte, timeout time.Duration) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("scsi: %s: %s: %w", d.path, op, err)
	}
	if len(cdb) == 0 || len(cdb) > 32 {
		return Result{}, fmt.Errorf("scsi: %s: %s: CDB of %d bytes", d.path, op, len(cdb))
	}
	if timeout == 0 {
		timeout = time.Minute
	}
	sense := make([]byte, 64)
	h := sgIOHdr{InterfaceID: 'S', DxferDirection: dxferNone, CmdLen: uint8(len(cdb)), MxSbLen: uint8(len(sense)),
		Cmdp: unsafe.Pointer(&cdb[0]), Sbp: unsafe.Pointer(&sense[0]), Timeout: uint32(timeout / time.Millisecond)}
	if len(data) > 0 && dir != None {
		h.Dxferp, h.DxferLen = unsafe.Pointer(&data[0]), uint32(len(data))
		h.DxferDirection = dxferFromDev
		if dir == ToDevice {
			h.DxferDirection = dxferToDev
		}
	}
	rc, err := d.f.SyscallConn()
	if err != nil {
		return Result{}, fmt.Errorf("scsi: %s: %w", d.path, err)
	}
	var errno unix.Errno
	if cerr := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, sgIO, uintptr(unsafe.Pointer(&h)))
	}); cerr != nil {
		return Result{}, fmt.Errorf("scsi: %s: %w", d.path, cerr)
	}
	runtime.KeepAlive(cdb)
	runtime.KeepAlive(data)
	runtime.KeepAlive(sense)
	if errno != 0 {
		return Result{}, fmt.Errorf("scsi: %s: %s: %w", d.path, op, os.NewSyscallError("ioctl(SG_IO)", errno))
	}
	res := Result{Resid: int(h.Resid)}
	sb := sense[:min(int(h.SbLenWr), len(sense))]
	var serr error
	if len(sb) > 0 {
		res.Sense, serr = ParseSense(sb)
		res.HasSense = serr == nil
		if serr == nil && cdb[0] == 0x85 {
			res.Sense.ataFixed(sb)
		}
	}
	// DRIVER_SENSE (0x08) with GOOD status is how ATA PASS-THROUGH with
	// CK_COND returns its registers; any other host/driver status fails.
	if h.Status != StatusGood || h.HostStatus != 0 || (h.DriverStatus&^0x08) != 0 {
		e := &Error{Op: op, Status: h.Status, HostStatus: h.HostStatus, DriverStatus: h.DriverStatus, Sense: res.Sense, SenseErr: serr}
		if h.Status == StatusCheckCondition && len(sb) == 0 {
			e.SenseErr = errors.New("no sense data")
		}
		// ATA PASS-THROUGH returns CHECK CONDITION with "ATA PASS
		// THROUGH INFORMATION AVAILABLE" (00h/1Dh) when CK_COND is set:
		// the registers are in the sense data, the command succeeded.
		if h.Status == StatusCheckCondition && serr == nil && (res.Sense.Key == KeyNoSense || res.Sense.Key == KeyRecoveredError) &&
			res.Sense.ASC == 0 && res.Sense.ASCQ == 0x1d {
			return res, nil
		}
		return res, fmt.Errorf("scsi: %s: %w", d.path, e)
	}
	return res, nil
}
