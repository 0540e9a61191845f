package nodeinit

import (
	"os/exec"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Reaper collects the exit status of orphans, which the kernel hands to
// PID 1, without stealing the children a Supervisor waits for: it peeks
// at an exited child with waitid(WNOWAIT) and reaps it only when it is
// not tracked.
type Reaper struct {
	mu      sync.Mutex
	tracked map[int]bool
}

// Start starts cmd and tracks its pid before any Reap can see it exit.
func (r *Reaper) Start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	if r.tracked == nil {
		r.tracked = map[int]bool{}
	}
	r.tracked[cmd.Process.Pid] = true
	return nil
}

// Untrack forgets a pid.
func (r *Reaper) Untrack(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.tracked, pid)
}

// Reap reaps every exited untracked child and returns how many.
func (r *Reaper) Reap() int {
	n := 0
	for {
		reaped, more := r.reapOne()
		n += reaped
		if !more {
			return n
		}
	}
}

// reapOne peeks at one exited child and reaps it unless tracked. The lock
// is held throughout, so Start cannot race a fresh child's exit.
func (r *Reaper) reapOne() (reaped int, more bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	if err == unix.EINTR {
		return 0, true
	}
	if err != nil {
		return 0, false
	}
	// siginfo_t for SIGCHLD: si_signo, si_errno, si_code, padding, then
	// si_pid (int32) at byte 16 on 64-bit Linux.
	pid := int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), 16)))
	if pid == 0 || r.tracked[pid] {
		return 0, false // nothing, or its owner's Wait reaps it: look again on the next SIGCHLD
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil && err != unix.EINTR {
		return 0, false
	}
	return 1, true
}
