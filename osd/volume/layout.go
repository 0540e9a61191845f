package volume

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
)

// LayoutMagic starts every encoded layout record.
const LayoutMagic = "STOWVOL1"

// LayoutVersion is the only layout format version this package writes.
const LayoutVersion = 1

// Limits of the code.
const (
	MaxK = 12
	MaxM = 4
)

const (
	layoutHeader = 56 // bytes before the slot table
	slotEntry    = 17 // drive id (16) + state (1)
	layoutCRC    = 4
)

// ErrLayoutCorrupt is wrapped by every layout decoding error.
var ErrLayoutCorrupt = errors.New("volume: corrupt layout record")

// UUID is a random 128-bit identifier (RFC 9562 version 4) of a volume or
// a drive's membership in one.
type UUID [16]byte

// NewUUID draws a random version-4 UUID.
func NewUUID() UUID {
	var u UUID
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// IsZero reports whether u is all zeros (unset).
func (u UUID) IsZero() bool { return u == UUID{} }

func (u UUID) String() string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// SlotState is what the layout says about one slot's drive.
type SlotState uint8

// Slot states.
const (
	SlotOK         SlotState = 0 // holds every fragment of its slot
	SlotRebuilding SlotState = 1 // a replacement being filled by Rebuild
	// SlotLost: the member's drive was taken out (failed or pulled,
	// MarkLost). The drive id stays the lost drive's, so that a restart
	// that finds that drive (whose own label still says ok, in an older
	// generation) knows it stale and leaves it out. Rebuild gives the slot
	// a new drive.
	SlotLost SlotState = 2
)

func (s SlotState) String() string {
	switch s {
	case SlotOK:
		return "ok"
	case SlotRebuilding:
		return "rebuilding"
	case SlotLost:
		return "lost"
	}
	return fmt.Sprintf("SlotState(%d)", uint8(s))
}

// Member is one slot of the layout: the drive that holds it and its state.
type Member struct {
	Drive UUID
	State SlotState
}

// Layout is the volume's superblock, kept as the label owner payload on
// every member drive. All members hold the same layout except Slot; the
// highest Generation found among them wins.
type Layout struct {
	Version    uint16
	Generation uint64 // bumped on every membership change (rebuild)
	Volume     UUID
	K, M       int
	Slot       int // the slot of the drive this copy is stored on
	// Fragment geometry: where and how the engine lays fragments out.
	ZoneSize       int64 // bytes per zone the engine was opened with
	FirstZone      int   // first zone the engine uses (the label lies below)
	ZonesPerExtent int
	MaxBlock       int // largest block; a fragment is at most ceil(MaxBlock/K)
	Members        []Member
}

// Encode returns the layout's bytes:
//
//	 0  magic "STOWVOL1"                               8
//	 8  version u16 │ record length u16               4
//	12  generation u64                                 8
//	20  volume UUID                                   16
//	36  k u8 │ m u8 │ slot u8 │ reserved u8 (0)        4
//	40  zone size u64                                  8
//	48  first zone u16 │ zones per extent u16          4
//	52  max block u32                                  4
//	56  slot table: (k+m) × { drive UUID 16 │ state u8 }
//	    (state 0 ok, 1 rebuilding, 2 lost; 2 is newer than the format,
//	    which is why old records, holding only 0 and 1, still decode)
//	 …  CRC32C (Castagnoli) of all bytes before it   u32
//
// All integers little-endian.
func (l *Layout) Encode() ([]byte, error) {
	if err := l.validate(); err != nil {
		return nil, err
	}
	n := l.K + l.M
	b := make([]byte, 0, layoutHeader+n*slotEntry+layoutCRC)
	b = append(b, LayoutMagic...)
	b = binary.LittleEndian.AppendUint16(b, l.Version)
	b = binary.LittleEndian.AppendUint16(b, uint16(layoutHeader+n*slotEntry+layoutCRC))
	b = binary.LittleEndian.AppendUint64(b, l.Generation)
	b = append(b, l.Volume[:]...)
	b = append(b, byte(l.K), byte(l.M), byte(l.Slot), 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(l.ZoneSize))
	b = binary.LittleEndian.AppendUint16(b, uint16(l.FirstZone))
	b = binary.LittleEndian.AppendUint16(b, uint16(l.ZonesPerExtent))
	b = binary.LittleEndian.AppendUint32(b, uint32(l.MaxBlock))
	for _, m := range l.Members {
		b = append(b, m.Drive[:]...)
		b = append(b, byte(m.State))
	}
	b = binary.LittleEndian.AppendUint32(b, crc32c(b))
	return b, nil
}

func (l *Layout) validate() error {
	switch {
	case l.Version != LayoutVersion:
		return fmt.Errorf("volume: layout version %d, want %d", l.Version, LayoutVersion)
	case l.Generation == 0:
		return errors.New("volume: layout generation 0")
	case l.Volume.IsZero():
		return errors.New("volume: layout without a volume id")
	case l.K < 1 || l.K > MaxK:
		return fmt.Errorf("volume: k = %d, want 1..%d", l.K, MaxK)
	case l.M < 1 || l.M > MaxM:
		return fmt.Errorf("volume: m = %d, want 1..%d", l.M, MaxM)
	case l.Slot < 0 || l.Slot >= l.K+l.M:
		return fmt.Errorf("volume: slot %d outside 0..%d", l.Slot, l.K+l.M-1)
	case l.ZoneSize < 4096 || l.ZoneSize%4096 != 0:
		return fmt.Errorf("volume: zone size %d is not a positive multiple of 4096", l.ZoneSize)
	case l.FirstZone < 0 || l.FirstZone > 0xffff:
		return fmt.Errorf("volume: first zone %d outside 0..65535", l.FirstZone)
	case l.ZonesPerExtent < 1 || l.ZonesPerExtent > 0xffff:
		return fmt.Errorf("volume: zones per extent %d outside 1..65535", l.ZonesPerExtent)
	case l.MaxBlock < 1 || int64(l.MaxBlock) > 1<<32-1:
		return fmt.Errorf("volume: max block %d", l.MaxBlock)
	case len(l.Members) != l.K+l.M:
		return fmt.Errorf("volume: %d members for a %d+%d code", len(l.Members), l.K, l.M)
	}
	seen := make(map[UUID]int, len(l.Members))
	for i, m := range l.Members {
		if m.Drive.IsZero() {
			return fmt.Errorf("volume: slot %d has no drive id", i)
		}
		if j, dup := seen[m.Drive]; dup {
			return fmt.Errorf("volume: slots %d and %d name the same drive %s", j, i, m.Drive)
		}
		seen[m.Drive] = i
		if m.State != SlotOK && m.State != SlotRebuilding && m.State != SlotLost {
			return fmt.Errorf("volume: slot %d has unknown state %d", i, m.State)
		}
	}
	return nil
}

// DecodeLayout decodes a layout record from the start of b and returns it
// with the number of bytes it took. It accepts exactly what Encode writes.
func DecodeLayout(b []byte) (Layout, int, error) {
	bad := func(format string, args ...any) (Layout, int, error) {
		return Layout{}, 0, fmt.Errorf("%w: %s", ErrLayoutCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < layoutHeader+layoutCRC {
		return bad("%d bytes, shorter than the smallest record", len(b))
	}
	if !bytes.Equal(b[:8], []byte(LayoutMagic)) {
		return bad("bad magic %q", b[:8])
	}
	var l Layout
	l.Version = binary.LittleEndian.Uint16(b[8:])
	if l.Version != LayoutVersion {
		return bad("version %d, want %d", l.Version, LayoutVersion)
	}
	n := int(binary.LittleEndian.Uint16(b[10:]))
	if n > len(b) {
		return bad("record length %d past the %d bytes given", n, len(b))
	}
	k, m := int(b[36]), int(b[37])
	if n != layoutHeader+(k+m)*slotEntry+layoutCRC {
		return bad("record length %d does not match a %d+%d code", n, k, m)
	}
	if got, want := crc32c(b[:n-layoutCRC]), binary.LittleEndian.Uint32(b[n-layoutCRC:]); got != want {
		return bad("CRC32C %08x, stored %08x", got, want)
	}
	if b[39] != 0 {
		return bad("reserved byte %#x", b[39])
	}
	l.Generation = binary.LittleEndian.Uint64(b[12:])
	copy(l.Volume[:], b[20:36])
	l.K, l.M, l.Slot = k, m, int(b[38])
	l.ZoneSize = int64(binary.LittleEndian.Uint64(b[40:]))
	l.FirstZone = int(binary.LittleEndian.Uint16(b[48:]))
	l.ZonesPerExtent = int(binary.LittleEndian.Uint16(b[50:]))
	l.MaxBlock = int(binary.LittleEndian.Uint32(b[52:]))
	if l.ZoneSize < 0 {
		return bad("zone size %d", l.ZoneSize)
	}
	l.Members = make([]Member, k+m)
	p := b[56 : n-layoutCRC]
	for i := range l.Members {
		copy(l.Members[i].Drive[:], p[:16])
		l.Members[i].State = SlotState(p[16])
		p = p[slotEntry:]
	}
	if err := l.validate(); err != nil {
		return bad("%v", err)
	}
	return l, n, nil
}

// crc32c is the CRC32C (Castagnoli) of b. MakeTable returns the
// package's shared table for Castagnoli, so nothing is built per call.
func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// Clone returns a deep copy of l.
func (l Layout) Clone() Layout {
	l.Members = append([]Member(nil), l.Members...)
	return l
}
