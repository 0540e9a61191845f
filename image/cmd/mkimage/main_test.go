package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{{"-bogus"}, {"stray"}, {"-out"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (usage)", args, code)
		}
		if errb.Len() == 0 {
			t.Errorf("run(%q): no message on stderr", args)
		}
	}
}

func TestBadKernelVersion(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"-out", t.TempDir(), "-kernel", "0.0.0-nosuch", "-version", "x"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "mkimage:") {
		t.Fatalf("run with a missing kernel = %d, stderr %q; want 1 and a message", code, errb.String())
	}
}
