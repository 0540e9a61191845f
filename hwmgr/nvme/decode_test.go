package nvme

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// identifyController builds an Identify Controller page with the fields
// erase reads.
func identifyController(serial, model string, oacs uint16, sanicap uint32, nn uint32, fna uint8) []byte {
	b := make([]byte, 4096)
	copy(b[4:24], serial+strings.Repeat(" ", 20))
	copy(b[24:64], model+strings.Repeat(" ", 40))
	copy(b[64:72], "8.0.0   ")
	binary.LittleEndian.PutUint16(b[256:], oacs)
	binary.LittleEndian.PutUint32(b[328:], sanicap)
	binary.LittleEndian.PutUint32(b[516:], nn)
	b[524] = fna
	return b
}

func identifyNamespace(nsze uint64, flbas uint8, shifts ...uint8) []byte {
	b := make([]byte, 4096)
	binary.LittleEndian.PutUint64(b[0:], nsze)
	binary.LittleEndian.PutUint64(b[8:], nsze)
	b[25] = uint8(len(shifts) - 1)
	b[26] = flbas
	for i, s := range shifts {
		b[128+4*i+2] = s
	}
	return b
}

func TestParseController(t *testing.T) {
	c, err := ParseController(identifyController("STW-NVME-1", "QEMU NVMe Ctrl", 0x000a, SANICAPBlock|SANICAPCrypto, 256, FNACrypto|FNAFormatAll))
	if err != nil {
		t.Fatal(err)
	}
	if c.Serial != "STW-NVME-1" || c.Model != "QEMU NVMe Ctrl" || c.Firmware != "8.0.0" || c.NN != 256 {
		t.Errorf("%+v", c)
	}
	if !c.FormatSupported() || !c.CryptoFormatSupported() {
		t.Errorf("format %v crypto %v", c.FormatSupported(), c.CryptoFormatSupported())
	}
	if got := c.SanitizeActions(); !slices.Equal(got, []uint8{SanitizeCrypto, SanitizeBlockErase}) {
		t.Errorf("sanitize actions %v", got)
	}
	c, _ = ParseController(identifyController("S", "M", 0, 0, 1, 0))
	if c.FormatSupported() || len(c.SanitizeActions()) != 0 || c.CryptoFormatSupported() {
		t.Errorf("nothing supported, got %+v", c)
	}
	if _, err := ParseController(make([]byte, 4095)); err == nil {
		t.Error("short page accepted")
	}
}

func TestParseNamespace(t *testing.T) {
	// 5 formats; FLBAS 0x21 = index 1 | high bits 01 → 17? only 5 formats: refused.
	if _, err := ParseNamespace(identifyNamespace(1<<21, 0x21, 9, 12, 9, 12, 9)); err == nil {
		t.Error("format index past the table accepted")
	}
	n, err := ParseNamespace(identifyNamespace(1<<21, 0x01, 9, 12))
	if err != nil {
		t.Fatal(err)
	}
	if n.Size != 1<<21 || n.FormatIndex != 1 || n.BlockSize() != 4096 || len(n.Formats) != 2 {
		t.Errorf("%+v block %d", n, n.BlockSize())
	}
	shifts := make([]uint8, 20)
	for i := range shifts {
		shifts[i] = 9
	}
	shifts[18] = 12
	n, err = ParseNamespace(identifyNamespace(8, 0x22, shifts...)) // index 2 | 1<<4 = 18
	if err != nil || n.FormatIndex != 18 || n.BlockSize() != 4096 {
		t.Errorf("high FLBAS bits: %+v %v", n, err)
	}
}

func TestParseNamespaceList(t *testing.T) {
	b := make([]byte, 4096)
	for i, id := range []uint32{1, 2, 7} {
		binary.LittleEndian.PutUint32(b[4*i:], id)
	}
	ids, err := ParseNamespaceList(b)
	if err != nil || !slices.Equal(ids, []uint32{1, 2, 7}) {
		t.Errorf("%v %v", ids, err)
	}
	binary.LittleEndian.PutUint32(b[12:], 3)
	if _, err := ParseNamespaceList(b); err == nil {
		t.Error("decreasing list accepted")
	}
}

func TestParseSanitizeLog(t *testing.T) {
	b := make([]byte, 512)
	binary.LittleEndian.PutUint16(b[0:], 0x8000)
	binary.LittleEndian.PutUint16(b[2:], uint16(SanitizeInProgress)|2<<3)
	binary.LittleEndian.PutUint32(b[4:], SanitizeBlockErase)
	binary.LittleEndian.PutUint32(b[12:], 30)
	s, err := ParseSanitizeLog(b)
	if err != nil || s.Progress != 0.5 || s.State != SanitizeInProgress || s.Passes != 2 || s.CDW10 != 2 || s.EstBlockErase != 30 {
		t.Errorf("%+v %v", s, err)
	}
	b[2] = 7
	if _, err := ParseSanitizeLog(b); err == nil {
		t.Error("reserved state accepted")
	}
}

func TestStatusError(t *testing.T) {
	s := &Status{Opcode: OpSanitize, Code: 0x4001} // DNR | invalid opcode
	if !s.Unsupported() || !strings.Contains(s.Error(), "invalid command opcode") {
		t.Errorf("%v unsupported %v", s, s.Unsupported())
	}
	if (&Status{Code: 0x0181}).Unsupported() { // command specific
		t.Error("command-specific status called unsupported")
	}
}

// FuzzParseController: no panic; a decoded page's fields are the bytes at
// their offsets.
func FuzzParseController(f *testing.F) {
	f.Add(identifyController("S1", "QEMU NVMe Ctrl", 0x0a, 0, 256, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseController(b)
		if err != nil {
			return
		}
		if c.OACS != binary.LittleEndian.Uint16(b[256:]) || c.SANICAP != binary.LittleEndian.Uint32(b[328:]) || c.FNA != b[524] {
			t.Fatalf("%+v", c)
		}
		if len(c.Serial) > 20 || len(c.Model) > 40 || len(c.SanitizeActions()) > 3 {
			t.Fatalf("%+v", c)
		}
	})
}

// FuzzParseNamespace: no panic; the block size is 0 or a power of two ≥ 512.
func FuzzParseNamespace(f *testing.F) {
	f.Add(identifyNamespace(1<<21, 0, 9, 12))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNamespace(b)
		if err != nil {
			return
		}
		if int(n.FormatIndex) >= len(n.Formats) || len(n.Formats) > 64 {
			t.Fatalf("%+v", n)
		}
		if bs := n.BlockSize(); bs != 0 && (bs < 512 || bs&(bs-1) != 0) {
			t.Fatalf("block size %d", bs)
		}
	})
}

// FuzzParseSanitizeLog: no panic; progress in [0, 1), a defined state.
func FuzzParseSanitizeLog(f *testing.F) {
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSanitizeLog(b)
		if err != nil {
			return
		}
		if s.Progress < 0 || s.Progress >= 1 || s.State > sanitizeStateLastDefined {
			t.Fatalf("%+v", s)
		}
	})
}

// FuzzParseNamespaceList: no panic; strictly increasing non-zero ids.
func FuzzParseNamespaceList(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ids, err := ParseNamespaceList(b)
		if err != nil {
			return
		}
		for i, id := range ids {
			if id == 0 || (i > 0 && id <= ids[i-1]) {
				t.Fatalf("%v", ids)
			}
		}
	})
}

// TestWaitSanitize: progress reported from the log until the state leaves
// in-progress; a failed sanitize and a cancelled wait are errors.
func TestWaitSanitize(t *testing.T) {
	seq := []SanitizeStatus{{State: SanitizeInProgress, Progress: 0.25}, {State: SanitizeInProgress, Progress: 0.75}, {State: SanitizeDone}}
	var got []float64
	i := 0
	log := func(context.Context) (SanitizeStatus, error) { s := seq[min(i, len(seq)-1)]; i++; return s, nil }
	if _, err := waitSanitize(context.Background(), "nvme0", time.Millisecond, log, func(f float64) { got = append(got, f) }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []float64{0.25, 0.75, 1}) {
		t.Errorf("progress %v", got)
	}
	fail := func(context.Context) (SanitizeStatus, error) { return SanitizeStatus{State: SanitizeFailed}, nil }
	if _, err := waitSanitize(context.Background(), "nvme0", time.Millisecond, fail, func(float64) {}); err == nil || !strings.Contains(err.Error(), "failed") {
		t.Errorf("failed sanitize: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	busy := func(context.Context) (SanitizeStatus, error) { return SanitizeStatus{State: SanitizeInProgress}, nil }
	if _, err := waitSanitize(ctx, "nvme0", time.Hour, busy, func(float64) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
}
