package guest

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{"modules":[{"name":"nvme","path":"/stowage/modules/nvme.ko","params":""}],
		"wait_serials":["A"],"wait_timeout":"1m30s","args":["/stowage/test","-test.v=true"],"env":["X=1"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.WaitTimeout) != 90*time.Second || c.Args[0] != "/stowage/test" || c.Modules[0].Name != "nvme" {
		t.Fatalf("%+v", c)
	}
	for name, bad := range map[string]string{
		"not json":      `{`,
		"no args":       `{"args":[]}`,
		"empty command": `{"args":[""]}`,
		"module path":   `{"args":["x"],"modules":[{"name":"nvme"}]}`,
		"bad duration":  `{"args":["x"],"wait_timeout":"soon"}`,
		"negative wait": `{"args":["x"],"wait_timeout":"-1s"}`,
		"duration type": `{"args":["x"],"wait_timeout":5}`,
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%s: %s accepted", name, bad)
		}
	}
}

// FuzzParseConfig: a config ParseConfig accepts survives a JSON round trip.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"args":["/stowage/test"],"wait_timeout":"1m0s","wait_serials":["A"]}`))
	f.Add([]byte(`{"args":["x"],"modules":[{"name":"a","path":"/a.ko","params":"x=1"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("re-encoded config %s rejected: %v", out, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}

func TestMarkers(t *testing.T) {
	for _, c := range []struct{ line, kind, arg string }{
		{MarkLine(MarkExit, "0"), MarkExit, "0"},
		{"[    7.1] nvme: x" + MarkLine(MarkUser, "ready"), MarkUser, "ready"},
		{MarkLine(MarkStart, "") + "\r", MarkStart, ""},
		{MarkLine(MarkError, "mount proc: EPERM"), MarkError, "mount proc: EPERM"},
	} {
		k, a, ok := ParseMark(c.line)
		if !ok || k != c.kind || a != c.arg {
			t.Errorf("ParseMark(%q) = %q %q %v", c.line, k, a, ok)
		}
	}
	if _, _, ok := ParseMark("no marker"); ok {
		t.Error("a line without a marker matched")
	}
	if _, _, ok := ParseMark(Marker + "   "); ok {
		t.Error("an empty marker matched")
	}
	if n, err := ParseExit("3"); err != nil || n != 3 {
		t.Errorf("ParseExit(3) = %d, %v", n, err)
	}
	if _, err := ParseExit("three"); err == nil {
		t.Error("ParseExit(three) accepted")
	}
}

// FuzzParseMark: MarkLine then ParseMark gives back the kind and argument
// (for kinds without spaces and arguments without edge spaces or newlines).
func FuzzParseMark(f *testing.F) {
	f.Add("mark", "ready", "[ 1.0] kernel says ")
	f.Add("exit", "125", "")
	f.Fuzz(func(t *testing.T, kind, arg, prefix string) {
		if kind == "" || strings.ContainsAny(kind, " \t\r\n\v\f\u0085\u00a0") || strings.Contains(prefix, Marker) ||
			strings.ContainsAny(arg, "\r\n") || arg != strings.TrimSpace(arg) || strings.Contains(kind, Marker) {
			return
		}
		k, a, ok := ParseMark(prefix + MarkLine(kind, arg))
		if !ok || k != kind || a != arg {
			t.Fatalf("ParseMark(%q+MarkLine(%q, %q)) = %q, %q, %v", prefix, kind, arg, k, a, ok)
		}
	})
}

func TestLoadModuleMissing(t *testing.T) {
	err := LoadModule(Module{Name: "nope", Path: "/nonexistent/nope.ko"})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err %v", err)
	}
}

func TestParseKmsg(t *testing.T) {
	for rec, want := range map[string]string{
		"6,339,5140900,-;NET: Registered PF_INET6 protocol family\n":            "[5.140900] NET: Registered PF_INET6 protocol family",
		"3,1000,23148314,-,caller=T1;nvme0n1: I/O Cmd(0x1)\n SUBSYSTEM=block\n": "[23.148314] nvme0n1: I/O Cmd(0x1)",
		"4,1,0,c;x": "[0.000000] x",
	} {
		got, ok := ParseKmsg(rec)
		if !ok || got != want {
			t.Errorf("ParseKmsg(%q) = %q, %v; want %q", rec, got, ok, want)
		}
	}
	for _, bad := range []string{"", "no separator", "6,1;too few", "6,1,notanumber,-;x"} {
		if _, ok := ParseKmsg(bad); ok {
			t.Errorf("ParseKmsg(%q) accepted", bad)
		}
	}
}

// FuzzParseKmsg: a record built from a time stamp and a one-line message
// parses back to them.
func FuzzParseKmsg(f *testing.F) {
	f.Add(uint64(5140900), "NET: Registered PF_INET6 protocol family")
	f.Add(uint64(0), "")
	f.Fuzz(func(t *testing.T, usec uint64, msg string) {
		if strings.Contains(msg, "\n") {
			return
		}
		rec := fmt.Sprintf("6,12,%d,-;%s\n SUBSYSTEM=block\n", usec, msg)
		got, ok := ParseKmsg(rec)
		want := fmt.Sprintf("[%d.%06d] %s", usec/1e6, usec%1e6, msg)
		if !ok || got != want {
			t.Fatalf("ParseKmsg(%q) = %q, %v; want %q", rec, got, ok, want)
		}
		ParseKmsg(msg) // arbitrary text: no panic
	})
}
