package target

import (
	"context"
	"errors"
	"testing"
)

func TestLimiterBoundsPerKey(t *testing.T) {
	l := &Limiter{PerKey: 2}
	ctx := context.Background()
	r1, err := l.Acquire(ctx, "hba0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "hba0"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "hba1"); err != nil {
		t.Fatalf("another controller must not wait: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Acquire(cctx, "hba0"); !errors.Is(err, context.Canceled) {
		t.Fatalf("third job on hba0: %v; want it to wait (and give up on cancel)", err)
	}
	r1()
	if _, err := l.Acquire(ctx, "hba0"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestSkipListMatch(t *testing.T) {
	s := SkipList{Serials: []string{"  ABC "}, WWNs: []string{"NAA.1"}, Paths: []string{"/dev/disk/by-path/x"}}
	for _, c := range []struct {
		d    Drive
		want bool
	}{
		{Drive{Serial: "ABC"}, true},
		{Drive{WWN: "naa.1"}, true},
		{Drive{Path: "/dev/sdz", Aliases: []string{"/dev/disk/by-path/x"}}, true},
		{Drive{Serial: "ABD", WWN: "naa.2", Path: "/dev/sdz"}, false},
		{Drive{}, false},
	} {
		if got := s.Match(c.d) != ""; got != c.want {
			t.Errorf("%+v: match %v, want %v", c.d, got, c.want)
		}
	}
}
