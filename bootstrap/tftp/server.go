package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Transfer reports one finished (or failed) read request.
type Transfer struct {
	Remote   net.Addr
	Filename string // as requested
	Bytes    int64  // file bytes acknowledged by the client
	BlkSize  int
	Err      error // nil when the client acknowledged the last block
}

// Server is a read-only TFTP server confined to Root. The zero values of
// the optional fields are the documented defaults.
type Server struct {
	Root *os.Root // files are served from here only; required

	Log        *slog.Logger   // default slog.Default()
	OnTransfer func(Transfer) // called when each transfer ends; may be nil
	// Timeout is the retransmission timeout when the client does not ask
	// for one (option "timeout"). Default 1 s.
	Timeout time.Duration
	// Retries is how often a block is sent before the transfer is
	// abandoned. Default 5.
	Retries int
	// MaxBlockSize caps the blksize option. Default 1468 (an Ethernet
	// frame without fragmentation: 1500 - 20 IP - 8 UDP - 4 TFTP).
	MaxBlockSize int
}

const (
	defaultBlockSize = 512
	minBlockSize     = 8
	maxBlockSize     = 65464
)

// PathError says why a requested file name is refused.
type PathError struct {
	Filename string
	Reason   string
}

func (e *PathError) Error() string { return fmt.Sprintf("tftp: refusing %q: %s", e.Filename, e.Reason) }

// CleanPath turns a requested file name into a path relative to the root,
// or refuses it: absolute paths, ".." elements, empty elements and NUL are
// refused; backslashes (sent by some PXE stacks) count as slashes.
// Symlinks that point out of the root are refused later, by os.Root.
func CleanPath(name string) (string, error) {
	p := strings.ReplaceAll(name, "\\", "/")
	switch {
	case strings.HasPrefix(p, "/"):
		return "", &PathError{name, "absolute path"}
	case strings.ContainsRune(p, 0):
		return "", &PathError{name, "NUL in file name"}
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return "", &PathError{name, "'..' in path"}
		}
	}
	if !fs.ValidPath(p) || path.Clean(p) != p {
		return "", &PathError{name, "not a clean relative path"}
	}
	return p, nil
}

// Serve answers requests arriving on conn until ctx is done or conn fails.
// Each transfer runs on its own UDP socket (its own TID, RFC 1350) and is
// waited for before Serve returns.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	if s.Root == nil {
		return errors.New("tftp: no root")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, maxPacket+1)
	for {
		n, addr, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("tftp: reading requests: %w", err)
		}
		pkt := append([]byte(nil), buf[:n]...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, conn, addr, pkt)
		}()
	}
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) handle(ctx context.Context, listener net.PacketConn, addr net.Addr, pkt []byte) {
	req, err := ParseRequest(pkt)
	if err != nil {
		s.log().Warn("tftp: bad request", "remote", addr, "err", err)
		_, _ = listener.WriteTo(errorPacket(ErrIllegalOperation, err.Error()), addr)
		return
	}
	// Each transfer gets its own socket, on the address family of the
	// listener.
	network := "udp4"
	if ua, ok := addr.(*net.UDPAddr); ok && ua.IP.To4() == nil {
		network = "udp6"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		s.log().Error("tftp: transfer socket", "remote", addr, "err", err)
		return
	}
	defer c.Close()
	t := Transfer{Remote: addr, Filename: req.Filename, BlkSize: defaultBlockSize}
	t.Bytes, t.BlkSize, t.Err = s.serveRead(ctx, c, addr, req)
	if t.Err != nil {
		s.log().Warn("tftp: transfer failed", "remote", addr, "file", req.Filename, "err", t.Err)
	} else {
		s.log().Info("tftp: sent", "remote", addr, "file", req.Filename, "bytes", t.Bytes, "blksize", t.BlkSize)
	}
	if s.OnTransfer != nil {
		s.OnTransfer(t)
	}
}

func (s *Server) serveRead(ctx context.Context, c *net.UDPConn, addr net.Addr, req Request) (int64, int, error) {
	fail := func(code uint16, err error) (int64, int, error) {
		_, _ = c.WriteTo(errorPacket(code, err.Error()), addr)
		return 0, defaultBlockSize, err
	}
	if req.Op != OpRRQ {
		return fail(ErrAccessViolation, errors.New("read-only server: write requests are refused"))
	}
	if m := strings.ToLower(req.Mode); m != "octet" && m != "netascii" {
		return fail(ErrIllegalOperation, fmt.Errorf("mode %q not supported (octet or netascii)", req.Mode))
	}
	name, err := CleanPath(req.Filename)
	if err != nil {
		return fail(ErrAccessViolation, err)
	}
	f, err := s.Root.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fail(ErrFileNotFound, fmt.Errorf("%s: not found", name))
		}
		return fail(ErrAccessViolation, fmt.Errorf("%s: %w", name, err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fail(ErrNotDefined, err)
	}
	if !st.Mode().IsRegular() {
		return fail(ErrFileNotFound, fmt.Errorf("%s: not a regular file", name))
	}

	// Negotiate options (RFC 2347/2348/2349): answer those we know, drop
	// the rest.
	blk := defaultBlockSize
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	maxBlk := s.MaxBlockSize
	if maxBlk <= 0 {
		maxBlk = 1468
	}
	maxBlk = min(maxBlk, maxBlockSize)
	var oack []Option
	for _, o := range req.Options {
		switch strings.ToLower(o.Name) {
		case "blksize":
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < minBlockSize {
				return fail(ErrOptionRefused, fmt.Errorf("blksize %q: want %d..%d", o.Value, minBlockSize, maxBlockSize))
			}
			blk = min(v, maxBlk)
			oack = append(oack, Option{o.Name, strconv.Itoa(blk)})
		case "tsize":
			oack = append(oack, Option{o.Name, strconv.FormatInt(st.Size(), 10)})
		case "timeout":
			v, err := strconv.Atoi(o.Value)
			if err != nil || v < 1 || v > 255 {
				return fail(ErrOptionRefused, fmt.Errorf("timeout %q: want 1..255", o.Value))
			}
			timeout = time.Duration(v) * time.Second
			oack = append(oack, Option{o.Name, o.Value})
		}
	}
	retries := s.Retries
	if retries <= 0 {
		retries = 5
	}
	x := &xfer{c: c, peer: addr, timeout: timeout, retries: retries, buf: make([]byte, maxPacket+1)}
	if len(oack) > 0 {
		if err := x.sendAndWait(ctx, oackPacket(oack), 0); err != nil {
			return 0, blk, fmt.Errorf("%s: option ack: %w", name, err)
		}
	}
	data := make([]byte, blk)
	var sent int64
	for block := uint16(1); ; block++ { // wraps to 0 after 65535, as clients expect
		n, err := io.ReadFull(f, data)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return fail(ErrNotDefined, fmt.Errorf("%s: reading at offset %d: %w", name, sent, err))
		}
		if err := x.sendAndWait(ctx, dataPacket(block, data[:n]), block); err != nil {
			return sent, blk, fmt.Errorf("%s: block %d (offset %d): %w", name, block, sent, err)
		}
		sent += int64(n)
		if n < blk {
			return sent, blk, nil
		}
	}
}

// xfer is one transfer's socket and its retransmission policy.
type xfer struct {
	c       *net.UDPConn
	peer    net.Addr
	timeout time.Duration
	retries int
	buf     []byte
}

// sendAndWait sends pkt and waits for the ACK of block, resending on
// timeout. Duplicate ACKs of earlier blocks are ignored (no resend, which
// would start the Sorcerer's Apprentice syndrome); packets from other
// addresses get an "unknown TID" error and are otherwise ignored.
func (x *xfer) sendAndWait(ctx context.Context, pkt []byte, block uint16) error {
	for try := 0; try < x.retries; try++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := x.c.WriteTo(pkt, x.peer); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		deadline := time.Now().Add(x.timeout)
		for {
			if err := x.c.SetReadDeadline(deadline); err != nil {
				return err
			}
			n, from, err := x.c.ReadFrom(x.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // resend
				}
				return fmt.Errorf("receive: %w", err)
			}
			if from.String() != x.peer.String() {
				_, _ = x.c.WriteTo(errorPacket(ErrUnknownTID, "unknown transfer id"), from)
				continue
			}
			got, err := parseACK(x.buf[:n])
			if err != nil {
				return err
			}
			if got == block {
				return nil
			}
			// An old or future block number: keep waiting.
		}
	}
	return fmt.Errorf("no ACK after %d tries of %v", x.retries, x.timeout)
}
