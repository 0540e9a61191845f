package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// client is a tiny TFTP client speaking over real UDP sockets.
type client struct {
	t      *testing.T
	server *net.UDPAddr
}

// get reads name with the given options; it returns the file, the OACK
// options, or the server's error.
func (c *client) get(name string, opts ...Option) ([]byte, map[string]string, error) {
	c.t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		c.t.Fatal(err)
	}
	defer conn.Close()
	req := Request{Op: OpRRQ, Filename: name, Mode: "octet", Options: opts}
	if _, err := conn.WriteTo(req.Marshal(), c.server); err != nil {
		c.t.Fatal(err)
	}
	blk := 512
	var out bytes.Buffer
	var oack map[string]string
	var peer net.Addr
	want := uint16(1)
	buf := make([]byte, 70000)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return nil, nil, fmt.Errorf("client: %w", err)
		}
		if peer == nil {
			peer = from
		}
		p := buf[:n]
		switch op := binary.BigEndian.Uint16(p); op {
		case OpERROR:
			return nil, nil, &RemoteError{Code: binary.BigEndian.Uint16(p[2:]), Message: string(bytes.TrimRight(p[4:], "\x00"))}
		case OpOACK:
			oack = map[string]string{}
			f, err := splitNUL(p[2:])
			if err != nil || len(f)%2 != 0 {
				return nil, nil, fmt.Errorf("bad OACK %q", p)
			}
			for i := 0; i < len(f); i += 2 {
				oack[f[i]] = f[i+1]
			}
			if v, ok := oack["blksize"]; ok {
				blk, _ = strconv.Atoi(v)
			}
			_, _ = conn.WriteTo([]byte{0, byte(OpACK), 0, 0}, peer)
		case OpDATA:
			block := binary.BigEndian.Uint16(p[2:])
			ack := []byte{0, byte(OpACK), 0, 0}
			binary.BigEndian.PutUint16(ack[2:], block)
			if block == want {
				out.Write(p[4:])
				want++
			}
			_, _ = conn.WriteTo(ack, peer)
			if block == want-1 && len(p)-4 < blk {
				return out.Bytes(), oack, nil
			}
		default:
			return nil, nil, fmt.Errorf("unexpected opcode %d", op)
		}
	}
}

func startServer(t *testing.T, dir string, s *Server) *client {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	s.Root = root
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		conn.Close()
	})
	return &client{t: t, server: conn.LocalAddr().(*net.UDPAddr)}
}

func tftpRoot(t *testing.T) (string, []byte) {
	t.Helper()
	dir := t.TempDir()
	big := make([]byte, 100_000)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "undionly.kpxe"), big, 0o644))
	must(os.WriteFile(filepath.Join(dir, "exact512"), bytes.Repeat([]byte{'x'}, 1024), 0o644))
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	must(os.MkdirAll(filepath.Join(dir, "efi"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "efi", "ipxe.efi"), []byte("EFI"), 0o644))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")))
	must(os.Symlink("../../../../../../etc/hostname", filepath.Join(dir, "hostname")))
	must(os.Symlink("efi/ipxe.efi", filepath.Join(dir, "inside")))
	return dir, big
}

func TestServeFiles(t *testing.T) {
	dir, big := tftpRoot(t)
	reports := make(chan Transfer, 16)
	c := startServer(t, dir, &Server{OnTransfer: func(tr Transfer) { reports <- tr }})

	got, oack, err := c.get("undionly.kpxe")
	if err != nil || !bytes.Equal(got, big) || oack != nil {
		t.Fatalf("plain RRQ: %d bytes, oack %v, err %v", len(got), oack, err)
	}
	got, oack, err = c.get("undionly.kpxe", Option{"blksize", "1432"}, Option{"tsize", "0"}, Option{"windowsize", "4"})
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("RRQ with options: %d bytes, err %v", len(got), err)
	}
	if oack["blksize"] != "1432" || oack["tsize"] != "100000" || len(oack) != 2 {
		t.Fatalf("OACK %v, want blksize 1432 and tsize 100000 only (windowsize is not supported)", oack)
	}
	// blksize above the cap is lowered, not refused.
	if _, oack, err = c.get("efi/ipxe.efi", Option{"BLKSIZE", "65464"}); err != nil || oack["BLKSIZE"] != "1468" {
		t.Fatalf("big blksize: oack %v err %v", oack, err)
	}
	// A file that is a whole number of blocks ends with an empty block.
	if got, _, err = c.get("exact512"); err != nil || len(got) != 1024 {
		t.Fatalf("exact512: %d bytes, err %v", len(got), err)
	}
	if got, _, err = c.get("empty"); err != nil || len(got) != 0 {
		t.Fatalf("empty: %d bytes, err %v", len(got), err)
	}
	// A symlink that stays inside the root is followed.
	if got, _, err = c.get("inside"); err != nil || string(got) != "EFI" {
		t.Fatalf("inside symlink: %q, err %v", got, err)
	}
	// Backslashes, as some PXE stacks send them.
	if got, _, err = c.get(`efi\ipxe.efi`); err != nil || string(got) != "EFI" {
		t.Fatalf("backslash path: %q, err %v", got, err)
	}
	// The server reports each transfer once the client acknowledged the
	// last block, which may be after the client returned.
	byName := map[string][]Transfer{}
	for i := 0; i < 7; i++ {
		select {
		case tr := <-reports:
			if tr.Err != nil {
				t.Errorf("transfer %+v failed", tr)
			}
			byName[tr.Filename] = append(byName[tr.Filename], tr)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d transfers reported", i)
		}
	}
	if u := byName["undionly.kpxe"]; len(u) != 2 || u[0].Bytes != int64(len(big)) || u[1].Bytes != int64(len(big)) || u[0].BlkSize+u[1].BlkSize != 512+1432 {
		t.Fatalf("undionly.kpxe transfers reported: %+v", u)
	}
}

func TestRefusals(t *testing.T) {
	dir, _ := tftpRoot(t)
	c := startServer(t, dir, &Server{})
	for _, tc := range []struct {
		name string
		code uint16
	}{
		{"../etc/passwd", ErrAccessViolation},
		{"efi/../../etc/passwd", ErrAccessViolation},
		{`..\..\etc\passwd`, ErrAccessViolation},
		{"/etc/passwd", ErrAccessViolation},
		{"passwd", ErrAccessViolation},   // symlink to an absolute path outside
		{"hostname", ErrAccessViolation}, // relative symlink climbing out
		{"efi//ipxe.efi", ErrAccessViolation},
		{"./efi/ipxe.efi", ErrAccessViolation},
		{"nothing-here", ErrFileNotFound},
		{"efi", ErrFileNotFound}, // a directory
	} {
		got, _, err := c.get(tc.name)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != tc.code {
			t.Errorf("GET %q: %d bytes, err %v; want TFTP error %d", tc.name, len(got), err, tc.code)
		}
	}
	// Write requests are refused.
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wrq := Request{Op: OpWRQ, Filename: "undionly.kpxe", Mode: "octet"}
	if _, err := conn.WriteTo(wrq.Marshal(), c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 600)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseACK(buf[:n]); err == nil {
		t.Fatal("WRQ acknowledged")
	} else if re, ok := err.(*RemoteError); !ok || re.Code != ErrAccessViolation {
		t.Fatalf("WRQ answer: %v", err)
	}
	// Garbage gets an illegal-operation error, not silence or a crash.
	if _, err := conn.WriteTo([]byte{0, 1, 'x'}, c.server); err != nil {
		t.Fatal(err)
	}
	n, _, err = conn.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseACK(buf[:n]); err == nil {
		t.Fatal("garbage acknowledged")
	} else if re, ok := err.(*RemoteError); !ok || re.Code != ErrIllegalOperation {
		t.Fatalf("garbage answer: %v", err)
	}
}

func TestRetransmitOnLostACK(t *testing.T) {
	dir, _ := tftpRoot(t)
	c := startServer(t, dir, &Server{Timeout: 50 * time.Millisecond})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := Request{Op: OpRRQ, Filename: "efi/ipxe.efi", Mode: "octet"}
	if _, err := conn.WriteTo(req.Marshal(), c.server); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 600)
	// Do not ACK: the same DATA block 1 must come again.
	for i := 0; i < 2; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(buf[:n], dataPacket(1, []byte("EFI"))) {
			t.Fatalf("packet %d: %q, want DATA 1", i, buf[:n])
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"undionly.kpxe": "undionly.kpxe",
		`efi\ipxe.efi`:  "efi/ipxe.efi",
		"a/b/c":         "a/b/c",
	} {
		if got, err := CleanPath(in); err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/a", "..", "a/..", "a/../b", "a//b", "./a", "a/", "a\x00b", `\a`} {
		if got, err := CleanPath(bad); err == nil {
			t.Errorf("CleanPath(%q) = %q, want refusal", bad, got)
		}
	}
}
