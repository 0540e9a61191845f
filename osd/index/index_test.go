package index

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

type pair struct {
	fp  uint32
	loc uint64
}

// The table against a model (a set of pairs), with a narrow fingerprint
// space so that collisions and long clusters are the common case.
func TestTableModel(t *testing.T) {
	for _, fpSpace := range []uint32{1, 7, 1000, 1 << FingerprintBits} {
		r := rand.New(rand.NewPCG(uint64(fpSpace), 9))
		tab := New(0)
		model := map[pair]bool{}
		var keys []pair
		ops := 20000
		if fpSpace < 1000 {
			ops = 4000 // one long cluster: quadratic shifting
		}
		for op := 0; op < ops; op++ {
			switch r.IntN(3) {
			case 0, 1:
				p := pair{uint32(r.Uint64N(uint64(fpSpace))), 1 + r.Uint64N(MaxLocation)}
				if err := tab.Insert(p.fp, p.loc); err != nil {
					t.Fatal(err)
				}
				if !model[p] {
					model[p] = true
					keys = append(keys, p)
				}
			case 2:
				if len(keys) == 0 {
					continue
				}
				i := r.IntN(len(keys))
				p := keys[i]
				if r.IntN(4) == 0 {
					p.loc++ // probably absent
				}
				if got, want := tab.Remove(p.fp, p.loc), model[p]; got != want {
					t.Fatalf("fpSpace %d op %d: Remove%v = %v, want %v", fpSpace, op, p, got, want)
				}
				if model[p] {
					delete(model, p)
					keys[i] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
				}
			}
			if tab.Len() != len(model) {
				t.Fatalf("Len = %d, want %d", tab.Len(), len(model))
			}
		}
		// Every fingerprint's candidates are exactly the model's.
		want := map[uint32][]uint64{}
		for p := range model {
			want[p.fp] = append(want[p.fp], p.loc)
		}
		for fp, locs := range want {
			slices.Sort(locs)
			if got := tab.Lookup(fp, nil); !slices.Equal(got, locs) {
				t.Fatalf("Lookup(%d) = %v, want %v", fp, got, locs)
			}
			if !tab.Contains(fp, locs[0]) {
				t.Fatalf("Contains(%d, %d) = false", fp, locs[0])
			}
		}
		if got := tab.Lookup(fpSpace, nil); fpSpace < 1<<FingerprintBits && len(got) != 0 {
			t.Fatalf("absent fingerprint: %v", got)
		}
		n := 0
		var prev uint64
		tab.Range(func(fp uint32, loc uint64) bool {
			v := pack(fp, loc)
			if v <= prev {
				t.Fatalf("Range not in order")
			}
			prev = v
			n++
			return true
		})
		if n != len(model) {
			t.Fatalf("Range saw %d, want %d", n, len(model))
		}
	}
}

func TestTableRejectsBadInput(t *testing.T) {
	tab := New(10)
	if tab.Insert(1<<FingerprintBits, 5) == nil || tab.Insert(1, 0) == nil || tab.Insert(1, MaxLocation+1) == nil {
		t.Fatal("out-of-range pairs must be refused")
	}
	if tab.Remove(1, 0) || tab.Contains(1<<30, 1) || len(tab.Lookup(1<<30, nil)) != 0 {
		t.Fatal("out-of-range queries must find nothing")
	}
}

// A dense fill at the maximum load keeps every pair findable and the
// footprint under 10.5 bytes per entry.
func TestTableFootprint(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	tab := New(0)
	const n = 200000
	for i := 0; i < n; i++ {
		if err := tab.Insert(r.Uint32()>>(32-FingerprintBits), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if per := float64(tab.Bytes()) / n; per > 10.5 {
		t.Fatalf("%.2f bytes per entry, want ≤ 10.5", per)
	}
	r = rand.New(rand.NewPCG(1, 1))
	for i := 0; i < n; i++ {
		if !tab.Contains(r.Uint32()>>(32-FingerprintBits), uint64(i+1)) {
			t.Fatalf("entry %d lost", i)
		}
	}
}

func randomKey(r *rand.Rand) [32]byte {
	var k [32]byte
	for j := 0; j < 32; j += 8 {
		v := r.Uint64()
		for x := 0; x < 8; x++ {
			k[j+x] = byte(v >> (8 * x))
		}
	}
	return k
}

// benchmarkBytesPerBlock measures the heap the index holds per block for n
// random SHA-like keys, built one Insert at a time (the write path) or in
// one Build (the recovery path).
func benchmarkBytesPerBlock(b *testing.B, n int, bulk bool) {
	for b.Loop() {
		r := rand.New(rand.NewPCG(2, uint64(n)))
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var tab *Table
		if bulk {
			pairs := make([]uint64, n)
			for i := range pairs {
				k := randomKey(r)
				pairs[i], _ = Pack(Fingerprint(&k, 0), uint64(i+1))
			}
			tab = Build(pairs)
		} else {
			tab = New(0)
			for i := 0; i < n; i++ {
				k := randomKey(r)
				if err := tab.Insert(Fingerprint(&k, 0), uint64(i+1)); err != nil {
					b.Fatal(err)
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "index-B/block")
		runtime.KeepAlive(tab)
	}
}

func BenchmarkIndexInsert1M(b *testing.B) { benchmarkBytesPerBlock(b, 1_000_000, false) }
func BenchmarkIndexBuild1M(b *testing.B)  { benchmarkBytesPerBlock(b, 1_000_000, true) }
func BenchmarkIndexBuild10M(b *testing.B) { benchmarkBytesPerBlock(b, 10_000_000, true) }

func TestBuildMatchesInserts(t *testing.T) {
	for _, n := range []int{0, 3, 255, 300, 50000} {
		r := rand.New(rand.NewPCG(uint64(n), 3))
		tab := New(0)
		var pairs []uint64
		for i := 0; i < n; i++ {
			fp, loc := uint32(r.IntN(1<<FingerprintBits)), 1+r.Uint64N(MaxLocation)
			if i%10 == 0 {
				fp = 5 // a hot fingerprint
			}
			if err := tab.Insert(fp, loc); err != nil {
				t.Fatal(err)
			}
			v, err := Pack(fp, loc)
			if err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, v)
			if i%7 == 0 {
				pairs = append(pairs, v) // duplicates are kept once
			}
		}
		b := Build(pairs)
		if b.Len() != tab.Len() {
			t.Fatalf("n=%d: Build has %d entries, inserts %d", n, b.Len(), tab.Len())
		}
		var got, want []uint64
		b.Range(func(fp uint32, loc uint64) bool { got = append(got, pack(fp, loc)); return true })
		tab.Range(func(fp uint32, loc uint64) bool { want = append(want, pack(fp, loc)); return true })
		if !slices.Equal(got, want) {
			t.Fatalf("n=%d: Build and Insert disagree", n)
		}
		if n > 0 && len(b.Lookup(5, nil)) != len(tab.Lookup(5, nil)) {
			t.Fatalf("hot fingerprint lookups differ")
		}
		if err := b.Insert(9, 9); err != nil || !b.Contains(9, 9) {
			t.Fatalf("insert after Build: %v", err)
		}
	}
}
