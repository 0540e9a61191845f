package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
)

func newServer(t *testing.T, tokens server.Tokens) *httptest.Server {
	t.Helper()
	var devs []zone.Device
	for i := range 6 {
		m, err := zone.NewMem(zone.MemOptions{ZoneSize: 4 << 20, NumZones: 24, Path: fmt.Sprintf("mem%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, m)
	}
	v, err := volume.Create(context.Background(), devs, volume.Options{ZonesPerExtent: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	srv := httptest.NewServer(server.New(server.Config{Store: v, Tokens: tokens,
		Status: func() server.Status { return server.Status{Code: "4+2", Blocks: 3} }}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClient(t *testing.T) {
	srv := newServer(t, server.Tokens{})
	c, err := New(srv.URL+"/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("stowage "), 10000)
	k, created, err := c.Put(ctx, data)
	if err != nil || !created || k != sha256.Sum256(data) {
		t.Fatalf("Put: %v %v", created, err)
	}
	if _, created, err := c.Put(ctx, data); err != nil || created {
		t.Fatalf("second Put: created=%v %v", created, err)
	}
	if got, err := c.Get(ctx, k); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v", err)
	}
	for _, r := range []struct{ off, n int64 }{{0, 1}, {8, 8}, {79990, -1}, {79990, 100}} {
		got, err := c.GetRange(ctx, k, r.off, r.n)
		end := int64(len(data))
		if r.n > 0 {
			end = min(end, r.off+r.n)
		}
		if err != nil || !bytes.Equal(got, data[r.off:end]) {
			t.Fatalf("GetRange(%d, %d): %q %v", r.off, r.n, got, err)
		}
	}
	if _, err := c.GetRange(ctx, k, 1<<30, 5); !errors.Is(err, ErrRange) {
		t.Fatalf("GetRange past the end: %v", err)
	}
	if n, err := c.Head(ctx, k); err != nil || n != int64(len(data)) {
		t.Fatalf("Head: %d %v", n, err)
	}
	if _, err := c.PutKey(ctx, k, []byte("other")); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("PutKey with a wrong key: %v", err)
	}
	if _, _, err := c.Put(ctx, make([]byte, server.MaxBlock+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put over 4 MiB: %v", err)
	}
	var e *Error
	if _, _, err := c.Put(ctx, nil); !errors.As(err, &e) || e.Status != 400 || e.Problem.Type != server.ProblemBase+server.ProbEmpty {
		t.Fatalf("empty Put: %v", err)
	}
	for i := range 5 {
		if _, _, err := c.Put(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var listed []Key
	var after Key
	for {
		page, next, err := c.List(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, page...)
		if next == nil {
			break
		}
		after = *next
	}
	if len(listed) != 6 {
		t.Fatalf("listed %d keys, want 6", len(listed))
	}
	if st, err := c.Status(ctx); err != nil || st.Code != "4+2" || st.Blocks != 3 {
		t.Fatalf("Status: %+v %v", st, err)
	}
	if err := c.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := c.Head(ctx, k); err == nil {
		t.Fatal("Head after Delete: no error")
	}
	if err := c.Delete(ctx, k); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := c.Admin(ctx, "scrub", ""); !errors.As(err, &e) || e.Status != 403 {
		t.Fatalf("Admin without an admin token configured: %v", err)
	}
	if _, err := New("ftp://x", Options{}); err == nil {
		t.Fatal("New accepted ftp://")
	}
}

func TestClientToken(t *testing.T) {
	srv := newServer(t, server.NewTokens(nil, []string{"admin-secret-1"}))
	ctx := context.Background()
	anon, _ := New(srv.URL, Options{})
	if _, _, err := anon.Put(ctx, []byte("x")); err == nil {
		t.Fatal("Put without a token succeeded")
	}
	adm, _ := New(srv.URL, Options{Token: "admin-secret-1"})
	k, _, err := adm.Put(ctx, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Get(ctx, k); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := adm.Admin(ctx, "drain", "/dev/x"); !errors.As(err, &e) || e.Status != 501 {
		t.Fatalf("Admin on a server without admin actions: %v", err)
	}
}
