package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBadArguments: usage errors exit 2 with a message, before QEMU or a
// drive image is touched; a missing image exits 1 naming make image.
func TestBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-memory", "4096"}, 2, "want 128-1024 MiB"},
		{[]string{"-drive-size", "1000"}, 2, "multiple of 64 MiB"},
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"-image", t.TempDir(), "-drives", t.TempDir(), "-hwmgr-port", "0", "-osd-port", "0"}, 1, "make image"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, strings.NewReader(""), &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}
