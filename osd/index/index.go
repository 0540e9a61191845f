// Package index is the OSD engine's in-memory index: a compact map from a
// block's key to where its record starts on the drive, at about 9 bytes
// per block.
//
// Like Haystack's and Magic Pocket's indexes it keeps only a short key
// fingerprint (28 bits) and the record's location (a 36-bit device block
// number, 4 KiB units: drives up to 256 TiB), packed in one uint64 slot of
// an open-addressing table. Several keys can share a fingerprint: Lookup
// returns every candidate location and the caller confirms the full key
// against the on-disk record header. Insert and Remove therefore take the
// exact (fingerprint, location) pair.
//
// The table is an ordered linear-probing table (Amble and Knuth): a slot's
// home is a monotone function of its fingerprint, so the non-empty slots
// read left to right are sorted. That lets an unsuccessful lookup stop
// early, lets growth rehash in one pass, and keeps the load factor between
// 0.80 and 0.92 (8.7–10 bytes per entry) without tombstones.
package index

import (
	"encoding/binary"
	"fmt"
)

// Bit widths of a slot.
const (
	FingerprintBits = 28
	LocationBits    = 36
	// MaxLocation is the largest storable location.
	MaxLocation = 1<<LocationBits - 1
)

const (
	maxLoad   = 0.92
	growth    = 1.15
	tailSlack = 64 // slots past cap, so that probing never wraps; the last stays empty
	minCap    = 64
)

// Fingerprint returns the 28-bit fingerprint of a (key, fragment) pair.
// Keys are SHA-256 digests, but the fingerprint mixes all of the first 16
// bytes and the fragment through a finalizer so that skewed keys still
// spread.
func Fingerprint(key *[32]byte, frag uint16) uint32 {
	x := binary.LittleEndian.Uint64(key[0:]) ^ binary.LittleEndian.Uint64(key[8:])*0x9e3779b97f4a7c15 ^ uint64(frag)<<48
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return uint32(x >> (64 - FingerprintBits))
}

// Table maps fingerprints to locations. The zero value is not usable; use
// New. A Table is not safe for concurrent use.
type Table struct {
	slots []uint64 // len = cap + tailSlack; 0 = empty
	cap   uint64
	n     int
}

// New returns a table sized for about hint entries.
func New(hint int) *Table {
	t := &Table{}
	t.resize(capFor(hint))
	return t
}

func capFor(n int) uint64 {
	c := uint64(float64(n) / 0.85)
	if c < minCap {
		c = minCap
	}
	return c
}

func pack(fp uint32, loc uint64) uint64 { return uint64(fp)<<LocationBits | loc }

func (t *Table) home(v uint64) uint64 {
	return (v >> LocationBits) * t.cap >> FingerprintBits
}

// Len returns the number of entries.
func (t *Table) Len() int { return t.n }

// Bytes returns the memory the table's slots take.
func (t *Table) Bytes() int { return 8 * cap(t.slots) }

func check(fp uint32, loc uint64) error {
	if fp >= 1<<FingerprintBits {
		return fmt.Errorf("index: fingerprint %#x wider than %d bits", fp, FingerprintBits)
	}
	if loc == 0 || loc > MaxLocation {
		return fmt.Errorf("index: location %d outside 1..%d", loc, uint64(MaxLocation))
	}
	return nil
}

// Insert adds (fp, loc). Adding a pair that is present is a no-op. It
// fails only for a fingerprint or location that does not fit.
func (t *Table) Insert(fp uint32, loc uint64) error {
	if err := check(fp, loc); err != nil {
		return err
	}
	if float64(t.n+1) > maxLoad*float64(t.cap) {
		t.resize(uint64(float64(t.cap)*growth) + 1)
	}
	v := pack(fp, loc)
	for {
		i := t.home(v)
		for t.slots[i] != 0 && t.slots[i] < v {
			i++
		}
		if t.slots[i] == v {
			return nil
		}
		j := i
		last := uint64(len(t.slots)) - 1 // always empty: the probe sentinel
		for j < last && t.slots[j] != 0 {
			j++
		}
		if j == last { // ran into the sentinel: grow and retry
			t.resize(uint64(float64(t.cap)*growth) + 1)
			continue
		}
		copy(t.slots[i+1:j+1], t.slots[i:j])
		t.slots[i] = v
		t.n++
		return nil
	}
}

// Remove deletes (fp, loc) and reports whether it was present.
func (t *Table) Remove(fp uint32, loc uint64) bool {
	if check(fp, loc) != nil {
		return false
	}
	v := pack(fp, loc)
	i := t.home(v)
	for t.slots[i] != 0 && t.slots[i] < v {
		i++
	}
	if t.slots[i] != v {
		return false
	}
	// Backward shift: pull later entries of the cluster one slot towards
	// their homes.
	k := i
	for k+1 < uint64(len(t.slots)) && t.slots[k+1] != 0 && t.home(t.slots[k+1]) <= k {
		t.slots[k] = t.slots[k+1]
		k++
	}
	t.slots[k] = 0
	t.n--
	return true
}

// Contains reports whether (fp, loc) is present.
func (t *Table) Contains(fp uint32, loc uint64) bool {
	if check(fp, loc) != nil {
		return false
	}
	v := pack(fp, loc)
	i := t.home(v)
	for t.slots[i] != 0 && t.slots[i] < v {
		i++
	}
	return t.slots[i] == v
}

// Lookup appends to dst every location stored under fp, in increasing
// order, and returns it.
func (t *Table) Lookup(fp uint32, dst []uint64) []uint64 {
	if fp >= 1<<FingerprintBits {
		return dst
	}
	lo := pack(fp, 0)
	i := t.home(lo)
	for t.slots[i] != 0 && t.slots[i] < lo {
		i++
	}
	for ; t.slots[i] != 0 && uint32(t.slots[i]>>LocationBits) == fp; i++ {
		dst = append(dst, t.slots[i]&MaxLocation)
	}
	return dst
}

// Range calls fn for every entry in fingerprint order until fn returns
// false. fn must not modify the table.
func (t *Table) Range(fn func(fp uint32, loc uint64) bool) {
	for _, v := range t.slots {
		if v != 0 && !fn(uint32(v>>LocationBits), v&MaxLocation) {
			return
		}
	}
}

// resize rehashes into a table of capacity c in one ordered pass.
func (t *Table) resize(c uint64) {
	if c < minCap {
		c = minCap
	}
	for {
		nt := Table{slots: make([]uint64, c+tailSlack), cap: c, n: t.n}
		next := uint64(0)
		ok := true
		for _, v := range t.slots {
			if v == 0 {
				continue
			}
			p := max(nt.home(v), next)
			if p >= uint64(len(nt.slots))-1 {
				ok = false
				break
			}
			nt.slots[p] = v
			next = p + 1
		}
		if ok {
			*t = nt
			return
		}
		c = uint64(float64(c)*growth) + 1
	}
}

// Pack returns the slot value of (fp, loc), for Build.
func Pack(fp uint32, loc uint64) (uint64, error) {
	if err := check(fp, loc); err != nil {
		return 0, err
	}
	return pack(fp, loc), nil
}

// Build returns a table holding the packed pairs (see Pack), sorting
// pairs in place. It is the fast path for recovery: one radix sort and one
// ordered placement instead of n inserts. Duplicate pairs are kept once.
func Build(pairs []uint64) *Table {
	radixSort(pairs)
	n := 0
	for i, v := range pairs {
		if v != 0 && (i == 0 || v != pairs[i-1]) {
			pairs[n] = v
			n++
		}
	}
	pairs = pairs[:n]
	t := &Table{}
	c := capFor(n)
	for {
		t.slots = make([]uint64, c+tailSlack)
		t.cap = c
		next := uint64(0)
		ok := true
		for _, v := range pairs {
			p := max(t.home(v), next)
			if p >= uint64(len(t.slots))-1 {
				ok = false
				break
			}
			t.slots[p] = v
			next = p + 1
		}
		if ok {
			t.n = n
			return t
		}
		c = uint64(float64(c)*growth) + 1
	}
}

// radixSort sorts a in place: LSD, 16 bits per pass.
func radixSort(a []uint64) {
	if len(a) < 256 {
		for i := 1; i < len(a); i++ {
			for j := i; j > 0 && a[j] < a[j-1]; j-- {
				a[j], a[j-1] = a[j-1], a[j]
			}
		}
		return
	}
	buf := make([]uint64, len(a))
	src, dst := a, buf
	var count [1 << 16]int
	for shift := uint(0); shift < 64; shift += 16 {
		clear(count[:])
		for _, v := range src {
			count[(v>>shift)&0xffff]++
		}
		sum := 0
		for i, c := range count {
			count[i] = sum
			sum += c
		}
		for _, v := range src {
			d := (v >> shift) & 0xffff
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	// Four passes: the sorted data is back in a.
}
