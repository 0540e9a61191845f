package qemu

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd3a5f2000)
	libcap-ng.so.0 => /lib/x86_64-linux-gnu/libcap-ng.so.0 (0x00007f6e1c9d0000)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f6e1c600000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f6e1c41f000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f6e1ca2f000)
`
	libs, err := parseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "/lib/x86_64-linux-gnu/libcap-ng.so.0 /lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libc.so.6 /lib64/ld-linux-x86-64.so.2"
	if strings.Join(libs, " ") != want {
		t.Fatalf("got %q", libs)
	}
	if _, err := parseLdd("\tlibgone.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libgone.so.1") {
		t.Fatalf("missing library: err %v", err)
	}
}

// TestSharedLibsSmartctl runs the real ldd on the real smartctl.
func TestSharedLibsSmartctl(t *testing.T) {
	bin, err := lookBinary("smartctl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (make deps installs smartmontools)", err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	libs, err := sharedLibs(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	var libc, loader bool
	for _, l := range libs {
		libc = libc || strings.Contains(l, "/libc.so")
		loader = loader || strings.Contains(l, "ld-linux")
		if _, err := os.Stat(l); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
	if !libc || !loader {
		t.Fatalf("smartctl libraries %q lack libc or the loader", libs)
	}
	// A static binary (the test binary is not necessarily one, the guest
	// init is) has none; a non-ELF file is a clear error or none.
	if _, err := lookBinary("definitely-not-a-binary-xyz"); err == nil {
		t.Fatal("lookBinary found a missing binary")
	}
}

// FuzzParseLdd: every library parseLdd returns is an absolute path that
// appears in the input.
func FuzzParseLdd(f *testing.F) {
	f.Add("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n")
	f.Add("\tlinux-vdso.so.1 (0x1)\n")
	f.Add("\tx => not found\n")
	f.Fuzz(func(t *testing.T, out string) {
		libs, err := parseLdd(out)
		if err != nil {
			return
		}
		for _, l := range libs {
			if !strings.HasPrefix(l, "/") || !strings.Contains(out, l) {
				t.Fatalf("library %q is not an absolute path from the input", l)
			}
		}
	})
}
