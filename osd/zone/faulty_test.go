package zone

import (
	"bytes"
	"context"
	"errors"
	"math/bits"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
)

func newFaulty(t *testing.T, d Device, seed uint64, rules ...Rule) *Faulty {
	t.Helper()
	f, err := NewFaulty(d, seed, rules...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFaultyByOperation(t *testing.T) {
	ctx := context.Background()
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 64 << 10, NumZones: 4})
	f := newFaulty(t, m, 1, Rule{Ops: OpWrite | OpReset})
	_, err := f.WriteAt(fill(4096, 1), 64<<10)
	if !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("write: %v, want an injected EIO", err)
	}
	if !strings.Contains(err.Error(), "offset 65536") || !strings.Contains(err.Error(), "zone 1") || !strings.Contains(err.Error(), "mem") {
		t.Errorf("error %q does not say where", err)
	}
	if m.Pending() != 0 {
		t.Fatal("a failed write reached the device")
	}
	if err := f.Reset(ctx, 2); !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), "zone 2") {
		t.Fatalf("reset: %v", err)
	}
	// The other operations pass through.
	if _, err := f.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Finish(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.OpenZone(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if z := zoneOf(t, f, 2); z.Cond != CondExpOpen {
		t.Fatalf("OpenZone did not reach the device: %+v", z)
	}
	if err := f.CloseZone(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if f.Injected() != 2 || f.Ops() != 8 {
		t.Fatalf("injected %d of %d ops, want 2 of 8", f.Injected(), f.Ops())
	}
	f.Clear()
	if _, err := f.WriteAt(fill(4096, 1), 192<<10); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

func TestFaultyRangeAfterCount(t *testing.T) {
	m := newMem(t, MemOptions{ZoneSize: 64 << 10, NumZones: 4})
	// Writes touching zone 2 fail from the 3rd on, twice, with ENOSPC.
	f := newFaulty(t, m, 1, Rule{Ops: OpWrite, From: 128 << 10, To: 192 << 10, After: 2, Count: 2, Err: syscall.ENOSPC})
	var got []bool
	for i := range 6 {
		_, err := f.WriteAt(fill(4096, 1), 128<<10+int64(i)*4096)
		if err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write %d: %v, want ENOSPC", i, err)
		}
		got = append(got, err != nil)
		// Writes elsewhere are not counted and never fail.
		if _, err := f.WriteAt(fill(4096, 1), int64(i)*4096); err != nil {
			t.Fatalf("write outside the range: %v", err)
		}
	}
	want := []bool{false, false, true, true, false, false}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("failures %v, want %v", got, want)
		}
	}
	// A write straddling the range's start matches it.
	g := newFaulty(t, m, 1, Rule{Ops: OpWrite, From: 8192, To: 12288})
	if _, err := g.WriteAt(fill(8192, 1), 4096); err == nil {
		t.Fatal("a write overlapping the range passed")
	}
	if _, err := g.WriteAt(fill(4096, 1), 12288); err != nil {
		t.Fatalf("a write just past the range: %v", err)
	}
	// Flush matches only rules without a range.
	h := newFaulty(t, m, 1, Rule{Ops: OpFlush, From: 0, To: 4096})
	if err := h.Flush(context.Background()); err != nil {
		t.Fatalf("flush matched a ranged rule: %v", err)
	}
	if err := h.Inject(Rule{Ops: OpFlush}); err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(context.Background()); !errors.Is(err, ErrInjected) {
		t.Fatalf("flush: %v", err)
	}
}

func TestFaultyProbabilitySeeded(t *testing.T) {
	pattern := func(seed uint64) []bool {
		m := newMem(t, MemOptions{})
		f := newFaulty(t, m, seed, Rule{Ops: OpRead, Prob: 0.3})
		var p []bool
		for range 1000 {
			_, err := f.ReadAt(make([]byte, 4096), 0)
			p = append(p, err != nil)
		}
		return p
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	n := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 7 gave two different fault patterns (op %d)", i)
		}
		if a[i] {
			n++
		}
	}
	if n < 220 || n > 380 {
		t.Fatalf("%d faults in 1000 reads at p=0.3", n)
	}
	same := true
	for i := range a {
		same = same && a[i] == c[i]
	}
	if same {
		t.Fatal("seeds 7 and 8 gave the same fault pattern")
	}
}

func TestFaultyCorruptReads(t *testing.T) {
	m := newMem(t, MemOptions{ZoneSize: 64 << 10, NumZones: 2})
	data := fill(16384, 9)
	if _, err := m.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	// Corrupt only the second and third blocks.
	f := newFaulty(t, m, 3, Rule{Ops: OpRead, Corrupt: true, From: 4096, To: 12288})
	got := AlignedBlock(16384)
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatalf("a corrupting read failed: %v", err)
	}
	for b := range 4 {
		flipped := 0
		for i := b * 4096; i < (b+1)*4096; i++ {
			flipped += bits.OnesCount8(got[i] ^ data[i])
		}
		want := 0
		if b == 1 || b == 2 {
			want = 1
		}
		if flipped != want {
			t.Errorf("block %d: %d bits flipped, want %d", b, flipped, want)
		}
	}
	// The device itself is intact.
	if _, err := m.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("corruption reached the device (err %v)", err)
	}
	if f.Injected() != 1 {
		t.Fatalf("injected %d, want 1", f.Injected())
	}
}

func TestFaultyRejectsBadRules(t *testing.T) {
	m := newMem(t, MemOptions{})
	for _, r := range []Rule{
		{Ops: OpWrite, Corrupt: true},
		{Ops: Op(1 << 12)},
		{From: 8192, To: 4096},
		{Prob: 1.5},
		{After: -1},
	} {
		if _, err := NewFaulty(m, 1, r); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	if s := (OpRead | OpFlush).String(); s != "read|flush" {
		t.Errorf("Op string %q", s)
	}
}

// TestFaultyPowerCutThenCrash is the recipe for crash tests: run a
// workload until every operation fails after a random point, then crash
// the Mem underneath and check that what was flushed survived.
func TestFaultyPowerCutThenCrash(t *testing.T) {
	ctx := context.Background()
	for seed := range uint64(20) {
		m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 256 << 10, NumZones: 2})
		rng := rand.New(rand.NewPCG(seed, 2))
		f := newFaulty(t, m, seed, Rule{After: int64(rng.IntN(40))})
		var acked int64 // bytes of zone 0 known durable
		var wp int64
		for {
			if _, err := f.WriteAt(fill(4096, byte(wp/4096)), wp); err != nil {
				if !errors.Is(err, ErrInjected) {
					t.Fatal(err)
				}
				break
			}
			wp += 4096
			if wp%16384 == 0 {
				if err := f.Flush(ctx); err != nil {
					break
				}
				acked = wp
			}
		}
		c := m.Crash(rng)
		z := zoneOf(t, c, 0)
		if z.WP < acked || z.WP > wp {
			t.Fatalf("seed %d: WP %d after the crash, acknowledged %d, written %d", seed, z.WP, acked, wp)
		}
		got := AlignedBlock(int(acked))
		if _, err := c.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		for b := int64(0); b < acked; b += 4096 {
			if !bytes.Equal(got[b:b+4096], fill(4096, byte(b/4096))) {
				t.Fatalf("seed %d: acknowledged block at %d lost", seed, b)
			}
		}
	}
}

func TestFaultyPartialWrites(t *testing.T) {
	m := newMem(t, MemOptions{Kind: KindZoned, ZoneSize: 1 << 20, NumZones: 1})
	f := newFaulty(t, m, 5, Rule{Ops: OpWrite, Partial: true})
	var wp int64
	sawSome := false
	for range 20 {
		n, err := f.WriteAt(fill(32768, 1), wp)
		if !errors.Is(err, ErrInjected) {
			t.Fatalf("partial write: %v", err)
		}
		if n < 0 || n >= 32768 || n%4096 != 0 {
			t.Fatalf("partial write wrote %d bytes", n)
		}
		sawSome = sawSome || n > 0
		wp += int64(n)
		if z := zoneOf(t, m, 0); z.WP != wp {
			t.Fatalf("device WP %d, want %d after a partial write of %d", z.WP, wp, n)
		}
	}
	if !sawSome {
		t.Fatal("20 partial writes never wrote anything")
	}
	if _, err := NewFaulty(m, 1, Rule{Ops: OpRead, Partial: true}); err == nil {
		t.Fatal("Partial on reads accepted")
	}
}
