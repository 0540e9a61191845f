package record

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

func sampleHeader() Header {
	h := Header{Type: TypeBlock, Flags: FlagCopy, Frag: 3, Length: 5000, Meta: 77, Extent: 9,
		PayloadCRC: 0xdeadbeef, Incarnation: 0x1122334455667788, Seq: 42, Ref: 1234, RefInc: 99}
	for i := range h.Key {
		h.Key[i] = byte(i)
	}
	return h
}

func TestHeaderRoundTripAndSize(t *testing.T) {
	h := sampleHeader()
	b := make([]byte, HeaderSize)
	h.Encode(b)
	got, err := DecodeHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("round trip: got %+v, want %+v", got, h)
	}
	if h.Size() != 8192 {
		t.Fatalf("Size = %d, want 8192 (96+5000 padded)", h.Size())
	}
	h.Length = BlockSize - HeaderSize
	if h.Size() != BlockSize {
		t.Fatalf("Size = %d, want one block", h.Size())
	}
}

// Every single-bit flip in an encoded header must be detected.
func TestHeaderBitFlips(t *testing.T) {
	h := sampleHeader()
	b := make([]byte, HeaderSize)
	h.Encode(b)
	for i := 0; i < HeaderSize*8; i++ {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := DecodeHeader(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: err = %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := DecodeHeader(b[:50]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short header: err = %v", err)
	}
	if _, err := DecodeHeader(make([]byte, HeaderSize)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zero header: err = %v", err)
	}
}

func TestPayloadCheck(t *testing.T) {
	p := []byte("hello, block")
	h := Header{Type: TypeBlock, Length: uint32(len(p)), PayloadCRC: Checksum(p)}
	if err := h.CheckPayload(p); err != nil {
		t.Fatal(err)
	}
	p[0] ^= 1
	if err := h.CheckPayload(p); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped payload: err = %v", err)
	}
	if err := h.CheckPayload(p[:3]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short payload: err = %v", err)
	}
}

func TestExtentHeaderRoundTrip(t *testing.T) {
	x := ExtentHeader{Extent: 7, Incarnation: 1 << 60, FirstSeq: 1000, ZoneSize: 256 << 20, Zones: []uint32{8, 9, 10, 11}}
	b := make([]byte, BlockSize)
	if err := x.Encode(b); err != nil {
		t.Fatal(err)
	}
	got, err := DecodeExtentHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, x) {
		t.Fatalf("got %+v, want %+v", got, x)
	}
	for i := 0; i < (extentFixed+4*4+4)*8; i++ {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		if _, err := DecodeExtentHeader(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit %d flipped: err = %v", i, err)
		}
	}
	if err := (&ExtentHeader{}).Encode(b); err == nil {
		t.Fatal("no zones: want an error")
	}
}

func TestTrailerRoundTrip(t *testing.T) {
	tr := Trailer{Extent: 3, Incarnation: 5, FooterOff: 8192, FooterSize: 4096, LastSeq: 17}
	b := make([]byte, BlockSize)
	tr.Encode(b)
	got, err := DecodeTrailer(b)
	if err != nil || got != tr {
		t.Fatalf("got %+v, %v; want %+v", got, err, tr)
	}
	b[20] ^= 1
	if _, err := DecodeTrailer(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped: err = %v", err)
	}
}

func randomEntries(r *rand.Rand, n int) []Entry {
	es := make([]Entry, n)
	off := uint32(1)
	seq := uint64(r.IntN(1000))
	for i := range es {
		e := &es[i]
		e.Type = TypeBlock
		if r.IntN(4) == 0 {
			e.Type = TypeTombstone
			e.Ref, e.RefInc = r.Uint64(), r.Uint64()
		}
		e.Frag = uint16(r.IntN(16))
		e.Length = uint32(r.IntN(1 << 20))
		e.Meta = r.Uint32()
		e.Off = off
		seq += 1 + uint64(r.IntN(3))
		e.Seq = seq
		for j := range e.Key {
			e.Key[j] = byte(r.Uint32())
		}
		off += uint32(e.Size() / BlockSize)
	}
	return es
}

func TestFooterRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 100} {
		es := randomEntries(r, n)
		p := AppendFooter(nil, es)
		if len(p) != FooterLen(n) {
			t.Fatalf("len = %d, want %d", len(p), FooterLen(n))
		}
		got, err := DecodeFooter(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n || (n > 0 && !reflect.DeepEqual(got, es)) {
			t.Fatalf("n=%d: round trip differs", n)
		}
	}
	es := randomEntries(r, 3)
	es[2].Seq = es[1].Seq
	if _, err := DecodeFooter(AppendFooter(nil, es)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("repeated seq: err = %v", err)
	}
	es = randomEntries(r, 3)
	es[1].Off = es[0].Off
	if _, err := DecodeFooter(AppendFooter(nil, es)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("overlapping records: err = %v", err)
	}
	p := AppendFooter(nil, randomEntries(r, 2))
	if _, err := DecodeFooter(p[:len(p)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: err = %v", err)
	}
}
