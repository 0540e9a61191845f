package discover

import (
	"reflect"
	"testing"
)

// FuzzParseUevent: anything ParseUevent accepts re-encodes to bytes that
// parse to the same event (round trip), and the encoding is stable.
func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("add@/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1\x00SUBSYSTEM=block\x00MAJOR=259\x00MINOR=0\x00DEVNAME=nvme0n1\x00DEVTYPE=disk\x00DISKSEQ=3\x00SEQNUM=1201\x00"))
	f.Add([]byte("libudev\x00\xfe\xed\xca\xfe"))
	f.Add([]byte("remove@\x00ACTION=remove\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUevent(b)
		if err != nil {
			return
		}
		enc := u.Marshal()
		v, err := ParseUevent(enc)
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", enc, err)
		}
		if !reflect.DeepEqual(u, v) {
			t.Fatalf("round trip: %+v != %+v", u, v)
		}
		if string(v.Marshal()) != string(enc) {
			t.Fatalf("unstable encoding %q vs %q", v.Marshal(), enc)
		}
		if u.Env["ACTION"] != u.Action || u.Env["DEVPATH"] != u.DevPath {
			t.Fatalf("fields disagree with env: %+v", u)
		}
	})
}

// FuzzParseVPD80: an accepted page's serial encodes to a page that parses
// to the same serial, and the serial is printable ASCII without padding.
func FuzzParseVPD80(f *testing.F) {
	f.Add(EncodeVPD80("ZL2ABCDE"))
	f.Add([]byte{0, 0x80, 0, 20, ' ', ' ', 'W', 'D', '-', 'W', 'C', 'C', '4', 'N', '1', '2', '3', '4', '5', '6', '7', 0, 0, 0})
	f.Add([]byte{0, 0x80, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		sn, err := ParseVPD80(b)
		if err != nil {
			return
		}
		for _, c := range []byte(sn) {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("serial %q has byte 0x%02x", sn, c)
			}
		}
		if len(sn) > 0 && (sn[0] == ' ' || sn[len(sn)-1] == ' ') {
			t.Fatalf("serial %q keeps padding", sn)
		}
		again, err := ParseVPD80(EncodeVPD80(sn))
		if err != nil || again != sn {
			t.Fatalf("round trip of %q: %q, %v", sn, again, err)
		}
	})
}
