package smart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds one smartctl run when the Runner sets none. A
// healthy drive answers in well under a second; a dying one can hang a
// command for the whole SCSI timeout (30 s) more than once.
const DefaultTimeout = 2 * time.Minute

// Runner executes smartctl for one device. The zero value runs "smartctl"
// from PATH with `--json=c -x -n standby` and DefaultTimeout.
type Runner struct {
	// Path to smartctl; "" means "smartctl" looked up in PATH.
	Path string
	// Basic asks for -a (health, attributes, logs) instead of -x (all).
	Basic bool
	// StandbyExit, when non-zero, is passed as `-n standby,N`: smartctl
	// exits with N for a drive in standby. 0 keeps smartctl's default (2).
	StandbyExit uint8
	// Timeout bounds one run; 0 means DefaultTimeout. The context given to
	// Run bounds it too.
	Timeout time.Duration
}

// Output is one smartctl run: the bytes it printed, its exit status and
// the parsed record.
type Output struct {
	Args       []string
	Raw        []byte
	ExitStatus ExitStatus
	Record     *Record
}

// Args is the smartctl command line for device (without the program),
// with deviceType passed as -d when not empty.
func (r Runner) Args(device, deviceType string) []string {
	args := []string{"--json=c"}
	if r.Basic {
		args = append(args, "-a")
	} else {
		args = append(args, "-x")
	}
	if r.StandbyExit != 0 {
		args = append(args, "-n", "standby,"+strconv.Itoa(int(r.StandbyExit)))
	} else {
		args = append(args, "-n", "standby")
	}
	if deviceType != "" {
		args = append(args, "-d", deviceType)
	}
	return append(args, device)
}

// Run executes smartctl for device (a /dev path; deviceType as for -d, ""
// to let smartctl choose). A non-zero exit status is not an error: it is
// decoded into Output.ExitStatus and the Record says what it means. Run
// fails only when smartctl could not be run, was killed (timeout), or did
// not print smartctl JSON; then Output still carries what was read.
func (r Runner) Run(ctx context.Context, device, deviceType string) (*Output, error) {
	path := r.Path
	if path == "" {
		path = "smartctl"
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	out := &Output{Args: r.Args(device, deviceType)}
	cmd := exec.CommandContext(ctx, path, out.Args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	out.Raw = stdout.Bytes()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return out, fmt.Errorf("smart: %s %s: %w", path, device, ctxErr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		out.ExitStatus = ExitStatus(ee.ExitCode() & 0xff)
	default:
		return out, fmt.Errorf("smart: run %s %s: %w", path, device, err)
	}
	rec, perr := Parse(out.Raw)
	if perr != nil {
		return out, fmt.Errorf("smart: %s %s (exit %d, stderr %q): %w", path, device, out.ExitStatus,
			strings.TrimSpace(stderr.String()), perr)
	}
	out.Record = rec
	return out, nil
}
