package server

import (
	"net/url"
	"strings"
	"testing"
)

func FuzzParseKey(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.Repeat("G", 64))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			return
		}
		if !strings.EqualFold(FormatKey(k), s) {
			t.Fatalf("%q parsed to %s", s, FormatKey(k))
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-0", "bytes=-5", "bytes=5-", "bytes=1-2, 4-5", "bytes=99999999999999999999-", "items=1-2", "bytes=", "bytes=,,", "bytes=5-1"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		rs, err := ParseRange(h, size)
		if err != nil {
			if rs != nil {
				t.Fatal("ranges with an error")
			}
			return
		}
		if len(rs) > MaxRanges {
			t.Fatalf("%d ranges", len(rs))
		}
		for _, r := range rs {
			if r.Start < 0 || r.End < r.Start || r.End >= size || r.Len() <= 0 {
				t.Fatalf("%q size %d: bad range %+v", h, size, r)
			}
		}
	})
}

func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "limit=5", "after=" + strings.Repeat("0", 64) + "&limit=10000", "limit=0", "foo=bar", "after=&limit=1", "limit=1&limit=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := ParseListQuery(q)
		if err != nil {
			return
		}
		if lq.Limit < 1 || lq.Limit > MaxListLimit {
			t.Fatalf("%q: limit %d", raw, lq.Limit)
		}
	})
}
