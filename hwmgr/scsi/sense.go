package scsi

import (
	"encoding/binary"
	"fmt"
)

// Sense keys (SPC-5 table 54).
const (
	KeyNoSense        = 0x0
	KeyRecoveredError = 0x1
	KeyNotReady       = 0x2
	KeyMediumError    = 0x3
	KeyHardwareError  = 0x4
	KeyIllegalRequest = 0x5
	KeyUnitAttention  = 0x6
	KeyDataProtect    = 0x7
	KeyAbortedCommand = 0xb
)

// Sense is decoded sense data, fixed (70h/71h) or descriptor (72h/73h)
// format.
type Sense struct {
	Code uint8 // response code: 0x70–0x73
	Key  uint8
	ASC  uint8
	ASCQ uint8
	// Progress is the sense-key-specific progress indication (0..65535
	// of 65536) of a NOT READY sense while a format or sanitize runs;
	// HasProgress says it was present.
	Progress    uint16
	HasProgress bool
	// ATA is the ATA Status Return descriptor (09h) of an ATA PASS-THROUGH
	// command (descriptor format), HasATA says it was present.
	ATA    ATARegisters
	HasATA bool
}

// ATARegisters are the ATA output registers of a pass-through command.
type ATARegisters struct {
	Error, Count, LBALow, LBAMid, LBAHigh, Device, Status uint8
}

// ParseSense decodes sense data.
func ParseSense(b []byte) (Sense, error) {
	if len(b) < 2 {
		return Sense{}, fmt.Errorf("scsi: sense data of %d bytes", len(b))
	}
	s := Sense{Code: b[0] & 0x7f}
	switch s.Code {
	case 0x70, 0x71:
		if len(b) < 8 {
			return Sense{}, fmt.Errorf("scsi: fixed sense data of %d bytes, want ≥ 8", len(b))
		}
		s.Key = b[2] & 0xf
		n := min(8+int(b[7]), len(b))
		if n > 13 {
			s.ASC, s.ASCQ = b[12], b[13]
		} else if n > 12 {
			s.ASC = b[12]
		}
		if n >= 18 && b[15]&0x80 != 0 && (s.Key == KeyNotReady || s.Key == KeyNoSense) {
			s.Progress, s.HasProgress = binary.BigEndian.Uint16(b[16:]), true
		}
	case 0x72, 0x73:
		if len(b) < 8 {
			return Sense{}, fmt.Errorf("scsi: descriptor sense data of %d bytes, want ≥ 8", len(b))
		}
		s.Key, s.ASC, s.ASCQ = b[1]&0xf, b[2], b[3]
		end := min(8+int(b[7]), len(b))
		for i := 8; i+2 <= end; {
			typ, l := b[i], int(b[i+1])
			if i+2+l > end {
				return Sense{}, fmt.Errorf("scsi: sense descriptor %#02x at %d overruns the data (%d bytes)", typ, i, l)
			}
			d := b[i : i+2+l]
			switch {
			case typ == 0x09 && l >= 12: // ATA Status Return
				s.ATA = ATARegisters{Error: d[3], Count: d[5], LBALow: d[7], LBAMid: d[9], LBAHigh: d[11], Device: d[12], Status: d[13]}
				s.HasATA = true
			case typ == 0x02 && l >= 6 && d[4]&0x80 != 0: // sense key specific
				if s.Key == KeyNotReady || s.Key == KeyNoSense {
					s.Progress, s.HasProgress = binary.BigEndian.Uint16(d[5:]), true
				}
			}
			i += 2 + l
		}
	default:
		return Sense{}, fmt.Errorf("scsi: sense response code %#02x", s.Code)
	}
	return s, nil
}

// ataFixed fills the ATA registers of an ATA PASS-THROUGH command from
// fixed-format sense data, where SAT puts them in the INFORMATION field
// (bytes 3–6: error, status, device, count).
func (s *Sense) ataFixed(b []byte) {
	if s.HasATA || (s.Code != 0x70 && s.Code != 0x71) || len(b) < 7 {
		return
	}
	s.ATA = ATARegisters{Error: b[3], Status: b[4], Device: b[5], Count: b[6]}
	s.HasATA = true
}

var keyNames = [...]string{"NO SENSE", "RECOVERED ERROR", "NOT READY", "MEDIUM ERROR", "HARDWARE ERROR",
	"ILLEGAL REQUEST", "UNIT ATTENTION", "DATA PROTECT", "BLANK CHECK", "VENDOR SPECIFIC", "COPY ABORTED",
	"ABORTED COMMAND", "RESERVED", "VOLUME OVERFLOW", "MISCOMPARE", "COMPLETED"}

func (s Sense) String() string {
	str := fmt.Sprintf("%s, asc/ascq %02xh/%02xh", keyNames[s.Key&0xf], s.ASC, s.ASCQ)
	switch {
	case s.ASC == 0x20 && s.ASCQ == 0:
		str += " (invalid command operation code)"
	case s.ASC == 0x24 && s.ASCQ == 0:
		str += " (invalid field in CDB)"
	case s.ASC == 0x04 && s.ASCQ == 0x04:
		str += " (format in progress)"
	case s.ASC == 0x04 && s.ASCQ == 0x1b:
		str += " (sanitize in progress)"
	}
	if s.HasProgress {
		str += fmt.Sprintf(", progress %.0f%%", float64(s.Progress)/655.36)
	}
	if s.HasATA {
		str += fmt.Sprintf(", ATA status %#02x error %#02x", s.ATA.Status, s.ATA.Error)
	}
	return str
}
