package nodeinit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Supervisor runs a daemon and restarts it whenever it exits, waiting
// with exponential back-off between starts (MinBackoff doubling up to
// MaxBackoff; a run that lasted ResetAfter starts again from MinBackoff).
// Every line the daemon prints goes to Output with a "name: " prefix.
type Supervisor struct {
	// Name prefixes the daemon's output lines (required).
	Name string
	// Path and Args start the daemon (Path required).
	Path string
	Args []string
	// Env is the daemon's environment; nil means the init's.
	Env []string
	// Output gets the daemon's prefixed output; default os.Stdout.
	Output io.Writer
	// MinBackoff, MaxBackoff, ResetAfter: defaults 500ms, 30s, 60s.
	MinBackoff, MaxBackoff, ResetAfter time.Duration
	// StopTimeout is how long a stopping daemon gets after SIGTERM before
	// SIGKILL; default 10s.
	StopTimeout time.Duration
	// Log gets starts and exits; default discards.
	Log *slog.Logger
	// Start starts the child; default (*exec.Cmd).Start. The init passes
	// its Reaper's Start so the reaper leaves the child to our Wait, and
	// Untrack when it has been waited for.
	Start   func(*exec.Cmd) error
	Untrack func(pid int)

	starts atomic.Int64
}

// Starts reports how many times the daemon was started.
func (s *Supervisor) Starts() int64 { return s.starts.Load() }

// Backoff returns the wait before start number n+1 after a run that
// lasted ran, given the previous wait prev.
func (s *Supervisor) Backoff(prev, ran time.Duration) time.Duration {
	minB, maxB, reset := s.limits()
	if ran >= reset || prev == 0 {
		return minB
	}
	return min(prev*2, maxB)
}

func (s *Supervisor) limits() (minB, maxB, reset time.Duration) {
	minB, maxB, reset = s.MinBackoff, s.MaxBackoff, s.ResetAfter
	if minB <= 0 {
		minB = 500 * time.Millisecond
	}
	if maxB <= 0 {
		maxB = 30 * time.Second
	}
	if maxB < minB {
		maxB = minB
	}
	if reset <= 0 {
		reset = time.Minute
	}
	return
}

// Run supervises until ctx ends, then stops the daemon (SIGTERM, then
// SIGKILL after StopTimeout) and returns once it has exited.
func (s *Supervisor) Run(ctx context.Context) {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	out := s.Output
	if out == nil {
		out = os.Stdout
	}
	stopTimeout := s.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = 10 * time.Second
	}
	var wait time.Duration
	for ctx.Err() == nil {
		pw := &prefixWriter{w: out, prefix: []byte(s.Name + ": ")}
		cmd := exec.Command(s.Path, s.Args...)
		cmd.Env = s.Env
		cmd.Stdout, cmd.Stderr = pw, pw
		cmd.WaitDelay = time.Second // a grandchild holding the pipe must not hang Wait
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		start := time.Now()
		s.starts.Add(1)
		startCmd := s.Start
		if startCmd == nil {
			startCmd = (*exec.Cmd).Start
		}
		err := startCmd(cmd)
		var ran time.Duration
		if err != nil {
			log.Error("daemon did not start", "daemon", s.Name, "err", err)
		} else {
			pid := cmd.Process.Pid
			log.Info("daemon started", "daemon", s.Name, "pid", pid)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case err = <-done:
				case <-time.After(stopTimeout):
					log.Warn("daemon ignored SIGTERM; killing it", "daemon", s.Name, "after", stopTimeout)
					_ = syscall.Kill(-pid, syscall.SIGKILL)
					err = <-done
				}
			}
			if s.Untrack != nil {
				s.Untrack(pid)
			}
			pw.flush()
			ran = time.Since(start)
			if ctx.Err() != nil {
				log.Info("daemon stopped", "daemon", s.Name, "status", exitStatus(err))
				return
			}
		}
		wait = s.Backoff(wait, ran)
		log.Warn("daemon exited; restarting", "daemon", s.Name, "status", exitStatus(err), "ran", ran.Round(time.Millisecond), "restart_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// prefixWriter writes whole lines to w, each with the prefix; a partial
// last line waits for its newline (or flush).
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, p.prefix...), p.buf[:i+1]...)
		p.buf = p.buf[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return len(b), nil // the console failing must not kill the daemon
		}
	}
	if len(p.buf) > 4096 { // a very long line: emit it in pieces
		_, _ = p.w.Write(append(append(append([]byte{}, p.prefix...), p.buf...), '\n'))
		p.buf = p.buf[:0]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		_, _ = p.w.Write(append(append(append([]byte{}, p.prefix...), p.buf...), '\n'))
		p.buf = p.buf[:0]
	}
}
