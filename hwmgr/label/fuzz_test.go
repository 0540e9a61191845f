package label

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"

	"github.com/stowage/stowage/hwmgr/lifecycle"
)

// FuzzDecodeRecord: any bytes either fail to decode with an error (never a
// panic) or decode to a record that Encode turns back into exactly the
// bytes that were read (the decoder accepts only canonical records).
func FuzzDecodeRecord(f *testing.F) {
	for _, p := range []int{0, 10, 5000} {
		r := sampleRecord(3, p)
		b, err := Encode(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, n, err := DecodeRecord(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with length %d", err, n)
			}
			return
		}
		if n <= 0 || n > len(b) || n%BlockSize != 0 {
			t.Fatalf("length %d of %d bytes", n, len(b))
		}
		back, err := Encode(&r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(back, b[:n]) {
			t.Fatalf("round trip differs")
		}
	})
}

// FuzzArea puts arbitrary bytes at the start of both regions of a
// conventional device: opening never panics, a record found is one that
// sits on the device byte for byte, and a write afterwards becomes the
// newest record.
func FuzzArea(f *testing.F) {
	r := sampleRecord(9, 100)
	b, _ := Encode(&r)
	f.Add(b, []byte{})
	f.Add(b[:BlockSize-1], b)
	f.Add([]byte("STOWLABL"), []byte{})
	f.Fuzz(func(t *testing.T, r0, r1 []byte) {
		d := newMemDev(2<<20, 1<<20, false)
		copy(d.data[:RegionSize], r0)
		copy(d.data[RegionSize:], r1)
		a, err := OpenConventional(context.Background(), d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		cur, ok := a.Current()
		if ok {
			enc, err := Encode(&cur)
			if err != nil {
				t.Fatalf("found record does not encode: %v", err)
			}
			if !bytes.Contains(d.data, enc) {
				t.Fatal("found record is not on the device")
			}
		}
		w, err := a.Write(context.Background(), Record{State: lifecycle.New, Serial: "S"})
		if err != nil {
			t.Fatal(err)
		}
		if ok && w.Generation <= cur.Generation {
			t.Fatalf("wrote generation %d after %d", w.Generation, cur.Generation)
		}
		b, err := OpenConventional(context.Background(), d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, ok := b.Current()
		sameRecord(t, got, ok, w)
	})
}

// frame wraps body in a valid header and checksum, so that the fuzzer
// reaches the body parser instead of stopping at the CRC.
func frame(body []byte) []byte {
	n := (HeaderSize + len(body) + BlockSize - 1) / BlockSize * BlockSize
	b := make([]byte, n)
	copy(b, Magic)
	binary.LittleEndian.PutUint16(b[offVersion:], Version)
	binary.LittleEndian.PutUint16(b[offHdrLen:], HeaderSize)
	binary.LittleEndian.PutUint32(b[offRecLen:], uint32(n))
	binary.LittleEndian.PutUint64(b[offGen:], 1)
	binary.LittleEndian.PutUint32(b[offBodyLen:], uint32(len(body)))
	copy(b[HeaderSize:], body)
	binary.LittleEndian.PutUint32(b[offCRC:], checksum(b))
	return b
}

// FuzzDecodeBody fuzzes the body parser behind a valid frame, with the
// same round-trip oracle as FuzzDecodeRecord.
func FuzzDecodeBody(f *testing.F) {
	r := sampleRecord(1, 40)
	b, _ := Encode(&r)
	f.Add(b[HeaderSize : HeaderSize+int(binary.LittleEndian.Uint32(b[offBodyLen:]))])
	f.Fuzz(func(t *testing.T, body []byte) {
		if HeaderSize+len(body) > MaxRecordSize {
			return
		}
		fr := frame(body)
		r, n, err := DecodeRecord(fr)
		if err != nil {
			return
		}
		back, err := Encode(&r)
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		if !bytes.Equal(back, fr[:n]) {
			t.Fatal("round trip differs")
		}
	})
}
