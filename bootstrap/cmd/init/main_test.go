package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRefusesWhenNotPID1: run as a command, the init must not mount,
// reboot or power anything off: it says what it is and exits 2.
func TestRefusesWhenNotPID1(t *testing.T) {
	if os.Getenv("STOWAGE_INIT_CHILD") == "1" {
		main()
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRefusesWhenNotPID1$")
	cmd.Env = append(os.Environ(), "STOWAGE_INIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want status 2\n%s", err, out)
	}
	if !strings.Contains(string(out), "not PID 1") {
		t.Fatalf("output %q does not say why", out)
	}
}
