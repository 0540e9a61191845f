package label

import (
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stowage/stowage/hwmgr/lifecycle"
)

var rewriteGolden = flag.Bool("rewrite-golden", false, "rewrite testdata/record-v1.golden")

// TestGoldenRecord pins format version 1 byte for byte: wire constants
// never change. A failure here means the format changed; that needs a new
// Version, not a new golden file.
func TestGoldenRecord(t *testing.T) {
	r := Record{Generation: 0x0102030405060708, Time: time.Unix(1764331200, 123456789), State: lifecycle.InService,
		WWN: "0x5000c500a1b2c3d4", Serial: "ZA1234XY", Model: "ST16000NM001G", Owner: "osd", Payload: []byte("volume=7c0e slot=3 code=4+2"),
		Task:    Task{Kind: "erase", Step: "overwrite", Done: 10, Total: 100, Started: time.Unix(1764331000, 0), Updated: time.Unix(1764331100, 0)},
		Summary: Summary{Trimmed: 2, Since: time.Unix(1700000000, 0), Until: time.Unix(1700000100, 0), Transitions: 1, BurnInPass: 1},
		History: []Entry{{Time: time.Unix(1764330000, 0), Kind: KindTransition, Action: "claim", From: lifecycle.Ready, To: lifecycle.InService, Actor: "osd", Detail: "volume 7c0e"}}}
	b, err := Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	got := hex.Dump(b[:end]) + fmt.Sprintf("zero padding to %d bytes\n", len(b))
	path := filepath.Join("testdata", "record-v1.golden")
	if *rewriteGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Fatalf("record v1 encoding changed:\n%s\nwant:\n%s", got, want)
	}
}
