package volume

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func sampleLayout(k, m int) Layout {
	l := Layout{Version: LayoutVersion, Generation: 7, Volume: NewUUID(), K: k, M: m, Slot: k + m - 1,
		ZoneSize: 256 << 20, FirstZone: 1, ZonesPerExtent: 4, MaxBlock: 4 << 20}
	for range k + m {
		l.Members = append(l.Members, Member{Drive: NewUUID()})
	}
	l.Members[0].State = SlotRebuilding
	if k+m > 2 {
		l.Members[2].State = SlotLost
	}
	return l
}

func TestLayoutRoundTrip(t *testing.T) {
	for _, km := range [][2]int{{4, 2}, {1, 1}, {12, 4}, {6, 3}} {
		l := sampleLayout(km[0], km[1])
		b, err := l.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if want := 56 + 17*(km[0]+km[1]) + 4; len(b) != want {
			t.Errorf("%d+%d: %d bytes, want %d", km[0], km[1], len(b), want)
		}
		got, n, err := DecodeLayout(append(b, 0xee, 0xff)) // trailing bytes are not the record's
		if err != nil {
			t.Fatalf("%d+%d: %v", km[0], km[1], err)
		}
		if n != len(b) {
			t.Errorf("decoded %d bytes, want %d", n, len(b))
		}
		b2, _ := got.Encode()
		if !bytes.Equal(b, b2) {
			t.Errorf("%d+%d: re-encoded bytes differ", km[0], km[1])
		}
		if got.Volume != l.Volume || !slices.Equal(got.Members, l.Members) || got.Slot != l.Slot {
			t.Errorf("%d+%d: decoded %+v", km[0], km[1], got)
		}
	}
}

func TestLayoutCorruption(t *testing.T) {
	good, err := func() ([]byte, error) { l := sampleLayout(4, 2); return l.Encode() }()
	if err != nil {
		t.Fatal(err)
	}
	recrc := func(b []byte) []byte {
		n := len(b) - 4
		binary.LittleEndian.PutUint32(b[n:], crc32c(b[:n]))
		return b
	}
	cases := []struct {
		name string
		mut  func(b []byte) []byte
	}{
		{"empty", func(b []byte) []byte { return nil }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
		{"magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"flipped bit", func(b []byte) []byte { b[30] ^= 1; return b }},
		{"crc", func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }},
		{"version 2", func(b []byte) []byte { b[8] = 2; return recrc(b) }},
		{"k 0", func(b []byte) []byte { b[36] = 0; return b }},
		{"k 13 with right length", func(b []byte) []byte { b[36], b[37] = 13, 0; return recrc(b) }},
		{"m 0", func(b []byte) []byte { b[36], b[37] = 5, 0; return recrc(b) }},
		{"slot out of range", func(b []byte) []byte { b[38] = 6; return recrc(b) }},
		{"reserved", func(b []byte) []byte { b[39] = 1; return recrc(b) }},
		{"generation 0", func(b []byte) []byte { clear(b[12:20]); return recrc(b) }},
		{"no volume id", func(b []byte) []byte { clear(b[20:36]); return recrc(b) }},
		{"zero zone size", func(b []byte) []byte { clear(b[40:48]); return recrc(b) }},
		{"duplicate drive", func(b []byte) []byte { copy(b[56+17:56+17+16], b[56:56+16]); return recrc(b) }},
		{"unknown slot state", func(b []byte) []byte { b[56+16] = 9; return recrc(b) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := c.mut(bytes.Clone(good))
			if _, _, err := DecodeLayout(b); !errors.Is(err, ErrLayoutCorrupt) {
				t.Fatalf("got %v, want ErrLayoutCorrupt", err)
			}
		})
	}
}

func FuzzDecodeLayout(f *testing.F) {
	for _, km := range [][2]int{{4, 2}, {1, 1}, {12, 4}} {
		l := sampleLayout(km[0], km[1])
		b, _ := l.Encode()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, n, err := DecodeLayout(b)
		if err != nil {
			if !errors.Is(err, ErrLayoutCorrupt) {
				t.Fatalf("error not wrapping ErrLayoutCorrupt: %v", err)
			}
			return
		}
		// Oracle: what decodes re-encodes to exactly the bytes it came from.
		enc, err := l.Encode()
		if err != nil {
			t.Fatalf("decoded layout does not encode: %v", err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("round trip differs:\n in %x\nout %x", b[:n], enc)
		}
	})
}
