package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	OpRRQ   uint16 = 1
	OpWRQ   uint16 = 2
	OpDATA  uint16 = 3
	OpACK   uint16 = 4
	OpERROR uint16 = 5
	OpOACK  uint16 = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	ErrNotDefined       uint16 = 0
	ErrFileNotFound     uint16 = 1
	ErrAccessViolation  uint16 = 2
	ErrDiskFull         uint16 = 3
	ErrIllegalOperation uint16 = 4
	ErrUnknownTID       uint16 = 5
	ErrFileExists       uint16 = 6
	ErrNoSuchUser       uint16 = 7
	ErrOptionRefused    uint16 = 8
)

// Option is one RFC 2347 option, as sent (names compare case-insensitively).
type Option struct {
	Name, Value string
}

// Request is a read or write request: opcode, file name, mode, options.
type Request struct {
	Op       uint16 // OpRRQ or OpWRQ
	Filename string
	Mode     string
	Options  []Option
}

// maxPacket bounds what we accept: the largest blksize (65464) plus the
// 4-byte header.
const maxPacket = 65468

// ParseRequest decodes an RRQ or WRQ packet:
//
//	| opcode (2) | filename | 0 | mode | 0 | [ name | 0 | value | 0 ]... |
//
// Strings must be non-empty (except option values), NUL-terminated and free
// of further NULs; the packet must end after the last NUL.
func ParseRequest(b []byte) (Request, error) {
	if len(b) > maxPacket {
		return Request{}, fmt.Errorf("tftp request: %d bytes, longer than %d", len(b), maxPacket)
	}
	if len(b) < 2 {
		return Request{}, errors.New("tftp request: shorter than an opcode")
	}
	r := Request{Op: binary.BigEndian.Uint16(b)}
	if r.Op != OpRRQ && r.Op != OpWRQ {
		return Request{}, fmt.Errorf("tftp request: opcode %d is not RRQ or WRQ", r.Op)
	}
	fields, err := splitNUL(b[2:])
	if err != nil {
		return Request{}, fmt.Errorf("tftp request: %w", err)
	}
	if len(fields) < 2 {
		return Request{}, errors.New("tftp request: want a file name and a mode")
	}
	if fields[0] == "" {
		return Request{}, errors.New("tftp request: empty file name")
	}
	if fields[1] == "" {
		return Request{}, errors.New("tftp request: empty mode")
	}
	r.Filename, r.Mode = fields[0], fields[1]
	rest := fields[2:]
	if len(rest)%2 != 0 {
		return Request{}, fmt.Errorf("tftp request: option %q has no value", rest[len(rest)-1])
	}
	for i := 0; i < len(rest); i += 2 {
		if rest[i] == "" {
			return Request{}, fmt.Errorf("tftp request: option %d has an empty name", i/2+1)
		}
		r.Options = append(r.Options, Option{Name: rest[i], Value: rest[i+1]})
	}
	return r, nil
}

// splitNUL splits NUL-terminated strings; the input must end with a NUL.
func splitNUL(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != 0 {
		return nil, errors.New("last string not NUL-terminated")
	}
	parts := bytes.Split(b[:len(b)-1], []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out, nil
}

// Marshal encodes the request. It is the inverse of ParseRequest for every
// request ParseRequest accepts.
func (r Request) Marshal() []byte {
	b := binary.BigEndian.AppendUint16(nil, r.Op)
	b = append(append(b, r.Filename...), 0)
	b = append(append(b, r.Mode...), 0)
	for _, o := range r.Options {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// Option returns the value of the named option (case-insensitive).
func (r Request) Option(name string) (string, bool) {
	for _, o := range r.Options {
		if strings.EqualFold(o.Name, name) {
			return o.Value, true
		}
	}
	return "", false
}

func dataPacket(block uint16, payload []byte) []byte {
	b := make([]byte, 4, 4+len(payload))
	binary.BigEndian.PutUint16(b, OpDATA)
	binary.BigEndian.PutUint16(b[2:], block)
	return append(b, payload...)
}

func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 4, 5+len(msg))
	binary.BigEndian.PutUint16(b, OpERROR)
	binary.BigEndian.PutUint16(b[2:], code)
	b = append(b, strings.ReplaceAll(msg, "\x00", "")...)
	return append(b, 0)
}

func oackPacket(opts []Option) []byte {
	b := binary.BigEndian.AppendUint16(nil, OpOACK)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// parseACK returns the block number of an ACK, or an error describing the
// packet (an ERROR from the client included).
func parseACK(b []byte) (uint16, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("packet of %d bytes, too short", len(b))
	}
	switch op := binary.BigEndian.Uint16(b); op {
	case OpACK:
		return binary.BigEndian.Uint16(b[2:]), nil
	case OpERROR:
		msg := string(bytes.TrimRight(b[4:], "\x00"))
		return 0, &RemoteError{Code: binary.BigEndian.Uint16(b[2:]), Message: msg}
	default:
		return 0, fmt.Errorf("opcode %d where an ACK was expected", op)
	}
}

// RemoteError is an ERROR packet received from the peer.
type RemoteError struct {
	Code    uint16
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("tftp error %d from peer: %s", e.Code, e.Message)
}
