package scsi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ATA command codes (ACS-3).
const (
	ATAIdentify             = 0xec
	ATASecuritySetPassword  = 0xf1
	ATASecurityErasePrepare = 0xf3
	ATASecurityEraseUnit    = 0xf4
	ATASecurityDisable      = 0xf6
)

// ATA PASS-THROUGH protocols (SAT-4 table 148).
const (
	protoNonData = 3
	protoPIOIn   = 4
	protoPIOOut  = 5
)

// ATA16 builds an ATA PASS-THROUGH(16) CDB for a 28-bit command with
// protocol proto, one 512-byte sector of data when proto is PIO.
func ATA16(proto uint8, command, features, count uint8) []byte {
	cdb := make([]byte, 16)
	cdb[0] = 0x85
	cdb[1] = proto << 1
	switch proto {
	case protoPIOIn:
		cdb[2] = 0x0e // T_DIR in, BYT_BLOK, T_LENGTH in the count field
	case protoPIOOut:
		cdb[2] = 0x06
	default:
		cdb[2] = 0x20 // CK_COND: return the registers
	}
	cdb[4] = features
	cdb[6] = count
	cdb[13] = 0x40 // device: LBA mode
	cdb[14] = command
	return cdb
}

// Identify is what erase needs from IDENTIFY DEVICE (ACS-3 table 45).
type Identify struct {
	Serial   string // words 10–19
	Firmware string // words 23–26
	Model    string // words 27–46
	// SecuritySupported: word 82 bit 1 (the security feature set).
	SecuritySupported bool
	// Security is word 128 (security status).
	Security SecurityStatus
	// EraseMinutes and EnhancedEraseMinutes: words 89 and 90 (time
	// required, 0 = not given; 508+ means more than 508 minutes).
	EraseMinutes, EnhancedEraseMinutes int
}

// SecurityStatus is IDENTIFY DEVICE word 128.
type SecurityStatus struct {
	Supported, Enabled, Locked, Frozen, CountExpired, EnhancedErase bool
	MaxLevel                                                        bool // security level maximum (bit 8)
}

// ParseIdentify decodes the 512-byte IDENTIFY DEVICE data. A page whose
// integrity word (255) has signature A5h must checksum to zero.
func ParseIdentify(b []byte) (Identify, error) {
	if len(b) < 512 {
		return Identify{}, fmt.Errorf("scsi: identify device: %d bytes, want 512", len(b))
	}
	w := func(i int) uint16 { return binary.LittleEndian.Uint16(b[2*i:]) }
	if b[510] == 0xa5 {
		var sum byte
		for _, c := range b[:512] {
			sum += c
		}
		if sum != 0 {
			return Identify{}, fmt.Errorf("scsi: identify device: checksum %#02x, want 0", sum)
		}
	}
	minutes := func(v uint16) int {
		v &= 0xff
		switch v {
		case 0:
			return 0
		case 0xff:
			return 508
		}
		return 2 * int(v)
	}
	s := w(128)
	id := Identify{
		Serial: ataString(b[20:40]), Firmware: ataString(b[46:54]), Model: ataString(b[54:94]),
		// Word 82 is valid when word 83 bits 15:14 are 01b.
		SecuritySupported:    w(82)&0x2 != 0 && w(83)&0xc000 == 0x4000,
		EraseMinutes:         minutes(w(89)),
		EnhancedEraseMinutes: minutes(w(90)),
		Security: SecurityStatus{Supported: s&0x1 != 0, Enabled: s&0x2 != 0, Locked: s&0x4 != 0, Frozen: s&0x8 != 0,
			CountExpired: s&0x10 != 0, EnhancedErase: s&0x20 != 0, MaxLevel: s&0x100 != 0},
	}
	return id, nil
}

// ataString decodes an ATA string: byte-swapped 16-bit words, space padded.
func ataString(b []byte) string {
	out := make([]byte, len(b))
	for i := 0; i+1 < len(b); i += 2 {
		out[i], out[i+1] = b[i+1], b[i]
	}
	return strings.TrimSpace(ascii(out))
}

func ascii(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, string(b))
}

// ATAIdentifyDevice issues IDENTIFY DEVICE through ATA PASS-THROUGH(16).
func (d *Device) ATAIdentifyDevice(ctx context.Context) (Identify, error) {
	b := make([]byte, 512)
	if _, err := d.Do(ctx, "ATA IDENTIFY DEVICE", ATA16(protoPIOIn, ATAIdentify, 0, 1), FromDevice, b, 30*time.Second); err != nil {
		return Identify{}, err
	}
	return ParseIdentify(b)
}

// Password is an ATA security password (32 bytes).
type Password [32]byte

// securityBlock builds the 512-byte data of SET PASSWORD, ERASE UNIT and
// DISABLE PASSWORD: word 0 the control bits, words 1–16 the password.
func securityBlock(control uint16, pw Password) []byte {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint16(b, control)
	copy(b[2:34], pw[:])
	return b
}

// ATASecuritySetPassword sets the user password pw at security level high
// (SECURITY SET PASSWORD), which enables the security feature set.
func (d *Device) ATASecuritySetPassword(ctx context.Context, pw Password) error {
	_, err := d.Do(ctx, "ATA SECURITY SET PASSWORD", ATA16(protoPIOOut, ATASecuritySetPassword, 0, 1), ToDevice, securityBlock(0, pw), 30*time.Second)
	return err
}

// ATASecurityErasePrepare issues SECURITY ERASE PREPARE, which must
// immediately precede SECURITY ERASE UNIT.
func (d *Device) ATASecurityErasePrepare(ctx context.Context) error {
	_, err := d.Do(ctx, "ATA SECURITY ERASE PREPARE", ATA16(protoNonData, ATASecurityErasePrepare, 0, 0), None, nil, 30*time.Second)
	return err
}

// ATASecurityEraseUnit erases the drive with the user password pw (normal
// or enhanced erase), blocking for up to timeout.
func (d *Device) ATASecurityEraseUnit(ctx context.Context, pw Password, enhanced bool, timeout time.Duration) error {
	var ctl uint16
	if enhanced {
		ctl |= 1 << 1
	}
	_, err := d.Do(ctx, "ATA SECURITY ERASE UNIT", ATA16(protoPIOOut, ATASecurityEraseUnit, 0, 1), ToDevice, securityBlock(ctl, pw), timeout)
	return err
}

// ATASecurityDisablePassword removes the user password pw (SECURITY
// DISABLE PASSWORD).
func (d *Device) ATASecurityDisablePassword(ctx context.Context, pw Password) error {
	_, err := d.Do(ctx, "ATA SECURITY DISABLE PASSWORD", ATA16(protoPIOOut, ATASecurityDisable, 0, 1), ToDevice, securityBlock(0, pw), 30*time.Second)
	return err
}

// Errors of the security state machine; branch with errors.Is.
var (
	ErrSecurityUnsupported = errors.New("scsi: ATA security feature set not supported")
	ErrSecurityFrozen      = errors.New("scsi: ATA security is frozen (power-cycle or suspend the drive to unfreeze)")
	ErrSecurityLocked      = errors.New("scsi: ATA security is locked")
	ErrSecurityEnabled     = errors.New("scsi: ATA security is already enabled (a password is set)")
	ErrSecurityCount       = errors.New("scsi: ATA security password attempt counter expired")
)

// CheckSecurityErase says whether the hdparm-style security erase may start
// on a drive with this IDENTIFY data: supported, not enabled (nobody else's
// password), not locked, not frozen, attempts left.
func CheckSecurityErase(id Identify) error {
	s := id.Security
	switch {
	case !id.SecuritySupported || !s.Supported:
		return ErrSecurityUnsupported
	case s.Frozen:
		return ErrSecurityFrozen
	case s.Locked:
		return ErrSecurityLocked
	case s.Enabled:
		return ErrSecurityEnabled
	case s.CountExpired:
		return ErrSecurityCount
	}
	return nil
}
