package nodeinit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFetchConfig(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/good", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("# node 7\nstowage.hostname=node7\nstowage.token=fromurl\nstowage.config_url=http://elsewhere/x\n"))
	})
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("stowage.hostname=node8 stowage.net=carrier-pigeon"))
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", maxConfigBytes+1)))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	base, err := ParseCmdline("stowage.net=none stowage.config_url=" + srv.URL + "/good")
	if err != nil {
		t.Fatal(err)
	}
	got, err := FetchConfig(context.Background(), base, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hostname != "node7" || !slices.Equal(got.AdminTokens, []string{"fromurl"}) || got.Net != "none" || got.ConfigURL != base.ConfigURL {
		t.Fatalf("fetched config %+v: want the document over the command line, the URL unchanged", got)
	}

	base.ConfigURL = srv.URL + "/bad"
	got, err = FetchConfig(context.Background(), base, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "carrier-pigeon") || got.Hostname != "node8" || got.Net != "none" {
		t.Fatalf("bad key in the document: %+v, %v; want it reported, the good key applied, the bad one kept", got, err)
	}
	for _, path := range []string{"/huge", "/missing"} {
		base.ConfigURL = srv.URL + path
		got, err = FetchConfig(context.Background(), base, 5*time.Second)
		if err == nil || !reflectEqualConfig(got, base) {
			t.Fatalf("%s: %+v, %v; want an error and the config unchanged", path, got, err)
		}
	}
	if _, err := ParseCmdline("stowage.config_url=ftp://x/y"); err == nil {
		t.Fatal("an ftp config URL: want an error")
	}
}

func reflectEqualConfig(a, b Config) bool {
	return a.Cmdline() == b.Cmdline()
}
