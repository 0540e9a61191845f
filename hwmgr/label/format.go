// Package label is the label area at the start of every drive hwmgr owns:
// an append-only, checksummed, generation-numbered log of label records in
// two regions, ping-ponged when full, whose newest valid record says who
// the drive is, what lifecycle state it is in, who owns it and what the
// owner keeps there (the OSD's superblock), with a bounded history.
//
// format.go holds the record format (see README.md for the box diagram);
// area.go finds the newest record on a device and appends new ones.
package label

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
	"unicode/utf8"

	"github.com/stowage/stowage/hwmgr/lifecycle"
)

// Wire constants. They never change; a new layout gets a new Version.
const (
	Magic         = "STOWLABL" // first 8 bytes of every record
	Version       = 1          // format version written by this package
	HeaderSize    = 64         // bytes before the body
	BlockSize     = 4096       // records start and end on BlockSize boundaries
	MaxRecordSize = 64 << 10   // largest record, header and padding included

	MaxStateLen   = 32
	MaxIDLen      = 64 // WWN, serial, model
	MaxOwnerLen   = 64
	MaxPayload    = 32 << 10 // owner payload bytes
	MaxHistory    = 64       // entries kept; older ones fold into Summary
	MaxKindLen    = 16
	MaxActionLen  = 32
	MaxResultLen  = 16
	MaxActorLen   = 64
	MaxDetailLen  = 256
	MaxTaskKind   = 16
	MaxTaskStep   = 32
	summaryLength = 4 + 8 + 8 + 5*4
)

// Header field offsets.
const (
	offMagic    = 0
	offVersion  = 8
	offHdrLen   = 10
	offRecLen   = 12
	offGen      = 16
	offTime     = 24
	offBodyLen  = 32
	offCRC      = 36
	offReserved = 40
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every decoding error: bad magic, bad checksum,
// truncated or malformed record.
var ErrCorrupt = errors.New("label: corrupt record")

// Entry kinds.
const (
	KindTransition = "transition" // a lifecycle transition (From, To, Action)
	KindBurnIn     = "burnin"     // a burn-in result (Result pass/fail, Detail)
	KindErase      = "erase"      // an erase result (Result pass/fail, Detail)
	KindNote       = "note"       // anything else worth keeping
)

// Results.
const (
	ResultPass = "pass"
	ResultFail = "fail"
)

// Entry is one line of a drive's history.
type Entry struct {
	Time   time.Time       `json:"time"`
	Kind   string          `json:"kind"`
	Action string          `json:"action,omitempty"`
	From   lifecycle.State `json:"from,omitempty"`
	To     lifecycle.State `json:"to,omitempty"`
	Result string          `json:"result,omitempty"`
	Actor  string          `json:"actor,omitempty"`
	Detail string          `json:"detail,omitempty"`
}

// EntryFromEvent turns a lifecycle event into a history entry.
func EntryFromEvent(ev lifecycle.Event) Entry {
	return Entry{Time: ev.Time, Kind: KindTransition, Action: string(ev.Action), From: ev.From, To: ev.To,
		Actor: ev.Actor, Detail: ev.Reason}
}

// Summary counts the history entries trimmed from a record.
type Summary struct {
	Trimmed     uint32    `json:"trimmed"`        // entries folded in
	Since       time.Time `json:"since,omitzero"` // time of the oldest trimmed entry
	Until       time.Time `json:"until,omitzero"` // time of the newest trimmed entry
	Transitions uint32    `json:"transitions"`    // trimmed transition entries
	BurnInPass  uint32    `json:"burnin_pass"`    // trimmed burn-in passes
	BurnInFail  uint32    `json:"burnin_fail"`    // trimmed burn-in failures
	ErasePass   uint32    `json:"erase_pass"`     // trimmed erase passes
	EraseFail   uint32    `json:"erase_fail"`     // trimmed erase failures
}

// Task is a long-running job on the drive (burn-in, erase), kept in the
// label so that after a reboot the job resumes or restarts its step. The
// zero Task means none; a Task with an empty Kind must be all zero.
type Task struct {
	Kind    string    `json:"kind"`             // e.g. "burnin", "erase"
	Step    string    `json:"step,omitempty"`   // e.g. "write-pass-2", "verify"
	Done    uint64    `json:"done"`             // units done in this step (bytes, zones)
	Total   uint64    `json:"total"`            // units in this step
	Started time.Time `json:"started,omitzero"` // when the job started
	Updated time.Time `json:"updated,omitzero"` // when Done was last recorded
}

// Record is one label record: the drive's state at one generation.
type Record struct {
	Generation uint64          `json:"generation"` // assigned by Area.Write; ≥ 1 on disk
	Time       time.Time       `json:"time"`
	State      lifecycle.State `json:"state"`
	WWN        string          `json:"wwn,omitempty"`
	Serial     string          `json:"serial,omitempty"`
	Model      string          `json:"model,omitempty"`
	Owner      string          `json:"owner,omitempty"`   // e.g. "osd"; empty: nobody
	Payload    []byte          `json:"payload,omitempty"` // the owner's bytes, opaque here
	Task       Task            `json:"task,omitzero"`     // a long job in progress (burn-in, erase); zero: none
	Summary    Summary         `json:"summary"`
	History    []Entry         `json:"history,omitempty"` // oldest first, at most MaxHistory
}

// AddEntry appends e to the history, clamping its strings to their limits
// (at a rune boundary) and folding the oldest entries into the Summary
// when there are more than MaxHistory.
func (r *Record) AddEntry(e Entry) {
	e.Kind = clamp(e.Kind, MaxKindLen)
	e.Action = clamp(e.Action, MaxActionLen)
	e.Result = clamp(e.Result, MaxResultLen)
	e.Actor = clamp(e.Actor, MaxActorLen)
	e.Detail = clamp(e.Detail, MaxDetailLen)
	r.History = append(r.History, e)
	for len(r.History) > MaxHistory {
		old := r.History[0]
		r.History = r.History[1:]
		s := &r.Summary
		if s.Trimmed == 0 || old.Time.Before(s.Since) {
			s.Since = old.Time
		}
		if s.Trimmed == 0 || old.Time.After(s.Until) {
			s.Until = old.Time
		}
		s.Trimmed++
		switch {
		case old.Kind == KindTransition:
			s.Transitions++
		case old.Kind == KindBurnIn && old.Result == ResultPass:
			s.BurnInPass++
		case old.Kind == KindBurnIn && old.Result == ResultFail:
			s.BurnInFail++
		case old.Kind == KindErase && old.Result == ResultPass:
			s.ErasePass++
		case old.Kind == KindErase && old.Result == ResultFail:
			s.EraseFail++
		}
	}
	r.History = append([]Entry(nil), r.History...)
}

func clamp(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Encode returns r as one record, padded with zeros to a multiple of
// BlockSize. It refuses a record with Generation 0, an unknown state, or a
// field over its limit.
func Encode(r *Record) ([]byte, error) {
	if r.Generation == 0 {
		return nil, errors.New("label: encode: generation 0")
	}
	if !r.State.Valid() {
		return nil, fmt.Errorf("label: encode: unknown state %q", r.State)
	}
	if len(r.History) > MaxHistory {
		return nil, fmt.Errorf("label: encode: %d history entries, at most %d", len(r.History), MaxHistory)
	}
	if len(r.Payload) > MaxPayload {
		return nil, fmt.Errorf("label: encode: payload of %d bytes, at most %d", len(r.Payload), MaxPayload)
	}
	var e encoder
	e.buf = make([]byte, HeaderSize, BlockSize)
	e.str("state", string(r.State), MaxStateLen)
	e.str("wwn", r.WWN, MaxIDLen)
	e.str("serial", r.Serial, MaxIDLen)
	e.str("model", r.Model, MaxIDLen)
	e.str("owner", r.Owner, MaxOwnerLen)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(r.Payload)))
	e.buf = append(e.buf, r.Payload...)
	tk := r.Task
	if tk.Kind == "" && tk != (Task{}) {
		return nil, errors.New("label: encode: task without a kind")
	}
	e.str("task kind", tk.Kind, MaxTaskKind)
	e.str("task step", tk.Step, MaxTaskStep)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, tk.Done)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, tk.Total)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(unixNano(tk.Started)))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(unixNano(tk.Updated)))
	s := r.Summary
	e.buf = binary.LittleEndian.AppendUint32(e.buf, s.Trimmed)
	e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(unixNano(s.Since)))
	e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(unixNano(s.Until)))
	for _, v := range []uint32{s.Transitions, s.BurnInPass, s.BurnInFail, s.ErasePass, s.EraseFail} {
		e.buf = binary.LittleEndian.AppendUint32(e.buf, v)
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(len(r.History)))
	for i, h := range r.History {
		if (h.From != "" && !h.From.Valid()) || (h.To != "" && !h.To.Valid()) {
			return nil, fmt.Errorf("label: encode: history entry %d: unknown state %q or %q", i, h.From, h.To)
		}
		e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(unixNano(h.Time)))
		e.str("history kind", h.Kind, MaxKindLen)
		e.str("history action", h.Action, MaxActionLen)
		e.str("history from", string(h.From), MaxStateLen)
		e.str("history to", string(h.To), MaxStateLen)
		e.str("history result", h.Result, MaxResultLen)
		e.str("history actor", h.Actor, MaxActorLen)
		e.str("history detail", h.Detail, MaxDetailLen)
	}
	if e.err != nil {
		return nil, e.err
	}
	body := len(e.buf) - HeaderSize
	n := (len(e.buf) + BlockSize - 1) / BlockSize * BlockSize
	if n > MaxRecordSize {
		return nil, fmt.Errorf("label: encode: record of %d bytes, at most %d", n, MaxRecordSize)
	}
	b := make([]byte, n)
	copy(b, e.buf)
	copy(b[offMagic:], Magic)
	binary.LittleEndian.PutUint16(b[offVersion:], Version)
	binary.LittleEndian.PutUint16(b[offHdrLen:], HeaderSize)
	binary.LittleEndian.PutUint32(b[offRecLen:], uint32(n))
	binary.LittleEndian.PutUint64(b[offGen:], r.Generation)
	binary.LittleEndian.PutUint64(b[offTime:], uint64(unixNano(r.Time)))
	binary.LittleEndian.PutUint32(b[offBodyLen:], uint32(body))
	binary.LittleEndian.PutUint32(b[offCRC:], checksum(b))
	return b, nil
}

// checksum is the CRC32C of a whole record except its CRC field.
func checksum(rec []byte) uint32 {
	c := crc32.Update(0, castagnoli, rec[:offCRC])
	return crc32.Update(c, castagnoli, rec[offCRC+4:])
}

// unixNano maps the zero time to 0 and any other to its Unix nanoseconds.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

type encoder struct {
	buf []byte
	err error
}

func (e *encoder) str(field, s string, limit int) {
	if len(s) > limit && e.err == nil {
		e.err = fmt.Errorf("label: encode: %s of %d bytes, at most %d", field, len(s), limit)
	}
	e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(len(s)))
	e.buf = append(e.buf, s...)
}

// HasMagic reports whether b starts like a label record (magic only; use
// DecodeRecord to know whether it is valid).
func HasMagic(b []byte) bool { return len(b) >= len(Magic) && string(b[:len(Magic)]) == Magic }

// maxTrustedGeneration bounds generations read from torn headers: a
// damaged header must not push the counter near overflow.
const maxTrustedGeneration = 1 << 62

// headerGeneration returns the generation field of a block that starts
// with the label magic and a sane header, checksum unchecked (a torn
// record's header).
func headerGeneration(b []byte) (uint64, bool) {
	if len(b) < HeaderSize || !HasMagic(b) || binary.LittleEndian.Uint16(b[offVersion:]) != Version ||
		binary.LittleEndian.Uint16(b[offHdrLen:]) != HeaderSize {
		return 0, false
	}
	g := binary.LittleEndian.Uint64(b[offGen:])
	return g, g > 0 && g < maxTrustedGeneration
}

// checkRecord validates the header and checksum of the record at the start
// of b and returns its generation and length. DecodeRecord does this and
// then parses the body.
func checkRecord(b []byte) (uint64, int, error) {
	if len(b) < HeaderSize {
		return 0, 0, fmt.Errorf("%w: %d bytes, header needs %d", ErrCorrupt, len(b), HeaderSize)
	}
	if !HasMagic(b) {
		return 0, 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[:len(Magic)])
	}
	if v := binary.LittleEndian.Uint16(b[offVersion:]); v != Version {
		return 0, 0, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, Version)
	}
	if h := binary.LittleEndian.Uint16(b[offHdrLen:]); h != HeaderSize {
		return 0, 0, fmt.Errorf("%w: header length %d, want %d", ErrCorrupt, h, HeaderSize)
	}
	n := int(binary.LittleEndian.Uint32(b[offRecLen:]))
	if n < BlockSize || n > MaxRecordSize || n%BlockSize != 0 {
		return 0, 0, fmt.Errorf("%w: record length %d", ErrCorrupt, n)
	}
	if n > len(b) {
		return 0, 0, fmt.Errorf("%w: record length %d, only %d bytes", ErrCorrupt, n, len(b))
	}
	rec := b[:n]
	if got, want := checksum(rec), binary.LittleEndian.Uint32(rec[offCRC:]); got != want {
		return 0, 0, fmt.Errorf("%w: crc32c %#08x, header says %#08x", ErrCorrupt, got, want)
	}
	g := binary.LittleEndian.Uint64(rec[offGen:])
	if g == 0 {
		return 0, 0, fmt.Errorf("%w: generation 0", ErrCorrupt)
	}
	return g, n, nil
}

// DecodeRecord decodes the record at the start of b and returns it with
// its length in bytes (a multiple of BlockSize). b may hold more bytes
// after the record. Any damage gives an error wrapping ErrCorrupt; the
// decoder accepts only what Encode produces, byte for byte.
func DecodeRecord(b []byte) (Record, int, error) {
	var r Record
	gen, n, err := checkRecord(b)
	if err != nil {
		return r, 0, err
	}
	rec := b[:n]
	for i := offReserved; i < HeaderSize; i++ {
		if rec[i] != 0 {
			return r, 0, fmt.Errorf("%w: reserved header byte %d is %#x", ErrCorrupt, i, rec[i])
		}
	}
	r.Generation = gen
	r.Time = fromUnixNano(int64(binary.LittleEndian.Uint64(rec[offTime:])))
	bodyLen := int(binary.LittleEndian.Uint32(rec[offBodyLen:]))
	if bodyLen > n-HeaderSize || (n-HeaderSize-bodyLen) >= BlockSize {
		return r, 0, fmt.Errorf("%w: body length %d in a %d-byte record", ErrCorrupt, bodyLen, n)
	}
	d := decoder{b: rec[HeaderSize : HeaderSize+bodyLen]}
	r.State = lifecycle.State(d.str("state", MaxStateLen))
	r.WWN = d.str("wwn", MaxIDLen)
	r.Serial = d.str("serial", MaxIDLen)
	r.Model = d.str("model", MaxIDLen)
	r.Owner = d.str("owner", MaxOwnerLen)
	if pl := int(d.u32()); pl > MaxPayload {
		d.fail(fmt.Errorf("payload of %d bytes, at most %d", pl, MaxPayload))
	} else if p := d.take(pl); len(p) > 0 {
		r.Payload = append([]byte(nil), p...)
	}
	tk := &r.Task
	tk.Kind = d.str("task kind", MaxTaskKind)
	tk.Step = d.str("task step", MaxTaskStep)
	tk.Done, tk.Total = d.u64(), d.u64()
	tk.Started = fromUnixNano(int64(d.u64()))
	tk.Updated = fromUnixNano(int64(d.u64()))
	if tk.Kind == "" && *tk != (Task{}) {
		d.fail(errors.New("task without a kind"))
	}
	s := &r.Summary
	s.Trimmed = d.u32()
	s.Since = fromUnixNano(int64(d.u64()))
	s.Until = fromUnixNano(int64(d.u64()))
	s.Transitions, s.BurnInPass, s.BurnInFail, s.ErasePass, s.EraseFail = d.u32(), d.u32(), d.u32(), d.u32(), d.u32()
	nh := int(d.u16())
	if nh > MaxHistory {
		d.fail(fmt.Errorf("%d history entries, at most %d", nh, MaxHistory))
		nh = 0
	}
	for i := 0; i < nh && d.err == nil; i++ {
		var h Entry
		h.Time = fromUnixNano(int64(d.u64()))
		h.Kind = d.str("history kind", MaxKindLen)
		h.Action = d.str("history action", MaxActionLen)
		h.From = lifecycle.State(d.str("history from", MaxStateLen))
		h.To = lifecycle.State(d.str("history to", MaxStateLen))
		h.Result = d.str("history result", MaxResultLen)
		h.Actor = d.str("history actor", MaxActorLen)
		h.Detail = d.str("history detail", MaxDetailLen)
		if (h.From != "" && !h.From.Valid()) || (h.To != "" && !h.To.Valid()) {
			d.fail(fmt.Errorf("history entry %d: unknown state %q or %q", i, h.From, h.To))
		}
		r.History = append(r.History, h)
	}
	if d.err != nil {
		return Record{}, 0, fmt.Errorf("%w: generation %d: %v", ErrCorrupt, r.Generation, d.err)
	}
	if len(d.b) != 0 {
		return Record{}, 0, fmt.Errorf("%w: generation %d: %d stray bytes after the body", ErrCorrupt, r.Generation, len(d.b))
	}
	if !r.State.Valid() {
		return Record{}, 0, fmt.Errorf("%w: generation %d: unknown state %q", ErrCorrupt, r.Generation, r.State)
	}
	for i, c := range rec[HeaderSize+bodyLen:] {
		if c != 0 {
			return Record{}, 0, fmt.Errorf("%w: generation %d: padding byte %d is %#x", ErrCorrupt, r.Generation, HeaderSize+bodyLen+i, c)
		}
	}
	return r, n, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail(fmt.Errorf("body ends early: need %d bytes, have %d", n, len(d.b)))
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u16() uint16 {
	if p := d.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) str(field string, limit int) string {
	n := int(d.u16())
	if n > limit {
		d.fail(fmt.Errorf("%s of %d bytes, at most %d", field, n, limit))
		return ""
	}
	return string(d.take(n))
}
