//go:build vmtest

package qemu_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stowage/stowage/qemu"
)

// selfTestEnv selects, in a child run of this test binary, one of the
// deliberately failing tests below; they do nothing in a normal run.
const selfTestEnv = "STOWAGE_QEMU_SELFTEST"

// TestVMFailuresPropagate runs deliberately failing VM tests in a child
// process of this test binary and checks each fails the host test with a
// message that says why: a failing guest body (with the kernel log tail),
// and a failing host side
// (which must also stop the guest at once, not at the guest's timeout).
func TestVMFailuresPropagate(t *testing.T) {
	if qemu.IsGuest() {
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		test string
		want []string
	}{
		{"TestVMDeliberateGuestFailure", []string{"deliberate guest failure", "guest test failed (exit status 1)", "dmesg: ["}},
		{"TestVMDeliberateHostFailure", []string{"host side: deliberate host failure", "the host side failed, so the guest was stopped"}},
	} {
		t.Run(c.test, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, self, "-test.run", "^"+c.test+"$", "-test.v", "-test.timeout", "29m")
			cmd.Env = append(os.Environ(), selfTestEnv+"=1")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("child %s: want a failing exit, got %v\n%s", c.test, err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("child %s output lacks %q:\n%s", c.test, w, out)
				}
			}
			t.Logf("child %s failed as it should in %v", c.test, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestVMDeliberateGuestFailure(t *testing.T) {
	if os.Getenv(selfTestEnv) != "1" {
		return // only run as a child of TestVMFailuresPropagate
	}
	qemu.RunTest(t, qemu.Options{Env: []string{selfTestEnv + "=1"}}, func(t *testing.T, g *qemu.Guest) {
		t.Fatal("deliberate guest failure")
	})
}

func TestVMDeliberateHostFailure(t *testing.T) {
	if os.Getenv(selfTestEnv) != "1" {
		return // only run as a child of TestVMFailuresPropagate
	}
	qemu.RunTest(t, qemu.Options{
		Env:     []string{selfTestEnv + "=1"},
		Timeout: 20 * time.Minute,
		Host: func(ctx context.Context, vm *qemu.VM) error {
			if err := vm.WaitMark(ctx, "waiting"); err != nil {
				return err
			}
			return errors.New("deliberate host failure")
		},
	}, func(t *testing.T, g *qemu.Guest) {
		g.Mark("waiting")
		// Without the fast stop this would hold the guest for 15 minutes.
		if err := g.WaitHost("never-sent", 15*time.Minute); err != nil {
			t.Fatal(err)
		}
	})
}
