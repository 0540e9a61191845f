package nodeinit

import (
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

// Track marks a pid as waited for by its owner.
func (r *Reaper) Track(pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tracked == nil {
		r.tracked = map[int]bool{}
	}
	r.tracked[pid] = true
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
		var info unix.Siginfo
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n
		}
		// siginfo_t for SIGCHLD: si_signo, si_errno, si_code, padding,
		// then si_pid (int32) at byte 16 on 64-bit Linux.
		pid := int(*(*int32)(unsafe.Add(unsafe.Pointer(&info), 16)))
		if pid == 0 {
			return n
		}
		r.mu.Lock()
		own := r.tracked[pid]
		r.mu.Unlock()
		if own {
			return n // its owner's Wait reaps it; look again on the next SIGCHLD
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil && err != unix.EINTR {
			return n
		}
		n++
	}
}
