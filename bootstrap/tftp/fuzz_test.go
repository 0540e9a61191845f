package tftp

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParseRequest checks that every request ParseRequest accepts marshals
// back to the same bytes and parses to the same request, and that
// CleanPath never lets a refused shape through.
func FuzzParseRequest(f *testing.F) {
	f.Add(Request{Op: OpRRQ, Filename: "undionly.kpxe", Mode: "octet"}.Marshal())
	f.Add(Request{Op: OpRRQ, Filename: "ipxe.efi", Mode: "octet", Options: []Option{{"blksize", "1468"}, {"tsize", "0"}}}.Marshal())
	f.Add(Request{Op: OpWRQ, Filename: "../etc/passwd", Mode: "netascii"}.Marshal())
	f.Add([]byte{0, 1, 'a', 0, 'o', 'c', 't', 'e', 't', 0, 'b', 'l', 'k', 0})
	f.Add([]byte{0, 1})
	f.Add([]byte{0, 3, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		out := r.Marshal()
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip: %q -> %+v -> %q", b, r, out)
		}
		r2, err := ParseRequest(out)
		if err != nil || !reflect.DeepEqual(r, r2) {
			t.Fatalf("re-parse: %+v vs %+v (%v)", r, r2, err)
		}
		if p, err := CleanPath(r.Filename); err == nil {
			if p == "" || p[0] == '/' || bytes.Contains([]byte("/"+p+"/"), []byte("/../")) {
				t.Fatalf("CleanPath(%q) let %q through", r.Filename, p)
			}
		}
	})
}
