package server

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/stowage/stowage/osd/volume"
)

// Key is a block's SHA-256.
type Key = volume.Key

// ParseKey parses a block key: exactly 64 hexadecimal digits (either case).
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*len(k) {
		return k, fmt.Errorf("a block key is 64 hex digits (SHA-256), got %d characters", len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("a block key is 64 hex digits (SHA-256): %v", err)
	}
	return k, nil
}

// FormatKey is the canonical (lower-case hex) form of a key.
func FormatKey(k Key) string { return hex.EncodeToString(k[:]) }

// ByteRange is a resolved, satisfiable byte range: Start ≤ End < size.
type ByteRange struct{ Start, End int64 }

// Len is the range's length in bytes.
func (r ByteRange) Len() int64 { return r.End - r.Start + 1 }

// Range errors.
var (
	ErrRangeSyntax        = errors.New("malformed Range header")
	ErrRangeUnsatisfiable = errors.New("no range in the Range header overlaps the block")
)

// MaxRanges is the most ranges a Range header may list.
const MaxRanges = 16

// ParseRange parses an RFC 9110 Range header against a representation of
// size bytes. It returns nil and no error when the header is empty or its
// unit is not "bytes" (the whole block is served). Otherwise it returns the
// satisfiable ranges, clipped to the size, in the order given; ranges past
// the end are dropped. ErrRangeSyntax for a malformed bytes range set (or
// more than MaxRanges ranges), ErrRangeUnsatisfiable when none is left.
func ParseRange(h string, size int64) ([]ByteRange, error) {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil, nil
	}
	unit, set, ok := strings.Cut(h, "=")
	if !ok {
		return nil, ErrRangeSyntax
	}
	if !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		return nil, nil
	}
	var out []ByteRange
	n := 0
	for spec := range strings.SplitSeq(set, ",") {
		spec = strings.Trim(spec, " \t")
		if spec == "" {
			continue // empty list elements are allowed (RFC 9110 5.6.1)
		}
		if n++; n > MaxRanges {
			return nil, ErrRangeSyntax
		}
		first, last, ok := strings.Cut(spec, "-")
		if !ok {
			return nil, ErrRangeSyntax
		}
		if first == "" { // suffix-range: the last n bytes
			sfx, err := digits(last)
			if err != nil {
				return nil, err
			}
			if sfx == 0 || size == 0 {
				continue
			}
			out = append(out, ByteRange{Start: max(size-sfx, 0), End: size - 1})
			continue
		}
		a, err := digits(first)
		if err != nil {
			return nil, err
		}
		b := int64(-1)
		if last != "" {
			if b, err = digits(last); err != nil {
				return nil, err
			}
			if b < a {
				return nil, ErrRangeSyntax
			}
		}
		if a >= size {
			continue
		}
		if b < 0 || b >= size {
			b = size - 1
		}
		out = append(out, ByteRange{Start: a, End: b})
	}
	if n == 0 {
		return nil, ErrRangeSyntax
	}
	if len(out) == 0 {
		return nil, ErrRangeUnsatisfiable
	}
	return out, nil
}

// digits parses 1*DIGIT; values past int64 saturate (a range that large is
// simply past the end).
func digits(s string) (int64, error) {
	if s == "" {
		return 0, ErrRangeSyntax
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrRangeSyntax
		}
		if v > (1<<62)/10 {
			v = 1 << 62
			continue
		}
		v = v*10 + int64(c-'0')
	}
	return v, nil
}

// List limits.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
)

// ListQuery is the parsed query of GET /v1/blocks.
type ListQuery struct {
	After Key // zero: from the start
	Limit int
}

// ParseListQuery parses ?after=KEY&limit=N. Unknown parameters are
// refused, so that a typo does not silently list everything.
func ParseListQuery(q url.Values) (ListQuery, error) {
	lq := ListQuery{Limit: DefaultListLimit}
	for name, vs := range q {
		if len(vs) != 1 {
			return lq, fmt.Errorf("query parameter %q given %d times", name, len(vs))
		}
		v := vs[0]
		switch name {
		case "after":
			if v == "" {
				continue
			}
			k, err := ParseKey(v)
			if err != nil {
				return lq, fmt.Errorf("after: %v", err)
			}
			lq.After = k
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxListLimit {
				return lq, fmt.Errorf("limit must be an integer from 1 to %d, got %q", MaxListLimit, v)
			}
			lq.Limit = n
		default:
			return lq, fmt.Errorf("unknown query parameter %q (known: after, limit)", name)
		}
	}
	return lq, nil
}
