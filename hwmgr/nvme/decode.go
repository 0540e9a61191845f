package nvme

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Controller is what erase needs from the Identify Controller data
// structure (NVMe base specification 2.0, figure 275).
type Controller struct {
	Serial   string // bytes 4–23
	Model    string // 24–63
	Firmware string // 64–71
	// OACS, bytes 256–257: bit 1 Format NVM supported.
	OACS uint16
	// SANICAP, bytes 328–331: bit 0 crypto erase, bit 1 block erase,
	// bit 2 overwrite.
	SANICAP uint32
	// NN, bytes 516–519: the number of namespaces the controller supports.
	NN uint32
	// FNA, byte 524: bit 0 a format applies to every namespace, bit 1 a
	// secure erase does, bit 2 cryptographic erase supported.
	FNA uint8
}

// Capability bits.
const (
	OACSFormat       = 1 << 1
	SANICAPCrypto    = 1 << 0
	SANICAPBlock     = 1 << 1
	SANICAPOverwrite = 1 << 2
	FNAFormatAll     = 1 << 0
	FNAEraseAll      = 1 << 1
	FNACrypto        = 1 << 2
)

// FormatSupported reports OACS bit 1.
func (c Controller) FormatSupported() bool { return c.OACS&OACSFormat != 0 }

// CryptoFormatSupported reports FNA bit 2 (SES 2 is allowed).
func (c Controller) CryptoFormatSupported() bool { return c.FNA&FNACrypto != 0 }

// SanitizeActions returns the SANACT values the controller supports,
// strongest first: crypto erase, block erase, overwrite.
func (c Controller) SanitizeActions() []uint8 {
	var out []uint8
	if c.SANICAP&SANICAPCrypto != 0 {
		out = append(out, SanitizeCrypto)
	}
	if c.SANICAP&SANICAPBlock != 0 {
		out = append(out, SanitizeBlockErase)
	}
	if c.SANICAP&SANICAPOverwrite != 0 {
		out = append(out, SanitizeOverwrite)
	}
	return out
}

// ParseController decodes an Identify Controller data structure.
func ParseController(b []byte) (Controller, error) {
	if len(b) < 4096 {
		return Controller{}, fmt.Errorf("nvme: identify controller: %d bytes, want 4096", len(b))
	}
	le := binary.LittleEndian
	return Controller{
		Serial:   ascii(b[4:24]),
		Model:    ascii(b[24:64]),
		Firmware: ascii(b[64:72]),
		OACS:     le.Uint16(b[256:]),
		SANICAP:  le.Uint32(b[328:]),
		NN:       le.Uint32(b[516:]),
		FNA:      b[524],
	}, nil
}

// LBAFormat is one entry of a namespace's LBA format table.
type LBAFormat struct {
	MetadataSize uint16
	DataShift    uint8 // LBADS: the block is 1 << DataShift bytes
}

// Namespace is what erase needs from the Identify Namespace data structure
// (figure 280).
type Namespace struct {
	Size        uint64 // NSZE in blocks, bytes 0–7
	Capacity    uint64 // NCAP, 8–15
	FormatIndex uint8  // from FLBAS, byte 26: bits 3:0 and 6:5
	Formats     []LBAFormat
}

// BlockSize is the data size of the namespace's current LBA format, or 0.
func (n Namespace) BlockSize() int {
	if int(n.FormatIndex) >= len(n.Formats) {
		return 0
	}
	s := n.Formats[n.FormatIndex].DataShift
	if s < 9 || s > 31 {
		return 0
	}
	return 1 << s
}

// ParseNamespace decodes an Identify Namespace data structure. The format
// index must name an entry of the table.
func ParseNamespace(b []byte) (Namespace, error) {
	if len(b) < 4096 {
		return Namespace{}, fmt.Errorf("nvme: identify namespace: %d bytes, want 4096", len(b))
	}
	le := binary.LittleEndian
	n := Namespace{Size: le.Uint64(b[0:]), Capacity: le.Uint64(b[8:])}
	nlbaf := int(b[25]) + 1 // zero-based
	if nlbaf > 64 {
		return Namespace{}, fmt.Errorf("nvme: identify namespace: %d LBA formats, at most 64", nlbaf)
	}
	n.FormatIndex = b[26]&0xf | (b[26]>>5&0x3)<<4
	for i := range nlbaf {
		e := b[128+4*i:]
		n.Formats = append(n.Formats, LBAFormat{MetadataSize: le.Uint16(e), DataShift: e[2]})
	}
	if int(n.FormatIndex) >= nlbaf {
		return Namespace{}, fmt.Errorf("nvme: identify namespace: format index %d of %d formats", n.FormatIndex, nlbaf)
	}
	return n, nil
}

// ParseNamespaceList decodes an active namespace id list (CNS 2): ids in
// increasing order, ended by the first zero.
func ParseNamespaceList(b []byte) ([]uint32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("nvme: namespace list of %d bytes", len(b))
	}
	var out []uint32
	for i := 0; i < len(b); i += 4 {
		id := binary.LittleEndian.Uint32(b[i:])
		if id == 0 {
			break
		}
		if len(out) > 0 && id <= out[len(out)-1] {
			return nil, fmt.Errorf("nvme: namespace list not increasing at %d: %d after %d", i/4, id, out[len(out)-1])
		}
		out = append(out, id)
	}
	return out, nil
}

// SanitizeState is bits 2:0 of the sanitize status (SSTAT).
type SanitizeState uint8

// Sanitize states.
const (
	SanitizeNever            SanitizeState = 0
	SanitizeDone             SanitizeState = 1
	SanitizeInProgress       SanitizeState = 2
	SanitizeFailed           SanitizeState = 3
	SanitizeDoneNoDeallocate SanitizeState = 4
	sanitizeStateLastDefined               = SanitizeDoneNoDeallocate
)

// SanitizeStatus is the Sanitize Status log page (0x81, figure 290).
type SanitizeStatus struct {
	Progress float64       // SPROG / 65536, bytes 0–1
	State    SanitizeState // SSTAT bits 2:0, bytes 2–3
	Passes   uint8         // SSTAT bits 7:3: overwrite passes done
	CDW10    uint32        // SCDW10 of the last sanitize, bytes 4–7
	// Estimated times in seconds (0xffffffff: unknown), bytes 8–19.
	EstOverwrite, EstBlockErase, EstCrypto uint32
}

// ParseSanitizeLog decodes the sanitize status log page.
func ParseSanitizeLog(b []byte) (SanitizeStatus, error) {
	if len(b) < 20 {
		return SanitizeStatus{}, fmt.Errorf("nvme: sanitize log: %d bytes, want at least 20", len(b))
	}
	le := binary.LittleEndian
	sstat := le.Uint16(b[2:])
	s := SanitizeStatus{
		Progress: float64(le.Uint16(b[0:])) / 65536,
		State:    SanitizeState(sstat & 0x7),
		Passes:   uint8(sstat>>3) & 0x1f,
		CDW10:    le.Uint32(b[4:]), EstOverwrite: le.Uint32(b[8:]), EstBlockErase: le.Uint32(b[12:]), EstCrypto: le.Uint32(b[16:]),
	}
	if s.State > sanitizeStateLastDefined {
		return SanitizeStatus{}, fmt.Errorf("nvme: sanitize log: reserved state %d", s.State)
	}
	return s, nil
}

// ascii trims an ASCII field padded with spaces (or NULs) and replaces
// non-printable bytes.
func ascii(b []byte) string {
	return strings.TrimRight(strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			if r == 0 {
				return ' '
			}
			return '?'
		}
		return r
	}, string(b)), " ")
}
