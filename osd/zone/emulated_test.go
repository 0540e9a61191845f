package zone

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newFileDevice(t *testing.T, zones int, zoneSize int64) *Emulated {
	t.Helper()
	path := filepath.Join(t.TempDir(), "drive")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(zones)*zoneSize+4096); err != nil { // a partial zone at the end
		t.Fatal(err)
	}
	d, err := OpenEmulated(path, EmulatedOptions{ZoneSize: zoneSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestEmulatedGeometryAndIO(t *testing.T) {
	ctx := context.Background()
	d := newFileDevice(t, 4, 1<<20)
	in := d.Info()
	if in.Kind != KindFile || in.NumZones != 4 || in.Size != 4<<20 || in.BlockSize != 4096 {
		t.Fatalf("info = %+v, want 4 zones of 1 MiB, file kind, 4 KiB blocks", in)
	}
	zs, err := d.ReportZones(ctx, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(zs) != 3 || zs[0].Start != 1<<20 || zs[2].Index != 3 || zs[0].Cond != CondUnknown {
		t.Fatalf("zones = %+v", zs)
	}
	if _, err := d.ReportZones(ctx, 2, 3); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("report past the end: err = %v, want ErrOutOfRange", err)
	}

	p := AlignedBlock(8192)
	for i := range p {
		p[i] = byte(i * 7)
	}
	off := in.ZoneStart(2)
	if _, err := d.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	q := AlignedBlock(8192)
	if _, err := d.ReadAt(q, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p, q) {
		t.Fatal("read back differs from what was written")
	}
	if err := d.Reset(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(q, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(q[:4096], make([]byte, 4096)) {
		t.Fatal("first block of a reset zone is not zero")
	}
	if !bytes.Equal(q[4096:], p[4096:]) {
		t.Fatal("reset touched more than the zone's first block")
	}
}

func TestEmulatedRefusesBadIO(t *testing.T) {
	d := newFileDevice(t, 2, 1<<20)
	for _, tc := range []struct {
		name string
		off  int64
		n    int
		want error
	}{
		{"unaligned offset", 512, 4096, ErrUnaligned},
		{"unaligned length", 0, 100, ErrUnaligned},
		{"past the end", 2 << 20, 4096, ErrOutOfRange},
		{"negative", -4096, 4096, ErrOutOfRange},
	} {
		if _, err := d.WriteAt(AlignedBlock(tc.n), tc.off); !errors.Is(err, tc.want) {
			t.Errorf("%s: write err = %v, want %v", tc.name, err, tc.want)
		}
		if _, err := d.ReadAt(AlignedBlock(tc.n), tc.off); !errors.Is(err, tc.want) {
			t.Errorf("%s: read err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := d.Reset(context.Background(), 2); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("reset of zone 2 of 2: err = %v", err)
	}
}

func TestOpenEmulatedErrors(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.WriteFile(small, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEmulated(small, EmulatedOptions{ZoneSize: 1 << 20}); err == nil {
		t.Error("a file smaller than one zone opened")
	}
	if _, err := OpenEmulated(small, EmulatedOptions{ZoneSize: 1000}); err == nil {
		t.Error("a zone size that is not a block multiple was accepted")
	}
	if _, err := OpenEmulated(dir, EmulatedOptions{}); err == nil {
		t.Error("a directory opened as a device")
	}
	if _, err := OpenEmulated(filepath.Join(dir, "absent"), EmulatedOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("absent file: err = %v, want ErrNotExist", err)
	}
}
