package kmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// DefaultPath is where the kernel log device lives; tests and the daemon
// pass their own root.
const DefaultPath = "/dev/kmsg"

// maxRecord is larger than any record the kernel returns (it fails a read
// into a buffer that is too small with EINVAL).
const maxRecord = 8192

// Reader reads records from a /dev/kmsg device, one per read.
type Reader struct {
	f    *os.File
	path string
	buf  []byte
	// Lost counts times the kernel overwrote records before they were read
	// (read returned EPIPE); reading continues with the oldest record left.
	Lost int
	// Malformed counts records that did not parse; they are skipped.
	Malformed int
	// LastMalformed is the parse error of the latest skipped record.
	LastMalformed error
}

// parse decodes one read, counting and skipping a malformed record.
func (r *Reader) parse(b []byte) (Record, bool) {
	rec, err := Parse(b)
	if err != nil {
		r.Malformed++
		r.LastMalformed = fmt.Errorf("kmsg: %s: %w", r.path, err)
		return Record{}, false
	}
	return rec, true
}

// Open opens the kernel log at path (DefaultPath when empty). With
// fromEnd, reading starts after the newest record; otherwise at the oldest
// one still in the kernel's ring buffer.
func Open(path string, fromEnd bool) (*Reader, error) {
	if path == "" {
		path = DefaultPath
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("kmsg: %w", err)
	}
	if fromEnd {
		if _, err := f.Seek(0, io.SeekEnd); err != nil {
			f.Close()
			return nil, fmt.Errorf("kmsg: seek to end of %s: %w", path, err)
		}
	}
	return newReader(f, path), nil
}

// newReader reads records from f, one per read.
func newReader(f *os.File, path string) *Reader {
	return &Reader{f: f, path: path, buf: make([]byte, maxRecord)}
}

// Close closes the device.
func (r *Reader) Close() error { return r.f.Close() }

// Next returns the next record, waiting for one until ctx is done.
// Malformed records are skipped (see Malformed).
func (r *Reader) Next(ctx context.Context) (Record, error) {
	stop := context.AfterFunc(ctx, func() { _ = r.f.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, err
		}
		n, err := r.f.Read(r.buf)
		switch {
		case err == nil:
			if rec, ok := r.parse(r.buf[:n]); ok {
				return rec, nil
			}
		case errors.Is(err, syscall.EPIPE):
			r.Lost++
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if cerr := ctx.Err(); cerr != nil {
				return Record{}, cerr
			}
			_ = r.f.SetReadDeadline(time.Time{})
			continue
		default:
			return Record{}, fmt.Errorf("kmsg: read %s: %w", r.path, err)
		}
	}
}

// Available returns the records that can be read now without waiting:
// all of them from a fresh Reader, or those logged since the last call.
// Malformed records are skipped (see Malformed).
func (r *Reader) Available() ([]Record, error) {
	rc, err := r.f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("kmsg: %s: %w", r.path, err)
	}
	var out []Record
	for {
		var n int
		var rerr error
		// Returning true from the callback makes this one non-blocking
		// read(2), never a wait on the poller.
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr = syscall.Read(int(fd), r.buf)
			return true
		}); err != nil {
			return out, fmt.Errorf("kmsg: read %s: %w", r.path, err)
		}
		switch {
		case rerr == nil && n > 0:
			if rec, ok := r.parse(r.buf[:n]); ok {
				out = append(out, rec)
			}
		case rerr == nil, errors.Is(rerr, syscall.EAGAIN):
			return out, nil
		case errors.Is(rerr, syscall.EPIPE):
			r.Lost++
		case errors.Is(rerr, syscall.EINTR):
		default:
			return out, fmt.Errorf("kmsg: read %s: %w", r.path, rerr)
		}
	}
}
