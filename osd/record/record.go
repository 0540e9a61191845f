// Package record holds the OSD's on-disk format: the extent header, the
// record header (blocks, tombstones, footers), the footer index and the
// trailer that marks an extent closed. It only encodes and decodes bytes;
// osd/engine decides where they go. FORMAT.md in this directory draws
// every structure. Wire constants never change: a new layout gets a new
// magic or version, never a reinterpretation of old bytes.
//
// Every decoder returns an error wrapping ErrCorrupt on bytes it does not
// accept (bad magic, bad checksum, bad length, reserved bits set) and never
// panics.
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// BlockSize is the alignment of every structure on disk: records start and
// end on BlockSize boundaries.
const BlockSize = 4096

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("record: corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C (Castagnoli) of p, the checksum used
// everywhere in the format.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// UpdateChecksum continues a CRC32C over p.
func UpdateChecksum(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// Align rounds n up to a multiple of BlockSize.
func Align(n int64) int64 { return (n + BlockSize - 1) &^ (BlockSize - 1) }

// Wire constants. Never change them.
const (
	RecordMagic  uint32 = 0x31435253 // "SRC1" little-endian
	ExtentMagic  uint32 = 0x31585453 // "STX1"
	TrailerMagic uint32 = 0x31525453 // "STR1"
	FooterMagic  uint32 = 0x31465453 // "STF1"

	ExtentVersion uint16 = 1

	HeaderSize     = 96 // bytes of a record header
	EntrySize      = 72 // bytes of one footer entry
	footerHdrSize  = 8  // footer payload: magic, count
	extentFixed    = 40 // extent header bytes before the zone list
	MaxExtentZones = (BlockSize - extentFixed - 4) / 4
)

// Type is a record's kind.
type Type uint8

// Record types.
const (
	TypeBlock     Type = 1 // a block or a fragment of one
	TypeTombstone Type = 2 // deletes the record at Ref in incarnation RefInc
	TypeFooter    Type = 3 // the extent's index; the extent is closed after it
)

func (t Type) String() string {
	switch t {
	case TypeBlock:
		return "block"
	case TypeTombstone:
		return "tombstone"
	case TypeFooter:
		return "footer"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Flags on a record.
const (
	// FlagCopy marks a record written by compaction. On a block, Ref and
	// RefInc name the record it was copied from; on a tombstone they keep
	// naming the deleted record.
	FlagCopy   uint8 = 1 << 0
	knownFlags       = FlagCopy
)

// MaxPayload bounds the payload of any record (footers of extents full of
// tiny records are the largest).
const MaxPayload = 1<<31 - 1

// Header is a record header. Ref is a device block number (byte offset /
// BlockSize) of another record, RefInc the incarnation of the extent that
// held it; both are zero on a plain block record.
type Header struct {
	Type        Type
	Flags       uint8
	Frag        uint16 // fragment (slot) number; 0 for a whole block
	Length      uint32 // payload bytes following the header
	Meta        uint32 // opaque to the engine (the volume layer keeps the block length here)
	Extent      uint32 // extent slot that holds the record
	PayloadCRC  uint32 // CRC32C of the payload
	Incarnation uint64 // the extent's incarnation: the record is valid only in it
	Seq         uint64 // drive-wide sequence number, strictly increasing within an extent
	Ref         uint64
	RefInc      uint64
	Key         [32]byte // SHA-256 of the block (or a footer's zero key)
}

// Size returns the bytes the record takes on disk: header plus payload,
// padded to BlockSize.
func (h *Header) Size() int64 { return Align(HeaderSize + int64(h.Length)) }

// Encode writes the header into b[:HeaderSize], computing its checksum.
func (h *Header) Encode(b []byte) {
	_ = b[HeaderSize-1]
	le := binary.LittleEndian
	le.PutUint32(b[0:], RecordMagic)
	b[4] = byte(h.Type)
	b[5] = h.Flags
	le.PutUint16(b[6:], h.Frag)
	le.PutUint32(b[8:], h.Length)
	le.PutUint32(b[12:], h.Meta)
	le.PutUint32(b[16:], h.Extent)
	le.PutUint32(b[20:], h.PayloadCRC)
	le.PutUint64(b[24:], h.Incarnation)
	le.PutUint64(b[32:], h.Seq)
	le.PutUint64(b[40:], h.Ref)
	le.PutUint64(b[48:], h.RefInc)
	copy(b[56:88], h.Key[:])
	le.PutUint32(b[88:], 0)
	le.PutUint32(b[92:], Checksum(b[:92]))
}

// DecodeHeader decodes and checks a record header from the start of b.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("%w: record header: %d bytes, need %d", ErrCorrupt, len(b), HeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != RecordMagic {
		return h, fmt.Errorf("%w: record header: magic %#x", ErrCorrupt, m)
	}
	if got, want := le.Uint32(b[92:]), Checksum(b[:92]); got != want {
		return h, fmt.Errorf("%w: record header: crc %#x, computed %#x", ErrCorrupt, got, want)
	}
	h.Type = Type(b[4])
	h.Flags = b[5]
	h.Frag = le.Uint16(b[6:])
	h.Length = le.Uint32(b[8:])
	h.Meta = le.Uint32(b[12:])
	h.Extent = le.Uint32(b[16:])
	h.PayloadCRC = le.Uint32(b[20:])
	h.Incarnation = le.Uint64(b[24:])
	h.Seq = le.Uint64(b[32:])
	h.Ref = le.Uint64(b[40:])
	h.RefInc = le.Uint64(b[48:])
	copy(h.Key[:], b[56:88])
	if h.Type < TypeBlock || h.Type > TypeFooter {
		return h, fmt.Errorf("%w: record header: type %d", ErrCorrupt, h.Type)
	}
	if h.Flags&^knownFlags != 0 {
		return h, fmt.Errorf("%w: record header: flags %#x", ErrCorrupt, h.Flags)
	}
	if le.Uint32(b[88:]) != 0 {
		return h, fmt.Errorf("%w: record header: reserved bytes set", ErrCorrupt)
	}
	if h.Length > MaxPayload {
		return h, fmt.Errorf("%w: record header: length %d", ErrCorrupt, h.Length)
	}
	return h, nil
}

// CheckPayload verifies p (exactly Length bytes) against the header.
func (h *Header) CheckPayload(p []byte) error {
	if len(p) != int(h.Length) {
		return fmt.Errorf("%w: payload: %d bytes, header says %d", ErrCorrupt, len(p), h.Length)
	}
	if got := Checksum(p); got != h.PayloadCRC {
		return fmt.Errorf("%w: payload: crc %#x, header says %#x", ErrCorrupt, got, h.PayloadCRC)
	}
	return nil
}

// ExtentHeader opens an extent: it occupies the first block of the
// extent's first zone.
type ExtentHeader struct {
	Extent      uint32   // extent slot
	Incarnation uint64   // random, fresh every time the slot is (re)opened
	FirstSeq    uint64   // every record in this incarnation has Seq ≥ FirstSeq
	ZoneSize    uint64   // bytes between zone starts, as when written
	Zones       []uint32 // device zone indices, in logical order
}

// Encode writes the extent header into b[:BlockSize].
func (x *ExtentHeader) Encode(b []byte) error {
	if len(x.Zones) == 0 || len(x.Zones) > MaxExtentZones {
		return fmt.Errorf("record: extent header: %d zones, want 1..%d", len(x.Zones), MaxExtentZones)
	}
	_ = b[BlockSize-1]
	clear(b[:BlockSize])
	le := binary.LittleEndian
	le.PutUint32(b[0:], ExtentMagic)
	le.PutUint16(b[4:], ExtentVersion)
	le.PutUint16(b[6:], uint16(len(x.Zones)))
	le.PutUint32(b[8:], x.Extent)
	le.PutUint32(b[12:], BlockSize)
	le.PutUint64(b[16:], x.Incarnation)
	le.PutUint64(b[24:], x.FirstSeq)
	le.PutUint64(b[32:], x.ZoneSize)
	p := extentFixed
	for _, z := range x.Zones {
		le.PutUint32(b[p:], z)
		p += 4
	}
	le.PutUint32(b[p:], Checksum(b[:p]))
	return nil
}

// DecodeExtentHeader decodes and checks an extent header.
func DecodeExtentHeader(b []byte) (ExtentHeader, error) {
	var x ExtentHeader
	if len(b) < extentFixed+4 {
		return x, fmt.Errorf("%w: extent header: %d bytes", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != ExtentMagic {
		return x, fmt.Errorf("%w: extent header: magic %#x", ErrCorrupt, m)
	}
	if v := le.Uint16(b[4:]); v != ExtentVersion {
		return x, fmt.Errorf("%w: extent header: version %d", ErrCorrupt, v)
	}
	n := int(le.Uint16(b[6:]))
	if n == 0 || n > MaxExtentZones {
		return x, fmt.Errorf("%w: extent header: %d zones", ErrCorrupt, n)
	}
	end := extentFixed + 4*n
	if len(b) < end+4 {
		return x, fmt.Errorf("%w: extent header: %d bytes for %d zones", ErrCorrupt, len(b), n)
	}
	if got, want := le.Uint32(b[end:]), Checksum(b[:end]); got != want {
		return x, fmt.Errorf("%w: extent header: crc %#x, computed %#x", ErrCorrupt, got, want)
	}
	if bs := le.Uint32(b[12:]); bs != BlockSize {
		return x, fmt.Errorf("%w: extent header: block size %d", ErrCorrupt, bs)
	}
	x.Extent = le.Uint32(b[8:])
	x.Incarnation = le.Uint64(b[16:])
	x.FirstSeq = le.Uint64(b[24:])
	x.ZoneSize = le.Uint64(b[32:])
	x.Zones = make([]uint32, n)
	for i := range x.Zones {
		x.Zones[i] = le.Uint32(b[extentFixed+4*i:])
	}
	return x, nil
}

// Trailer marks an extent closed: it sits in the last block of the zone
// in which the footer record ends (or the zone after, if the footer ends
// exactly on a zone boundary), and points back at the footer record.
type Trailer struct {
	Extent      uint32
	Incarnation uint64
	FooterOff   uint64 // logical offset of the footer record in the extent
	FooterSize  uint64 // bytes of the footer record, header and padding included
	LastSeq     uint64 // the footer record's sequence number
}

const trailerSize = 48

// Encode writes the trailer into b[:BlockSize].
func (t *Trailer) Encode(b []byte) {
	_ = b[BlockSize-1]
	clear(b[:BlockSize])
	le := binary.LittleEndian
	le.PutUint32(b[0:], TrailerMagic)
	le.PutUint32(b[4:], t.Extent)
	le.PutUint64(b[8:], t.Incarnation)
	le.PutUint64(b[16:], t.FooterOff)
	le.PutUint64(b[24:], t.FooterSize)
	le.PutUint64(b[32:], t.LastSeq)
	le.PutUint32(b[40:], 0)
	le.PutUint32(b[44:], Checksum(b[:44]))
}

// DecodeTrailer decodes and checks a trailer.
func DecodeTrailer(b []byte) (Trailer, error) {
	var t Trailer
	if len(b) < trailerSize {
		return t, fmt.Errorf("%w: trailer: %d bytes", ErrCorrupt, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != TrailerMagic {
		return t, fmt.Errorf("%w: trailer: magic %#x", ErrCorrupt, m)
	}
	if got, want := le.Uint32(b[44:]), Checksum(b[:44]); got != want {
		return t, fmt.Errorf("%w: trailer: crc %#x, computed %#x", ErrCorrupt, got, want)
	}
	if le.Uint32(b[40:]) != 0 {
		return t, fmt.Errorf("%w: trailer: reserved bytes set", ErrCorrupt)
	}
	t.Extent = le.Uint32(b[4:])
	t.Incarnation = le.Uint64(b[8:])
	t.FooterOff = le.Uint64(b[16:])
	t.FooterSize = le.Uint64(b[24:])
	t.LastSeq = le.Uint64(b[32:])
	if t.FooterOff%BlockSize != 0 || t.FooterSize%BlockSize != 0 || t.FooterSize < BlockSize {
		return t, fmt.Errorf("%w: trailer: footer at %d, %d bytes: not block-aligned", ErrCorrupt, t.FooterOff, t.FooterSize)
	}
	return t, nil
}

// Entry is one record of a closed extent, as the footer lists it. Off is
// the record's logical offset in the extent in BlockSize units.
type Entry struct {
	Type   Type
	Flags  uint8
	Frag   uint16
	Length uint32
	Meta   uint32
	Off    uint32
	Seq    uint64
	Ref    uint64
	RefInc uint64
	Key    [32]byte
}

// Size returns the bytes the entry's record takes on disk.
func (e *Entry) Size() int64 { return Align(HeaderSize + int64(e.Length)) }

// FooterLen returns the payload length of a footer holding n entries.
func FooterLen(n int) int { return footerHdrSize + n*EntrySize }

// AppendFooter appends the footer payload for entries to dst.
func AppendFooter(dst []byte, entries []Entry) []byte {
	le := binary.LittleEndian
	dst = le.AppendUint32(dst, FooterMagic)
	dst = le.AppendUint32(dst, uint32(len(entries)))
	for i := range entries {
		e := &entries[i]
		dst = append(dst, byte(e.Type), e.Flags)
		dst = le.AppendUint16(dst, e.Frag)
		dst = le.AppendUint32(dst, e.Length)
		dst = le.AppendUint32(dst, e.Meta)
		dst = le.AppendUint32(dst, e.Off)
		dst = le.AppendUint64(dst, e.Seq)
		dst = le.AppendUint64(dst, e.Ref)
		dst = le.AppendUint64(dst, e.RefInc)
		dst = append(dst, e.Key[:]...)
	}
	return dst
}

// DecodeFooter decodes a footer payload (already checked against its
// record header's CRC). Entries must be in strictly increasing Seq and
// Off order and must not overlap.
func DecodeFooter(p []byte) ([]Entry, error) {
	if len(p) < footerHdrSize {
		return nil, fmt.Errorf("%w: footer: %d bytes", ErrCorrupt, len(p))
	}
	le := binary.LittleEndian
	if m := le.Uint32(p[0:]); m != FooterMagic {
		return nil, fmt.Errorf("%w: footer: magic %#x", ErrCorrupt, m)
	}
	n := int(le.Uint32(p[4:]))
	if n > (len(p)-footerHdrSize)/EntrySize || FooterLen(n) != len(p) {
		return nil, fmt.Errorf("%w: footer: %d entries in %d bytes", ErrCorrupt, n, len(p))
	}
	es := make([]Entry, n)
	var nextOff int64 = 1 // block 0 holds the extent header
	for i := range es {
		b := p[footerHdrSize+i*EntrySize:]
		e := &es[i]
		e.Type = Type(b[0])
		e.Flags = b[1]
		e.Frag = le.Uint16(b[2:])
		e.Length = le.Uint32(b[4:])
		e.Meta = le.Uint32(b[8:])
		e.Off = le.Uint32(b[12:])
		e.Seq = le.Uint64(b[16:])
		e.Ref = le.Uint64(b[24:])
		e.RefInc = le.Uint64(b[32:])
		copy(e.Key[:], b[40:72])
		if e.Type != TypeBlock && e.Type != TypeTombstone {
			return nil, fmt.Errorf("%w: footer entry %d: type %d", ErrCorrupt, i, e.Type)
		}
		if e.Flags&^knownFlags != 0 || e.Length > MaxPayload {
			return nil, fmt.Errorf("%w: footer entry %d: flags %#x, length %d", ErrCorrupt, i, e.Flags, e.Length)
		}
		if int64(e.Off) < nextOff {
			return nil, fmt.Errorf("%w: footer entry %d: offset %d overlaps the previous record", ErrCorrupt, i, e.Off)
		}
		if i > 0 && e.Seq <= es[i-1].Seq {
			return nil, fmt.Errorf("%w: footer entry %d: seq %d after %d", ErrCorrupt, i, e.Seq, es[i-1].Seq)
		}
		nextOff = int64(e.Off) + e.Size()/BlockSize
	}
	return es, nil
}
