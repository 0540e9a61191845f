package qemu

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPVHKernel extracts the host's Debian kernel into a vmlinux with a
// PVH entry note, and reuses the cached copy the second time.
func TestPVHKernel(t *testing.T) {
	k, err := FindKernel("/")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cache := t.TempDir()
	p, err := PVHKernel(ctx, k.Image, cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPVH(p); err != nil {
		t.Fatal(err)
	}
	st1, _ := os.Stat(p)
	p2, err := PVHKernel(ctx, k.Image, cache)
	if err != nil || p2 != p {
		t.Fatalf("second call: %s, %v", p2, err)
	}
	if st2, _ := os.Stat(p2); !os.SameFile(st1, st2) {
		t.Fatal("the cached vmlinux was extracted again")
	}
}

func TestPVHKernelErrors(t *testing.T) {
	ctx := context.Background()
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("not a kernel at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PVHKernel(ctx, junk, t.TempDir()); err == nil {
		t.Fatal("junk accepted as a kernel")
	}
	if err := checkPVH(junk); err == nil {
		t.Fatal("checkPVH accepted a non-ELF file")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPVH(self); err == nil {
		t.Fatal("checkPVH accepted an ELF without a PVH note")
	}
}

// note encodes one ELF note record.
func note(name string, typ uint32, desc []byte) []byte {
	n := append([]byte(name), 0)
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(n)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = append(b, n...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b = append(b, desc...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// FuzzHasNote: a note appended after fuzzed well-formed notes is found;
// arbitrary bytes never panic.
func FuzzHasNote(f *testing.F) {
	f.Add([]byte{}, "GNU", uint32(3), []byte{1, 2, 3})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}, "Xen", uint32(18), []byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, raw []byte, name string, typ uint32, desc []byte) {
		hasNote(raw, "Xen", 18)
		if len(name) > 64 || len(desc) > 64 || typ == 18 || name == "Xen" {
			return
		}
		b := append(note(name, typ, desc), note("Xen", 18, []byte{0, 0, 0, 1})...)
		if !hasNote(b, "Xen", 18) {
			t.Fatalf("PVH note after %q/%d not found", name, typ)
		}
		if hasNote(note(name, typ, desc), "Xen", 18) {
			t.Fatalf("found a PVH note that is not there")
		}
	})
}
