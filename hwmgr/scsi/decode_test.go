package scsi

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// identifyPage builds IDENTIFY DEVICE data with security word w128 and
// word 82 bit 1 = supported.
func identifyPage(model string, supported bool, w128 uint16, checksum bool) []byte {
	b := make([]byte, 512)
	put := func(word int, s string, n int) {
		s += strings.Repeat(" ", 2*n)
		for i := 0; i < 2*n; i += 2 {
			b[2*word+i], b[2*word+i+1] = s[i+1], s[i]
		}
	}
	put(10, "STW-SATA-1", 10)
	put(23, "2.5+", 4)
	put(27, model, 20)
	if supported {
		binary.LittleEndian.PutUint16(b[2*82:], 0x2)
	}
	binary.LittleEndian.PutUint16(b[2*83:], 0x4000)
	binary.LittleEndian.PutUint16(b[2*89:], 30)
	binary.LittleEndian.PutUint16(b[2*90:], 0xff)
	binary.LittleEndian.PutUint16(b[2*128:], w128)
	if checksum {
		b[510] = 0xa5
		var s byte
		for _, c := range b[:511] {
			s += c
		}
		b[511] = -s
	}
	return b
}

func TestParseIdentifySecurity(t *testing.T) {
	id, err := ParseIdentify(identifyPage("QEMU HARDDISK", false, 0, true))
	if err != nil {
		t.Fatal(err)
	}
	if id.Model != "QEMU HARDDISK" || id.Serial != "STW-SATA-1" || id.Firmware != "2.5+" {
		t.Errorf("%+v", id)
	}
	if !errors.Is(CheckSecurityErase(id), ErrSecurityUnsupported) {
		t.Errorf("unsupported drive: %v", CheckSecurityErase(id))
	}
	for _, c := range []struct {
		w128 uint16
		want error
	}{
		{0x0001, nil},
		{0x0021, nil},
		{0x0009, ErrSecurityFrozen},
		{0x0007, ErrSecurityLocked},
		{0x0003, ErrSecurityEnabled},
		{0x0011, ErrSecurityCount},
	} {
		id, err := ParseIdentify(identifyPage("M", true, c.w128, true))
		if err != nil {
			t.Fatal(err)
		}
		if got := CheckSecurityErase(id); !errors.Is(got, c.want) || (c.want == nil) != (got == nil) {
			t.Errorf("word 128 %#04x: %v, want %v", c.w128, got, c.want)
		}
		if id.EraseMinutes != 60 || id.EnhancedEraseMinutes != 508 {
			t.Errorf("erase minutes %d %d", id.EraseMinutes, id.EnhancedEraseMinutes)
		}
	}
	bad := identifyPage("M", true, 1, true)
	bad[100]++
	if _, err := ParseIdentify(bad); err == nil {
		t.Error("bad checksum accepted")
	}
}

func TestParseSense(t *testing.T) {
	// Fixed: ILLEGAL REQUEST, invalid opcode.
	fixed := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0}
	s, err := ParseSense(fixed)
	if err != nil || s.Key != KeyIllegalRequest || s.ASC != 0x20 || s.ASCQ != 0 {
		t.Fatalf("%+v %v", s, err)
	}
	if !(&Error{Status: StatusCheckCondition, Sense: s}).Unsupported() || !strings.Contains(s.String(), "invalid command operation code") {
		t.Errorf("%s not unsupported", s)
	}
	// Fixed: NOT READY, sanitize in progress, 25 %.
	prog := []byte{0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1b, 0, 0x80, 0x40, 0x00}
	if s, _ := ParseSense(prog); !s.HasProgress || s.Progress != 0x4000 {
		t.Errorf("progress: %+v", s)
	}
	// Descriptor with an ATA status return: ABORTED COMMAND, ATA error ABRT.
	desc := []byte{0x72, 0x0b, 0x00, 0x00, 0, 0, 0, 14, 0x09, 12, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x51}
	s, err = ParseSense(desc)
	if err != nil || !s.HasATA || s.ATA.Error != 0x04 || s.ATA.Status != 0x51 || s.Key != KeyAbortedCommand {
		t.Errorf("%+v %v", s, err)
	}
	// Fixed format after ATA PASS-THROUGH: the registers in INFORMATION.
	fx := []byte{0xf0, 0, 0x0b, 0x04, 0x51, 0x40, 0x00, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	s, _ = ParseSense(fx)
	if s.ataFixed(fx); !s.HasATA || s.ATA.Error != 0x04 || s.ATA.Status != 0x51 {
		t.Errorf("fixed ATA registers: %+v", s)
	}
	desc[9] = 40
	if _, err := ParseSense(desc); err == nil {
		t.Error("overrunning descriptor accepted")
	}
	if _, err := ParseSense([]byte{0x7f, 0}); err == nil {
		t.Error("bad response code accepted")
	}
}

func opcodeList(ops ...Opcode) []byte {
	b := make([]byte, 4, 4+8*len(ops))
	for _, o := range ops {
		d := make([]byte, 8)
		d[0] = o.Code
		binary.BigEndian.PutUint16(d[2:], o.ServiceAction)
		if o.HasSA {
			d[5] = 1
		}
		binary.BigEndian.PutUint16(d[6:], o.CDBLen)
		b = append(b, d...)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func TestParseOpcodes(t *testing.T) {
	ops, err := ParseOpcodes(opcodeList(Opcode{Code: 0x00, CDBLen: 6}, Opcode{Code: OpFormatUnit, CDBLen: 6},
		Opcode{Code: OpSanitize, ServiceAction: SanitizeBlockErase, HasSA: true, CDBLen: 10}))
	if err != nil || len(ops) != 3 {
		t.Fatalf("%v %v", ops, err)
	}
	if !ops.Has(OpSanitize, SanitizeBlockErase) || ops.Has(OpSanitize, SanitizeOverwrite) || !ops.Has(OpFormatUnit, 0) || ops.Has(0x88, 0) {
		t.Errorf("%+v", ops)
	}
	// Truncated by the allocation length: the whole descriptors decode.
	full := opcodeList(Opcode{Code: 1, CDBLen: 6}, Opcode{Code: 2, CDBLen: 6})
	if ops, err := ParseOpcodes(full[:15]); err != nil || len(ops) != 1 {
		t.Errorf("truncated: %v %v", ops, err)
	}
}

func TestATA16(t *testing.T) {
	c := ATA16(protoPIOIn, ATAIdentify, 0, 1)
	if c[0] != 0x85 || c[1] != 0x08 || c[2] != 0x0e || c[6] != 1 || c[14] != 0xec {
		t.Errorf("% x", c)
	}
	if c := ATA16(protoPIOOut, ATASecurityEraseUnit, 0, 1); c[1] != 0x0a || c[2] != 0x06 || c[14] != 0xf4 {
		t.Errorf("% x", c)
	}
}

// FuzzParseSense: no panic; a decoded key is 4 bits, progress only with a
// NOT READY or NO SENSE key.
func FuzzParseSense(f *testing.F) {
	f.Add([]byte{0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0})
	f.Add([]byte{0x72, 0x0b, 0x00, 0x00, 0, 0, 0, 14, 0x09, 12, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x51})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err != nil {
			return
		}
		if s.Key > 0xf || (s.HasProgress && s.Key != KeyNotReady && s.Key != KeyNoSense) {
			t.Fatalf("%+v", s)
		}
		_ = s.String()
	})
}

// FuzzParseIdentify: no panic; CheckSecurityErase never allows a frozen,
// locked or enabled drive.
func FuzzParseIdentify(f *testing.F) {
	f.Add(identifyPage("QEMU HARDDISK", false, 0, true))
	f.Add(identifyPage("M", true, 0x29, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentify(b)
		if err != nil {
			return
		}
		s := id.Security
		if CheckSecurityErase(id) == nil && (s.Frozen || s.Locked || s.Enabled || !s.Supported || !id.SecuritySupported) {
			t.Fatalf("erase allowed on %+v", id)
		}
		if id.EraseMinutes < 0 || id.EraseMinutes > 508 {
			t.Fatalf("%d minutes", id.EraseMinutes)
		}
	})
}

// FuzzParseOpcodes: no panic; every descriptor has a plausible CDB length
// and the list fits the input.
func FuzzParseOpcodes(f *testing.F) {
	f.Add(opcodeList(Opcode{Code: OpFormatUnit, CDBLen: 6}, Opcode{Code: OpSanitize, ServiceAction: 2, HasSA: true, CDBLen: 10}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := ParseOpcodes(b)
		if err != nil {
			return
		}
		if 4+8*len(ops) > len(b) {
			t.Fatalf("%d opcodes from %d bytes", len(ops), len(b))
		}
		for _, o := range ops {
			if o.CDBLen == 0 || o.CDBLen > 260 {
				t.Fatalf("%+v", o)
			}
		}
	})
}

// TestWaitReady: REQUEST SENSE polled while a sanitize runs, progress from
// the sense-key-specific field; a medium error after it fails.
func TestWaitReady(t *testing.T) {
	seq := [][]byte{
		{0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1b, 0, 0x80, 0x40, 0x00},
		{0x70, 0, 0x02, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x04, 0x1b, 0, 0x80, 0xc0, 0x00},
		{0x70, 0, 0x00, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
	i := 0
	src := func(context.Context) (Sense, error) {
		s, err := ParseSense(seq[min(i, len(seq)-1)])
		i++
		return s, err
	}
	var got []float64
	if err := waitReady(context.Background(), "sdx", time.Millisecond, src, func(f float64) { got = append(got, f) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != 0.25 || got[1] != 0.75 || got[2] != 1 {
		t.Errorf("progress %v", got)
	}
	medium := func(context.Context) (Sense, error) {
		return ParseSense([]byte{0x70, 0, 0x03, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x31, 0, 0, 0, 0, 0})
	}
	if err := waitReady(context.Background(), "sdx", time.Millisecond, medium, func(float64) {}); err == nil {
		t.Error("medium error after sanitize accepted")
	}
}
