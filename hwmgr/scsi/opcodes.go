package scsi

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// SCSI operation codes used here.
const (
	OpTestUnitReady = 0x00
	OpRequestSense  = 0x03
	OpFormatUnit    = 0x04
	OpSanitize      = 0x48
	OpMaintenanceIn = 0xa3
	saReportOpcodes = 0x0c
)

// SANITIZE service actions (SBC-4 table 84).
const (
	SanitizeOverwrite  = 0x01
	SanitizeBlockErase = 0x02
	SanitizeCrypto     = 0x03
	SanitizeExitFail   = 0x1f
)

// Opcode is one supported command in a REPORT SUPPORTED OPERATION CODES
// list.
type Opcode struct {
	Code          uint8
	ServiceAction uint16
	HasSA         bool // SERVACTV: the service action is significant
	CDBLen        uint16
}

// Opcodes is the list a device reports.
type Opcodes []Opcode

// Has reports whether the list holds code (with service action sa when the
// list distinguishes them for code).
func (o Opcodes) Has(code uint8, sa uint16) bool {
	for _, c := range o {
		if c.Code == code && (!c.HasSA || c.ServiceAction == sa) {
			return true
		}
	}
	return false
}

// ParseOpcodes decodes the "all commands" format of REPORT SUPPORTED
// OPERATION CODES (SPC-5 6.35.2): a 4-byte length, then 8-byte descriptors
// (20 bytes with a command timeouts descriptor, CTDP).
func ParseOpcodes(b []byte) (Opcodes, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("scsi: supported opcodes: %d bytes", len(b))
	}
	n := int(binary.BigEndian.Uint32(b))
	if n > len(b)-4 {
		n = len(b) - 4 // truncated by the allocation length: decode what came
	}
	var out Opcodes
	for i := 4; i+8 <= 4+n; {
		d := b[i:]
		op := Opcode{Code: d[0], ServiceAction: binary.BigEndian.Uint16(d[2:]), HasSA: d[5]&0x1 != 0, CDBLen: binary.BigEndian.Uint16(d[6:])}
		if op.CDBLen == 0 || op.CDBLen > 260 {
			return nil, fmt.Errorf("scsi: supported opcodes: descriptor at %d has CDB length %d", i, op.CDBLen)
		}
		out = append(out, op)
		i += 8
		if d[5]&0x2 != 0 { // CTDP: a 12-byte timeouts descriptor follows
			i += 12
		}
	}
	return out, nil
}

// ReportSupportedOpcodes issues REPORT SUPPORTED OPERATION CODES (all
// commands).
func (d *Device) ReportSupportedOpcodes(ctx context.Context) (Opcodes, error) {
	b := make([]byte, 16384)
	cdb := make([]byte, 12)
	cdb[0], cdb[1] = OpMaintenanceIn, saReportOpcodes
	binary.BigEndian.PutUint32(cdb[6:], uint32(len(b)))
	res, err := d.Do(ctx, "REPORT SUPPORTED OPERATION CODES", cdb, FromDevice, b, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return ParseOpcodes(b[:len(b)-max(res.Resid, 0)])
}

// SanitizeCDB builds SANITIZE with IMMED set and service action sa; plen is
// the parameter list length (overwrite only).
func SanitizeCDB(sa uint8, plen uint16) []byte {
	cdb := make([]byte, 10)
	cdb[0] = OpSanitize
	cdb[1] = 0x80 | sa&0x1f // IMMED
	binary.BigEndian.PutUint16(cdb[7:], plen)
	return cdb
}

// Sanitize starts SANITIZE with service action sa (IMMED: it returns at
// once; WaitReady polls progress). Overwrite writes one pass of zeros.
func (d *Device) Sanitize(ctx context.Context, sa uint8) error {
	switch sa {
	case SanitizeBlockErase, SanitizeCrypto:
		_, err := d.Do(ctx, "SANITIZE", SanitizeCDB(sa, 0), None, nil, time.Minute)
		return err
	case SanitizeOverwrite:
		// Parameter list: one pass (count 1), a 4-byte zero pattern.
		p := []byte{0x01, 0, 0, 4, 0, 0, 0, 0}
		_, err := d.Do(ctx, "SANITIZE", SanitizeCDB(sa, uint16(len(p))), ToDevice, p, time.Minute)
		return err
	}
	return fmt.Errorf("scsi: %s: sanitize service action %#x", d.path, sa)
}

// FormatUnit issues FORMAT UNIT without parameter data (the device's
// default format) and waits for it for up to timeout.
func (d *Device) FormatUnit(ctx context.Context, timeout time.Duration) error {
	_, err := d.Do(ctx, "FORMAT UNIT", []byte{OpFormatUnit, 0, 0, 0, 0, 0}, None, nil, timeout)
	return err
}

// TestUnitReady issues TEST UNIT READY.
func (d *Device) TestUnitReady(ctx context.Context) error {
	_, err := d.Do(ctx, "TEST UNIT READY", make([]byte, 6), None, nil, 30*time.Second)
	return err
}

// RequestSense returns the device's current sense data (REQUEST SENSE),
// which carries progress while a sanitize or format runs.
func (d *Device) RequestSense(ctx context.Context) (Sense, error) {
	b := make([]byte, 252)
	res, err := d.Do(ctx, "REQUEST SENSE", []byte{OpRequestSense, 0, 0, 0, byte(len(b)), 0}, FromDevice, b, 30*time.Second)
	if err != nil {
		return Sense{}, err
	}
	return ParseSense(b[:len(b)-max(res.Resid, 0)])
}

// WaitReady polls REQUEST SENSE every interval while the device reports
// NOT READY with a format or sanitize in progress, calling progress with the
// fraction done; it returns when the device is ready again.
func (d *Device) WaitReady(ctx context.Context, interval time.Duration, progress func(float64)) error {
	return waitReady(ctx, d.path, interval, d.RequestSense, progress)
}

// waitReady is WaitReady's loop over any source of sense data.
func waitReady(ctx context.Context, path string, interval time.Duration, sense func(context.Context) (Sense, error), progress func(float64)) error {
	for {
		s, err := sense(ctx)
		if err != nil {
			return err
		}
		busy := s.Key == KeyNotReady && s.ASC == 0x04 && (s.ASCQ == 0x04 || s.ASCQ == 0x1b)
		if !busy {
			if s.Key == KeyMediumError || s.Key == KeyHardwareError || s.ASC == 0x31 {
				return fmt.Errorf("scsi: %s: after sanitize/format: %s", path, s)
			}
			progress(1)
			return nil
		}
		if s.HasProgress {
			progress(float64(s.Progress) / 65536)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scsi: %s: waiting for the device: %w", path, ctx.Err())
		case <-time.After(interval):
		}
	}
}
