package burnin

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// BlockSize is the unit of the burn-in pattern: every 4 KiB block of the
// device carries its own header and checksum.
const BlockSize = 4096

// Pattern block layout (little endian):
//
//	+0    8  magic "STOWBURN"
//	+8    8  LBA: the block's byte offset / BlockSize
//	+16   8  pass id (run seed and pass number)
//	+24 4068 pseudo-random fill, from the pass id
//	+4092 4  CRC32C of bytes [0, 4092)
//
// A bit flip breaks the CRC; a block written to the wrong place (misdirected
// write) has a valid CRC but another LBA; a write that never reached the
// media (lost write) leaves a block of an earlier pass (other pass id) or
// something without the magic.
const (
	magic   = "STOWBURN"
	crcOff  = BlockSize - 4
	fillOff = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fillFor returns the fill of every block of pass: 4 KiB of pseudo-random
// bytes from the pass id, copied into each block (the LBA in the header and
// the CRC over both make each block unique).
func fillFor(pass uint64) []byte {
	f := make([]byte, BlockSize)
	x := pass ^ 0xD1B54A32D192ED03
	if x == 0 {
		x = 1
	}
	for i := 0; i+8 <= BlockSize; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(f[i:], x)
	}
	return f
}

// fillBlock writes the pattern block for lba and pass into b[:BlockSize];
// fill is fillFor(pass).
func fillBlock(b []byte, lba, pass uint64, fill []byte) {
	copy(b[fillOff:crcOff], fill[fillOff:crcOff])
	copy(b, magic)
	binary.LittleEndian.PutUint64(b[8:], lba)
	binary.LittleEndian.PutUint64(b[16:], pass)
	binary.LittleEndian.PutUint32(b[crcOff:], crc32.Checksum(b[:crcOff], castagnoli))
}

// Mismatch is one block that did not read back as written.
type Mismatch struct {
	LBA    uint64 `json:"lba"`    // where the block was read (byte offset / BlockSize)
	Offset int64  `json:"offset"` // byte offset on the device
	Kind   string `json:"kind"`   // corrupt, misdirected, stale, missing
	// FoundLBA is the LBA the block says it belongs to (misdirected).
	FoundLBA uint64 `json:"found_lba,omitempty"`
	// FoundPass is the pass id the block carries (stale: a lost write).
	FoundPass uint64 `json:"found_pass,omitempty"`
}

// Mismatch kinds.
const (
	KindCorrupt     = "corrupt"     // checksum wrong: bits changed
	KindMisdirected = "misdirected" // a valid block of another LBA
	KindStale       = "stale"       // a valid block of another pass: the write was lost
	KindMissing     = "missing"     // no pattern at all (no magic)
)

func (m Mismatch) String() string {
	switch m.Kind {
	case KindMisdirected:
		return fmt.Sprintf("LBA %d (offset %d): misdirected: holds the block of LBA %d", m.LBA, m.Offset, m.FoundLBA)
	case KindStale:
		return fmt.Sprintf("LBA %d (offset %d): stale: holds pass %#x (lost write)", m.LBA, m.Offset, m.FoundPass)
	default:
		return fmt.Sprintf("LBA %d (offset %d): %s", m.LBA, m.Offset, m.Kind)
	}
}

// checkBlock verifies one block read at lba for pass; ok is true when it is
// exactly the pattern written.
func checkBlock(b []byte, lba, pass uint64, off int64) (Mismatch, bool) {
	m := Mismatch{LBA: lba, Offset: off}
	if string(b[:8]) != magic {
		m.Kind = KindMissing
		return m, false
	}
	if crc32.Checksum(b[:crcOff], castagnoli) != binary.LittleEndian.Uint32(b[crcOff:]) {
		m.Kind = KindCorrupt
		return m, false
	}
	got, gp := binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:])
	if got != lba {
		m.Kind, m.FoundLBA, m.FoundPass = KindMisdirected, got, gp
		return m, false
	}
	if gp != pass {
		m.Kind, m.FoundPass = KindStale, gp
		return m, false
	}
	return m, true
}
