package pxe

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDecideCaptures decides on packets captured from real clients (the
// netboot VM test's guests: QEMU's iPXE ROM under SeaBIOS and OVMF, logged
// in hex by netbootd -log-level debug). File names are
// <name>.<port>.hex; the decisions are golden files
// testdata/decide/capture-<name>.golden.
func TestDecideCaptures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "captures", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no captures in testdata/captures")
	}
	for _, f := range files {
		base := strings.TrimSuffix(filepath.Base(f), ".hex")
		dot := strings.LastIndexByte(base, '.')
		name, portStr := base[:dot], base[dot+1:]
		port, err := strconv.Atoi(portStr)
		if err != nil {
			t.Fatalf("%s: want <name>.<port>.hex", f)
		}
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
			if err != nil {
				t.Fatal(err)
			}
			req := mustParse(t, b)
			d := Decide(context.Background(), testConfig, testLookup, req, port)
			if d.Reply != nil {
				checkReply(t, req, d, port)
			}
			got := dump(d)
			golden := filepath.Join("testdata", "decide", "capture-"+name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if got != string(want) {
				t.Fatalf("decision differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}
