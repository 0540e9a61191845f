package burnin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"time"

	"github.com/stowage/stowage/hwmgr/smart"
)

// SelfTester runs a drive's SMART self-test: start it, then poll its
// status. Smartctl implements it with the smartctl binary.
type SelfTester interface {
	StartSelfTest(ctx context.Context, device, deviceType, kind string) (SelfTestStatus, error)
	SelfTestStatus(ctx context.Context, device, deviceType string) (SelfTestStatus, error)
}

// SelfTestStatus is what one smartctl run says of the drive's self-test.
type SelfTestStatus struct {
	// Asleep: the drive was in standby and smartctl (-n standby) left it
	// alone; burn-in does not wake it for a self-test.
	Asleep bool
	// Unsupported: the device reports no self-test status (virtio, most
	// USB bridges, SCSI without the self-test log).
	Unsupported bool
	// Running, with RemainingPct of the test left.
	Running      bool
	RemainingPct int
	// Latest is the newest finished entry of the self-test log, if any.
	Latest *smart.SelfTest
}

// Smartctl runs self-tests with smartctl (--json, -n standby so that a
// sleeping drive is never woken).
type Smartctl struct {
	// Path to smartctl; "" means "smartctl" in PATH.
	Path string
	// Timeout bounds one run (default 1 minute).
	Timeout time.Duration
	// Exec runs smartctl with args and returns its standard output; nil
	// runs the binary. A non-zero exit status is not an error here:
	// smartctl sets status bits for many findings and the JSON says more.
	Exec func(ctx context.Context, path string, args []string) ([]byte, error)
}

func (s Smartctl) run(ctx context.Context, args []string) ([]byte, error) {
	path := s.Path
	if path == "" {
		path = "smartctl"
	}
	to := s.Timeout
	if to <= 0 {
		to = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	if s.Exec != nil {
		return s.Exec(ctx, path, args)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && out.Len() > 0 {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("burnin: %s %v: %w", path, args, err)
	}
	return out.Bytes(), nil
}

func deviceArgs(device, deviceType string, args ...string) []string {
	out := append([]string{"--json=c", "-n", "standby"}, args...)
	if deviceType != "" {
		out = append(out, "-d", deviceType)
	}
	return append(out, device)
}

// StartSelfTest implements SelfTester: smartctl -t short|long, then the
// status smartctl reports.
func (s Smartctl) StartSelfTest(ctx context.Context, device, deviceType, kind string) (SelfTestStatus, error) {
	if kind != "short" && kind != "long" {
		return SelfTestStatus{}, fmt.Errorf("burnin: self-test kind %q: short or long", kind)
	}
	out, err := s.run(ctx, deviceArgs(device, deviceType, "-t", kind))
	if err != nil {
		return SelfTestStatus{}, err
	}
	st, err := ParseSelfTestStatus(out)
	if err != nil || st.Asleep {
		return st, err
	}
	return s.SelfTestStatus(ctx, device, deviceType)
}

// SelfTestStatus implements SelfTester: smartctl -c -l selftest.
func (s Smartctl) SelfTestStatus(ctx context.Context, device, deviceType string) (SelfTestStatus, error) {
	out, err := s.run(ctx, deviceArgs(device, deviceType, "-c", "-l", "selftest"))
	if err != nil {
		return SelfTestStatus{}, err
	}
	return ParseSelfTestStatus(out)
}

// rawSelfTest is the part of smartctl's JSON that says whether a self-test
// runs: ata_smart_data.self_test.status (value 0xF_ while running, the low
// nibble the tenths left) and nvme_self_test_log.current_self_test_operation.
type rawSelfTest struct {
	ATA *struct {
		SelfTest *struct {
			Status *struct {
				Value            int  `json:"value"`
				RemainingPercent *int `json:"remaining_percent"`
			} `json:"status"`
		} `json:"self_test"`
	} `json:"ata_smart_data"`
	NVMe *struct {
		Current *struct {
			Value int `json:"value"`
		} `json:"current_self_test_operation"`
		CompletionPercent *int `json:"current_self_test_completion_percent"`
	} `json:"nvme_self_test_log"`
}

// ParseSelfTestStatus reads a smartctl --json output (of -t, -c or -l
// selftest): whether a self-test runs and how much is left, the newest
// finished log entry, and whether the drive was asleep.
func ParseSelfTestStatus(out []byte) (SelfTestStatus, error) {
	var st SelfTestStatus
	rec, err := smart.Parse(out)
	if err != nil {
		return st, fmt.Errorf("burnin: self-test status: %w", err)
	}
	if rec.Status == smart.StatusAsleep {
		st.Asleep = true
		return st, nil
	}
	var raw rawSelfTest
	if err := json.Unmarshal(out, &raw); err != nil {
		return st, fmt.Errorf("burnin: self-test status: %w", err)
	}
	known := false
	if a := raw.ATA; a != nil && a.SelfTest != nil && a.SelfTest.Status != nil {
		known = true
		v := a.SelfTest.Status.Value
		if v>>4 == 0xf {
			st.Running = true
			st.RemainingPct = (v & 0xf) * 10
			if p := a.SelfTest.Status.RemainingPercent; p != nil {
				st.RemainingPct = *p
			}
		}
	}
	if n := raw.NVMe; n != nil && n.Current != nil {
		known = true
		if n.Current.Value != 0 {
			st.Running = true
			st.RemainingPct = 100
			if p := n.CompletionPercent; p != nil {
				st.RemainingPct = 100 - *p
			}
		}
	}
	if l, ok := rec.SelfTests.Latest(); ok {
		known = true
		st.Latest = &l
	}
	st.Unsupported = !known
	return st, nil
}

// RuleSelfTest is the reason of a failed (or not finished) SMART self-test.
const RuleSelfTest = "self-test"

// selfTest runs the drive's SMART self-test of cfg.SelfTestKind before the
// passes: started, polled every SelfTestPoll until it is done or
// SelfTestTimeout passed. A failed self-test or one that does not finish
// in time fails the drive; a sleeping drive is not woken (noted), and a
// device without self-tests is noted.
func (w *worker) selfTest(ctx context.Context) error {
	cfg := w.cfg
	dev := cfg.SMARTDevice
	if dev == "" {
		dev = w.info.Path
	}
	step := "self-test-" + cfg.SelfTestKind
	w.progress(step)
	st, err := cfg.SelfTest.StartSelfTest(ctx, dev, cfg.SMARTType, cfg.SelfTestKind)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("burnin: %s: %s: %w", w.info.Path, step, ctx.Err())
		}
		w.rep.note(RuleSelfTest, "%s: %s not started: %v", dev, step, err)
		return nil
	}
	deadline := cfg.Now().Add(cfg.SelfTestTimeout)
	for {
		switch {
		case st.Asleep:
			w.rep.note(RuleSelfTest, "%s: drive in standby: %s skipped (not woken)", dev, step)
			return nil
		case st.Unsupported:
			w.rep.note(RuleSelfTest, "%s: no self-test status reported: %s skipped", dev, step)
			return nil
		case !st.Running:
			if st.Latest == nil {
				w.rep.note(RuleSelfTest, "%s: %s finished without a log entry", dev, step)
			} else if st.Latest.Failed {
				w.rep.fail(RuleSelfTest, "%s: %s failed: %s (result %d)", dev, step, st.Latest.Result, st.Latest.ResultCode)
			} else {
				w.rep.SelfTest = st.Latest
			}
			return nil
		}
		if !cfg.Now().Before(deadline) {
			w.rep.fail(RuleSelfTest, "%s: %s still running after %v (%d%% left)", dev, step, cfg.SelfTestTimeout, st.RemainingPct)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("burnin: %s: %s: %w", w.info.Path, step, ctx.Err())
		case <-time.After(cfg.SelfTestPoll):
		}
		if st, err = cfg.SelfTest.SelfTestStatus(ctx, dev, cfg.SMARTType); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("burnin: %s: %s: %w", w.info.Path, step, ctx.Err())
			}
			w.rep.fail(RuleSelfTest, "%s: %s status unreadable: %v", dev, step, err)
			return nil
		}
	}
}
