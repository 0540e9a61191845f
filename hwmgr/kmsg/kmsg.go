// Package kmsg reads the kernel log through /dev/kmsg and finds the
// block-layer I/O errors in it.
//
// A /dev/kmsg record (Documentation/ABI/testing/dev-kmsg) is one read():
//
//	PRI,SEQ,TS_USEC,FLAG[,MORE...];MESSAGE\n
//	 KEY=VALUE\n            (zero or more dictionary lines)
//
// PRI is facility<<3 | level, SEQ a 64-bit sequence number, TS_USEC the
// monotonic time since boot in microseconds, FLAG "-" (or "c" for a
// continuation in old kernels). Bytes < 0x20 (except tab), >= 0x7f and the
// backslash itself are escaped as \xNN in MESSAGE and in dictionary lines.
package kmsg

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Record is one kernel log record.
type Record struct {
	Facility uint32 `json:"facility"`
	Level    uint8  `json:"level"` // 0 emerg .. 7 debug
	Seq      uint64 `json:"seq"`
	// Time since boot (monotonic clock), microsecond resolution.
	Time time.Duration `json:"time"`
	Flag string        `json:"flag"`
	// Extra holds prefix fields after FLAG (e.g. "caller=T42"), verbatim.
	Extra   []string `json:"extra,omitempty"`
	Message string   `json:"message"`
	// Dict holds the dictionary lines (" SUBSYSTEM=block") in order.
	Dict []KeyValue `json:"dict,omitempty"`
}

// KeyValue is one dictionary line.
type KeyValue struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("kmsg: malformed record")

// Parse decodes one record as read from /dev/kmsg.
func Parse(b []byte) (Record, error) {
	var r Record
	s := string(b)
	line, rest, _ := strings.Cut(s, "\n")
	prefix, msg, ok := strings.Cut(line, ";")
	if !ok {
		return Record{}, fmt.Errorf("%w: no ';' after the prefix", ErrMalformed)
	}
	fields := strings.Split(prefix, ",")
	if len(fields) < 4 {
		return Record{}, fmt.Errorf("%w: prefix %q has %d fields, want >= 4", ErrMalformed, prefix, len(fields))
	}
	pri, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil {
		return Record{}, fmt.Errorf("%w: priority %q: %v", ErrMalformed, fields[0], err)
	}
	r.Facility, r.Level = uint32(pri>>3), uint8(pri&7)
	if r.Seq, err = strconv.ParseUint(fields[1], 10, 64); err != nil {
		return Record{}, fmt.Errorf("%w: sequence %q: %v", ErrMalformed, fields[1], err)
	}
	us, err := strconv.ParseUint(fields[2], 10, 64)
	if err != nil || us > uint64(1<<63-1)/uint64(time.Microsecond) {
		return Record{}, fmt.Errorf("%w: timestamp %q", ErrMalformed, fields[2])
	}
	r.Time = time.Duration(us) * time.Microsecond
	r.Flag = fields[3]
	if len(fields) > 4 {
		r.Extra = fields[4:]
	}
	r.Message = unescape(msg)
	for l := range strings.SplitSeq(rest, "\n") {
		if l == "" {
			continue
		}
		if l[0] != ' ' {
			return Record{}, fmt.Errorf("%w: dictionary line %q does not start with a space", ErrMalformed, l)
		}
		k, v, ok := strings.Cut(l[1:], "=")
		if !ok || k == "" {
			return Record{}, fmt.Errorf("%w: dictionary line %q is not KEY=VALUE", ErrMalformed, l)
		}
		r.Dict = append(r.Dict, KeyValue{Key: unescape(k), Value: unescape(v)})
	}
	return r, nil
}

// Format writes the record the way the kernel does; Parse(r.Format())
// gives r back for any record Parse returned.
func (r Record) Format() []byte {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(r.Facility)<<3|uint64(r.Level&7), 10))
	b.WriteByte(',')
	b.WriteString(strconv.FormatUint(r.Seq, 10))
	b.WriteByte(',')
	b.WriteString(strconv.FormatUint(uint64(r.Time/time.Microsecond), 10))
	b.WriteByte(',')
	b.WriteString(r.Flag)
	for _, e := range r.Extra {
		b.WriteByte(',')
		b.WriteString(e)
	}
	b.WriteByte(';')
	b.WriteString(escape(r.Message, false))
	b.WriteByte('\n')
	for _, kv := range r.Dict {
		b.WriteByte(' ')
		b.WriteString(escape(kv.Key, true))
		b.WriteByte('=')
		b.WriteString(escape(kv.Value, false))
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func escape(s string, key bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c >= 0x7f || c == '\\' || (key && c == '=') {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unescape(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// IOError is one block-layer request error the kernel logged, e.g.
// "I/O error, dev sda, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1
// prio class 2" (Linux >= 5.x, blk_print_req_error) or the older
// "blk_update_request: I/O error, dev sda, sector 2048".
type IOError struct {
	// Kind is the blk_status text before "error": "I/O", "critical
	// medium", "critical target", "timeout", ...
	Kind   string `json:"kind"`
	Device string `json:"device"` // kernel disk name: sda, nvme0n1
	Sector uint64 `json:"sector"`
	Op     string `json:"op,omitempty"` // READ, WRITE, FLUSH, ...
	Seq    uint64 `json:"seq"`
}

var ioErrorRE = regexp.MustCompile(`([A-Za-z/]+(?: [a-z]+){0,2}) error, dev ([^,\s]+), sector (\d+)(?: op 0x[0-9a-f]+:\(([A-Z_]+)\))?`)

// ParseIOError finds a block-layer request error in a record's message.
// "Buffer I/O error on dev sda1" lines are not matched: they repeat a
// request error already counted, per page, for a partition.
func ParseIOError(r Record) (IOError, bool) {
	m := ioErrorRE.FindStringSubmatch(r.Message)
	if m == nil {
		return IOError{}, false
	}
	sector, err := strconv.ParseUint(m[3], 10, 64)
	if err != nil {
		return IOError{}, false
	}
	return IOError{Kind: m[1], Device: m[2], Sector: sector, Op: m[4], Seq: r.Seq}, true
}

// CountIOErrors counts block-layer request errors per kernel disk name.
func CountIOErrors(recs []Record) map[string]uint64 {
	n := map[string]uint64{}
	for _, r := range recs {
		if e, ok := ParseIOError(r); ok {
			n[e.Device]++
		}
	}
	return n
}
