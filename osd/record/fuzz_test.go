package record

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

// Oracle for every decoder: garbage gives ErrCorrupt (never a panic), and
// whatever decodes re-encodes to the same bytes.

func FuzzDecodeHeader(f *testing.F) {
	h := sampleHeader()
	b := make([]byte, HeaderSize)
	h.Encode(b)
	f.Add(b)
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := DecodeHeader(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		out := make([]byte, HeaderSize)
		h.Encode(out)
		if !bytes.Equal(out, p[:HeaderSize]) {
			t.Fatalf("re-encoded header differs:\n%x\n%x", out, p[:HeaderSize])
		}
	})
}

func FuzzDecodeExtentHeader(f *testing.F) {
	x := ExtentHeader{Extent: 1, Incarnation: 2, FirstSeq: 3, ZoneSize: 1 << 20, Zones: []uint32{4, 5}}
	b := make([]byte, BlockSize)
	if err := x.Encode(b); err != nil {
		f.Fatal(err)
	}
	f.Add(b[:64])
	f.Add(b)
	f.Fuzz(func(t *testing.T, p []byte) {
		x, err := DecodeExtentHeader(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		out := make([]byte, BlockSize)
		if err := x.Encode(out); err != nil {
			t.Fatalf("decoded header does not encode: %v", err)
		}
		n := extentFixed + 4*len(x.Zones) + 4
		if !bytes.Equal(out[:n], p[:n]) {
			t.Fatalf("re-encoded extent header differs")
		}
		y, err := DecodeExtentHeader(out)
		if err != nil || !reflect.DeepEqual(x, y) {
			t.Fatalf("second round trip: %+v, %v", y, err)
		}
	})
}

func FuzzDecodeTrailer(f *testing.F) {
	tr := Trailer{Extent: 1, Incarnation: 2, FooterOff: 4096, FooterSize: 8192, LastSeq: 9}
	b := make([]byte, BlockSize)
	tr.Encode(b)
	f.Add(b[:trailerSize])
	f.Fuzz(func(t *testing.T, p []byte) {
		tr, err := DecodeTrailer(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		out := make([]byte, BlockSize)
		tr.Encode(out)
		if !bytes.Equal(out[:trailerSize], p[:trailerSize]) {
			t.Fatalf("re-encoded trailer differs")
		}
	})
}

func FuzzDecodeFooter(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	f.Add(AppendFooter(nil, nil))
	f.Add(AppendFooter(nil, randomEntries(r, 1)))
	f.Add(AppendFooter(nil, randomEntries(r, 3)))
	f.Fuzz(func(t *testing.T, p []byte) {
		es, err := DecodeFooter(p)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if out := AppendFooter(nil, es); !bytes.Equal(out, p) {
			t.Fatalf("re-encoded footer differs")
		}
	})
}
