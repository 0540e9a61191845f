package kmsg

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	cases := []struct {
		in   string
		want Record
	}{
		{"6,339,5140900,-;NET: Registered protocol family 10\n",
			Record{Facility: 0, Level: 6, Seq: 339, Time: 5140900 * time.Microsecond, Flag: "-", Message: "NET: Registered protocol family 10"}},
		{"3,1201,86254001,-;I/O error, dev sdb, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2\n",
			Record{Level: 3, Seq: 1201, Time: 86254001 * time.Microsecond, Flag: "-", Message: "I/O error, dev sdb, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2"}},
		{"12,50,1,c,caller=T42;line\\x0aafter \\x5c done\n SUBSYSTEM=block\n DEVICE=b8:16\n",
			Record{Facility: 1, Level: 4, Seq: 50, Time: time.Microsecond, Flag: "c", Extra: []string{"caller=T42"}, Message: "line\nafter \\ done",
				Dict: []KeyValue{{"SUBSYSTEM", "block"}, {"DEVICE", "b8:16"}}}},
		{"6,7,8,-;", Record{Level: 6, Seq: 7, Time: 8 * time.Microsecond, Flag: "-"}},
	}
	for _, c := range cases {
		got, err := Parse([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", c.in, got, c.want)
		}
		back, err := Parse(got.Format())
		if err != nil || !reflect.DeepEqual(back, got) {
			t.Errorf("%q: round trip %q -> %+v (%v)", c.in, got.Format(), back, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "no prefix at all\n", "6,1,2;three fields\n", "x,1,2,-;bad pri\n", "6,-1,2,-;bad seq\n",
		"6,1,99999999999999999999,-;bad ts\n", "6,1,2,-;msg\nKEY=no leading space\n", "6,1,2,-;msg\n no-equals\n",
		"6,1,2,-;msg\n =empty key\n",
	} {
		if r, err := Parse([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: got %+v, %v; want ErrMalformed", in, r, err)
		}
	}
}

func TestParseIOError(t *testing.T) {
	cases := []struct {
		msg  string
		want IOError
		ok   bool
	}{
		// Linux 6.1 (blk_print_req_error).
		{"I/O error, dev sdb, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2",
			IOError{Kind: "I/O", Device: "sdb", Sector: 2048, Op: "READ"}, true},
		{"critical medium error, dev sdc, sector 123456 op 0x1:(WRITE) flags 0x0 phys_seg 8 prio class 2",
			IOError{Kind: "critical medium", Device: "sdc", Sector: 123456, Op: "WRITE"}, true},
		{"critical space allocation error, dev nvme0n1, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 0",
			IOError{Kind: "critical space allocation", Device: "nvme0n1", Sector: 8, Op: "WRITE"}, true},
		// Linux <= 5.x.
		{"blk_update_request: I/O error, dev sda, sector 7814037000",
			IOError{Kind: "I/O", Device: "sda", Sector: 7814037000}, true},
		{"print_req_error: I/O error, dev nvme1n1, sector 0 flags 80700",
			IOError{Kind: "I/O", Device: "nvme1n1", Sector: 0}, true},
		// Consequences and look-alikes, not counted.
		{"Buffer I/O error on dev sda1, logical block 0, async page read", IOError{}, false},
		{"EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm ls: reading directory lblock 0", IOError{}, false},
		{"sd 2:0:0:0: [sdb] tag#0 Sense Key : Medium Error [current]", IOError{}, false},
	}
	for _, c := range cases {
		got, ok := ParseIOError(Record{Message: c.msg, Seq: 9})
		if c.ok {
			c.want.Seq = 9
		}
		if ok != c.ok || got != c.want {
			t.Errorf("%q: %+v %v, want %+v %v", c.msg, got, ok, c.want, c.ok)
		}
	}
	n := CountIOErrors([]Record{
		{Message: "I/O error, dev sdb, sector 1 op 0x0:(READ)"},
		{Message: "I/O error, dev sdb, sector 9 op 0x0:(READ)"},
		{Message: "Buffer I/O error on dev sdb1, logical block 0"},
		{Message: "timeout error, dev nvme0n1, sector 3 op 0x0:(READ)"},
	})
	if !reflect.DeepEqual(n, map[string]uint64{"sdb": 2, "nvme0n1": 1}) {
		t.Errorf("counts %v", n)
	}
}

// FuzzParse: no panic, and every record Parse accepts formats back to
// bytes that parse to the same record.
func FuzzParse(f *testing.F) {
	f.Add([]byte("6,339,5140900,-;NET: Registered protocol family 10\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		out := r.Format()
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("own output %q: %v", out, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v\nvia %q", back, r, out)
		}
	})
}

// writeKmsg logs a line through the real /dev/kmsg (root only).
func writeKmsg(t *testing.T, line string) {
	t.Helper()
	f, err := os.OpenFile(DefaultPath, os.O_WRONLY, 0)
	if err != nil {
		if os.Getenv("CI") == "" && (os.IsPermission(err) || os.IsNotExist(err)) {
			t.Skipf("cannot write %s: %v", DefaultPath, err)
		}
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte(line)); err != nil {
		t.Fatal(err)
	}
}

// The real kernel log: a record written to /dev/kmsg comes back through
// both Available and Next, and its I/O error is found and counted.
func TestReaderRealKmsg(t *testing.T) {
	dev := fmt.Sprintf("stowagetest%d", os.Getpid())
	probe := fmt.Sprintf("I/O error, dev %s, sector 4242 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2", dev)
	r, err := Open("", true)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no kernel log: %v", err)
		}
		t.Fatal(err)
	}
	defer r.Close()
	writeKmsg(t, "<3>"+probe+"\n")
	recs, err := r.Available()
	if err != nil {
		t.Fatal(err)
	}
	counts := CountIOErrors(recs)
	if counts[dev] != 1 {
		t.Fatalf("counted %v in %d records, want 1 for %s", counts, len(recs), dev)
	}
	for _, rec := range recs {
		if rec.Message == probe && rec.Level != 3 {
			t.Errorf("level %d, want 3", rec.Level)
		}
	}

	// Next waits for the next record.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan Record, 1)
	errc := make(chan error, 1)
	go func() {
		for {
			rec, err := r.Next(ctx)
			if err != nil {
				errc <- err
				return
			}
			if rec.Message == probe+" again" {
				got <- rec
				return
			}
		}
	}()
	writeKmsg(t, "<3>"+probe+" again\n")
	select {
	case rec := <-got:
		if e, ok := ParseIOError(rec); !ok || e.Device != dev || e.Sector != 4242 {
			t.Errorf("%+v %v", e, ok)
		}
	case err := <-errc:
		t.Fatal(err)
	}

	// A cancelled context ends a waiting Next.
	cctx, ccancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := r.Next(cctx); done <- err }()
	ccancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Next after cancel: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Next did not return after cancel")
	}
}

func TestTally(t *testing.T) {
	var seen []IOError
	tl := Tally{OnError: func(e IOError) { seen = append(seen, e) }}
	if tl.Count("sdb") != 0 || len(tl.Counts()) != 0 {
		t.Fatal("zero Tally not empty")
	}
	tl.Add(
		Record{Seq: 1, Message: "I/O error, dev sdb, sector 1 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"},
		Record{Seq: 2, Message: "Buffer I/O error on dev sdb1, logical block 0, async page read"},
		Record{Seq: 3, Message: "critical medium error, dev sdb, sector 9 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2"},
	)
	tl.Add(Record{Seq: 4, Message: "I/O error, dev nvme0n1, sector 0 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2"})
	if tl.Count("sdb") != 2 || tl.Count("nvme0n1") != 1 || len(seen) != 3 || seen[1].Kind != "critical medium" {
		t.Errorf("counts %v, seen %+v", tl.Counts(), seen)
	}
	c := tl.Counts()
	c["sdb"] = 100
	if tl.Count("sdb") != 2 {
		t.Error("Counts returned the live map")
	}
}

// Follow on the real /dev/kmsg counts an I/O error logged after it started.
func TestTallyFollowRealKmsg(t *testing.T) {
	dev := fmt.Sprintf("stowagetally%d", os.Getpid())
	r, err := Open("", true)
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no kernel log: %v", err)
		}
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan IOError, 16)
	tl := &Tally{OnError: func(e IOError) {
		if e.Device == dev {
			got <- e
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tl.Follow(ctx, r) }()
	writeKmsg(t, fmt.Sprintf("<3>I/O error, dev %s, sector 77 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2\n", dev))
	select {
	case e := <-got:
		if e.Sector != 77 || tl.Count(dev) != 1 {
			t.Errorf("%+v, count %d", e, tl.Count(dev))
		}
	case err := <-done:
		t.Fatalf("Follow ended: %v", err)
	case <-ctx.Done():
		t.Fatal("the error never arrived")
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel: %v", err)
	}
}

// A SOCK_SEQPACKET pair keeps record boundaries like /dev/kmsg does, so
// the Reader's loop can be fed records the kernel would never write: a
// malformed one is skipped and counted, the others come through, and an
// empty socket ends Available without blocking.
func TestReaderSkipsMalformed(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := os.NewFile(uintptr(fds[0]), "writer")
	defer w.Close()
	r := newReader(os.NewFile(uintptr(fds[1]), "seqpacket"), "seqpacket")
	defer r.Close()
	for _, rec := range []string{
		"6,1,10,-;first\n",
		"this is not a kmsg record\n",
		"3,2,20,-;I/O error, dev sdq, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2\n",
	} {
		if _, err := w.Write([]byte(rec)); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := r.Available()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Message != "first" || recs[1].Seq != 2 || r.Malformed != 1 || !errors.Is(r.LastMalformed, ErrMalformed) {
		t.Fatalf("records %+v, malformed %d (%v)", recs, r.Malformed, r.LastMalformed)
	}
	if recs, err := r.Available(); err != nil || len(recs) != 0 {
		t.Fatalf("empty socket: %+v %v", recs, err)
	}
	// Next skips a malformed record too and waits for a good one.
	if _, err := w.Write([]byte("garbage\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("6,3,30,-;second\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec, err := r.Next(ctx)
	if err != nil || rec.Message != "second" || r.Malformed != 2 {
		t.Fatalf("Next: %+v %v, malformed %d", rec, err, r.Malformed)
	}
}
