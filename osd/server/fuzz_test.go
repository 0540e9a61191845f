package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
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

// FuzzRequest sends arbitrary method, path, query, Range and body through
// the whole handler over a volume: never a panic or a 5xx, and every error
// is a problem.
func FuzzRequest(f *testing.F) {
	key := FormatKey(sha256.Sum256([]byte("a")))
	f.Add("GET", "/v1/blocks/"+key, "bytes=0-0", []byte(nil))
	f.Add("PUT", "/v1/blocks/"+key, "", []byte("a"))
	f.Add("PUT", "/v1/blocks/"+key, "", []byte("b"))
	f.Add("GET", "/v1/blocks?after=&limit=3", "", []byte(nil))
	f.Add("DELETE", "/v1/blocks/"+key, "", []byte(nil))
	f.Add("POST", "/v1/drives/drain", "", []byte(`{"path":"/dev/x"}`))
	f.Add("HEAD", "/v1/blocks/"+strings.ToUpper(key), "bytes=-1", []byte(nil))
	v := memVolume(f)
	api := New(Config{Store: v, Logger: quiet()})
	f.Fuzz(func(t *testing.T, method, target, rng string, body []byte) {
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(target, "/") {
			return
		}
		switch method {
		case "GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS":
		default:
			return
		}
		req := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Host: "x"}
		req = req.WithContext(context.Background())
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		w := httptest.NewRecorder()
		api.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s (Range %q): %d %s", method, target, rng, w.Code, w.Body.Bytes())
		}
		if w.Code >= 400 && method != "HEAD" && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s %s: %d with Content-Type %q", method, target, w.Code, w.Header().Get("Content-Type"))
		}
	})
}
