package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// QMP is a client of the QEMU Machine Protocol on a unix socket. It runs
// one command at a time and keeps the events it receives for WaitEvent.
type QMP struct {
	conn net.Conn
	cmd  sync.Mutex // one command in flight

	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced when events or replies arrive
	reply   []qmpMessage
	readErr error
}

// Event is an asynchronous QMP event such as DEVICE_DELETED.
type Event struct {
	Name string
	Data json.RawMessage
}

// QMPError is an error reply to a command.
type QMPError struct {
	Command string
	Class   string
	Desc    string
}

func (e *QMPError) Error() string { return fmt.Sprintf("qmp %s: %s: %s", e.Command, e.Class, e.Desc) }

// qmpMessage is any message QEMU sends.
type qmpMessage struct {
	Greeting *json.RawMessage `json:"QMP,omitempty"`
	Return   *json.RawMessage `json:"return,omitempty"`
	Error    *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error,omitempty"`
	Event string          `json:"event,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// decodeQMP decodes one line QEMU sent and checks it is one of the known
// message kinds.
func decodeQMP(line []byte) (qmpMessage, error) {
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return m, fmt.Errorf("qmp: bad message %.200q: %w", line, err)
	}
	n := 0
	if m.Greeting != nil {
		n++
	}
	if m.Return != nil {
		n++
	}
	if m.Error != nil {
		n++
	}
	if m.Event != "" {
		n++
	}
	if n != 1 {
		return m, fmt.Errorf("qmp: message %.200q is not exactly one of greeting, return, error, event", line)
	}
	return m, nil
}

// DialQMP connects to the QMP socket at path, reads the greeting and
// enters command mode.
func DialQMP(ctx context.Context, path string) (*QMP, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("qmp dial %s: %w", path, err)
	}
	q := &QMP{conn: conn, changed: make(chan struct{})}
	greeted := make(chan error, 1)
	go q.read(greeted)
	select {
	case err := <-greeted:
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("qmp %s: greeting: %w", path, err)
		}
	case <-ctx.Done():
		conn.Close()
		return nil, fmt.Errorf("qmp %s: greeting: %w", path, ctx.Err())
	}
	if _, err := q.Execute(ctx, "qmp_capabilities", nil); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

// read is the reader loop: the first message must be the greeting.
func (q *QMP) read(greeted chan<- error) {
	r := bufio.NewReader(q.conn)
	first := true
	for {
		line, err := r.ReadBytes('\n')
		var m qmpMessage
		if err == nil {
			m, err = decodeQMP(line)
		}
		if err == nil && first {
			first = false
			if m.Greeting == nil {
				err = errors.New("first message is not the QMP greeting")
			}
			greeted <- err
			if err != nil {
				q.fail(err)
				return
			}
			continue
		}
		if err != nil {
			if first {
				greeted <- err
			}
			q.fail(err)
			return
		}
		q.mu.Lock()
		if m.Event != "" {
			q.events = append(q.events, Event{Name: m.Event, Data: m.Data})
		} else if m.Greeting == nil {
			q.reply = append(q.reply, m)
		}
		close(q.changed)
		q.changed = make(chan struct{})
		q.mu.Unlock()
	}
}

func (q *QMP) fail(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.readErr == nil {
		q.readErr = err
	}
	close(q.changed)
	q.changed = make(chan struct{})
}

// Execute runs one command and returns its "return" value.
func (q *QMP) Execute(ctx context.Context, command string, args any) (json.RawMessage, error) {
	q.cmd.Lock()
	defer q.cmd.Unlock()
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetWriteDeadline(dl)
	} else {
		_ = q.conn.SetWriteDeadline(time.Time{})
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		q.mu.Lock()
		if len(q.reply) > 0 {
			m := q.reply[0]
			q.reply = q.reply[1:]
			q.mu.Unlock()
			if m.Error != nil {
				return nil, &QMPError{Command: command, Class: m.Error.Class, Desc: m.Error.Desc}
			}
			return *m.Return, nil
		}
		if q.readErr != nil {
			err := q.readErr
			q.mu.Unlock()
			return nil, fmt.Errorf("qmp %s: connection: %w", command, err)
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("qmp %s: %w", command, ctx.Err())
		}
	}
}

// WaitEvent waits for an event named name for which match (nil: any)
// returns true; events received before the call count too. A matched event
// is consumed.
func (q *QMP) WaitEvent(ctx context.Context, name string, match func(json.RawMessage) bool) (Event, error) {
	for {
		q.mu.Lock()
		for i, e := range q.events {
			if e.Name == name && (match == nil || match(e.Data)) {
				q.events = append(q.events[:i:i], q.events[i+1:]...)
				q.mu.Unlock()
				return e, nil
			}
		}
		if q.readErr != nil {
			err := q.readErr
			q.mu.Unlock()
			return Event{}, fmt.Errorf("qmp: waiting for event %s: %w", name, err)
		}
		ch := q.changed
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Event{}, fmt.Errorf("qmp: waiting for event %s: %w", name, ctx.Err())
		}
	}
}

// Close closes the connection.
func (q *QMP) Close() error { return q.conn.Close() }
