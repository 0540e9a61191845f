package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBadArguments: usage errors exit 2 with a message, before QEMU or a
// drive image is touched; a missing image exits 1 naming make image.
func TestBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"extra"}, 2, "unexpected arguments"},
		{[]string{"-memory", "4096"}, 2, "want 128-1024 MiB"},
		{[]string{"-drive-size", "1000"}, 2, "multiple of 64 MiB"},
		{[]string{"-nope"}, 2, "flag provided but not defined"},
		{[]string{"-image", t.TempDir(), "-drives", t.TempDir(), "-hwmgr-port", "0", "-osd-port", "0"}, 1, "make image"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, strings.NewReader(""), &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}

// TestStopContext: after the first Ctrl-C, a second signal ends the
// power-down's context with a cause naming it, and so does the stop
// timeout; a power-down that finishes cancels it without either.
func TestStopContext(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	ctx, cancel := stopContext(sigs, time.Hour)
	sigs <- os.Interrupt
	<-ctx.Done()
	if c := context.Cause(ctx); c == nil || !strings.Contains(c.Error(), "interrupt again") {
		t.Errorf("second Ctrl-C: cause %v", c)
	}
	cancel(nil)

	ctx, cancel = stopContext(make(chan os.Signal), time.Millisecond)
	<-ctx.Done()
	if c := context.Cause(ctx); c == nil || !strings.Contains(c.Error(), "did not power off within 1ms") {
		t.Errorf("stop timeout: cause %v", c)
	}
	cancel(nil)

	sigs = make(chan os.Signal, 1)
	ctx, cancel = stopContext(sigs, time.Hour)
	cancel(nil)
	<-ctx.Done()
	if c := context.Cause(ctx); !errors.Is(c, context.Canceled) {
		t.Errorf("finished power-down: cause %v, want context.Canceled", c)
	}
	sigs <- syscall.SIGTERM // nobody listens any more; must not block or panic
}
