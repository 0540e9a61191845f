package discover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Uevent is one kernel uevent as the kernel broadcasts it on
// NETLINK_KOBJECT_UEVENT group 1: a header "ACTION@DEVPATH" and
// NUL-separated KEY=VALUE pairs.
type Uevent struct {
	Action    string            // add, remove, change, move, online, offline, bind, unbind
	DevPath   string            // /devices/... (below /sys)
	Subsystem string            // block, scsi, nvme, ...
	DevName   string            // sda (DEVNAME, may be a path below /dev)
	DevType   string            // disk, partition
	Seqnum    uint64            // SEQNUM
	Env       map[string]string // every KEY=VALUE pair, including the above
}

// maxUevent bounds a message; the kernel's limit (UEVENT_BUFFER_SIZE) is 2048.
const maxUevent = 64 << 10

// ParseUevent decodes one kernel uevent datagram. Messages from udev
// (starting "libudev") and malformed ones are errors.
func ParseUevent(b []byte) (Uevent, error) {
	if len(b) > maxUevent {
		return Uevent{}, fmt.Errorf("uevent: %d bytes, limit %d", len(b), maxUevent)
	}
	if bytes.HasPrefix(b, []byte("libudev\x00")) {
		return Uevent{}, errors.New("uevent: udev message, not a kernel uevent")
	}
	b = bytes.TrimRight(b, "\x00")
	parts := bytes.Split(b, []byte{0})
	head := string(parts[0])
	at := strings.IndexByte(head, '@')
	if at <= 0 || at == len(head)-1 {
		return Uevent{}, fmt.Errorf("uevent: header %q is not ACTION@DEVPATH", trunc(head))
	}
	u := Uevent{Env: map[string]string{}}
	for i, p := range parts[1:] {
		kv := string(p)
		eq := strings.IndexByte(kv, '=')
		if eq <= 0 {
			return Uevent{}, fmt.Errorf("uevent: field %d %q is not KEY=VALUE", i+1, trunc(kv))
		}
		k, v := kv[:eq], kv[eq+1:]
		if _, dup := u.Env[k]; dup {
			return Uevent{}, fmt.Errorf("uevent: field %d: duplicate key %q", i+1, trunc(k))
		}
		u.Env[k] = v
	}
	u.Action, u.DevPath = u.Env["ACTION"], u.Env["DEVPATH"]
	if u.Action == "" || u.DevPath == "" {
		return Uevent{}, errors.New("uevent: ACTION or DEVPATH missing")
	}
	if head[:at] != u.Action || head[at+1:] != u.DevPath {
		return Uevent{}, fmt.Errorf("uevent: header %q disagrees with ACTION/DEVPATH", trunc(head))
	}
	u.Subsystem, u.DevName, u.DevType = u.Env["SUBSYSTEM"], u.Env["DEVNAME"], u.Env["DEVTYPE"]
	if s, ok := u.Env["SEQNUM"]; ok {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return Uevent{}, fmt.Errorf("uevent: SEQNUM %q: %w", trunc(s), err)
		}
		u.Seqnum = n
	}
	return u, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// Marshal encodes u the way the kernel does (header, then the pairs in
// key order). ParseUevent(u.Marshal()) gives u back.
func (u Uevent) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(u.Action + "@" + u.DevPath)
	b.WriteByte(0)
	keys := make([]string, 0, len(u.Env))
	for k := range u.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(k + "=" + u.Env[k])
		b.WriteByte(0)
	}
	return b.Bytes()
}

// UeventConn is a NETLINK_KOBJECT_UEVENT socket bound to the kernel's
// multicast group. Read blocks in the Go netpoller, never spins.
type UeventConn struct {
	f     *os.File
	close sync.Once
	buf   []byte
}

// ErrUeventOverflow means the socket's receive buffer overflowed and events
// were lost: the caller must rescan.
var ErrUeventOverflow = errors.New("uevent: receive buffer overflow, events lost")

// DialUevents opens the uevent socket.
func DialUevents() (*UeventConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_KOBJECT_UEVENT)
	if err != nil {
		return nil, fmt.Errorf("uevent: %w", os.NewSyscallError("socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)", err))
	}
	// A hot-plug storm of 100 drives is a few hundred messages: ask for
	// room (FORCE works as root), fall back to the unprivileged limit.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uevent: %w", os.NewSyscallError("bind(NETLINK_KOBJECT_UEVENT, group 1)", err))
	}
	return &UeventConn{f: os.NewFile(uintptr(fd), "netlink-uevent"), buf: make([]byte, maxUevent)}, nil
}

// Read returns the next kernel uevent. It returns ctx.Err() when ctx ends
// (closing the socket), ErrUeventOverflow when events were dropped.
// Messages not sent by the kernel and malformed ones are skipped.
// Read must not be called concurrently.
func (c *UeventConn) Read(ctx context.Context) (Uevent, error) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	rc, err := c.f.SyscallConn()
	if err != nil {
		return Uevent{}, fmt.Errorf("uevent: %w", err)
	}
	for {
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), c.buf, 0)
			return rerr != unix.EAGAIN
		})
		if ctx.Err() != nil {
			return Uevent{}, ctx.Err()
		}
		if err != nil {
			return Uevent{}, fmt.Errorf("uevent: read: %w", err)
		}
		if errors.Is(rerr, unix.ENOBUFS) {
			return Uevent{}, ErrUeventOverflow
		}
		if rerr != nil {
			return Uevent{}, fmt.Errorf("uevent: %w", os.NewSyscallError("recvfrom", rerr))
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // not from the kernel
		}
		u, err := ParseUevent(c.buf[:n])
		if err != nil {
			continue
		}
		return u, nil
	}
}

// Close closes the socket; a blocked Read returns.
func (c *UeventConn) Close() error {
	var err error
	c.close.Do(func() { err = c.f.Close() })
	return err
}
