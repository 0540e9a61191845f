package qemu

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"
)

// console collects the guest's serial output line by line.
type console struct {
	copyTo io.Writer

	mu      sync.Mutex
	all     strings.Builder
	partial string
	lines   []string
	times   []time.Time // when each line arrived
	changed chan struct{}
	closed  bool
}

func newConsole(copyTo io.Writer) *console {
	return &console{copyTo: copyTo, changed: make(chan struct{})}
}

// Write takes raw console bytes.
func (c *console) Write(p []byte) (int, error) {
	if c.copyTo != nil {
		_, _ = c.copyTo.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all.Write(p)
	s := c.partial + string(p)
	parts := strings.Split(s, "\n")
	c.partial = parts[len(parts)-1]
	added := false
	now := time.Now()
	for _, l := range parts[:len(parts)-1] {
		c.lines = append(c.lines, strings.TrimRight(l, "\r"))
		c.times = append(c.times, now)
		added = true
	}
	if added {
		close(c.changed)
		c.changed = make(chan struct{})
	}
	return len(p), nil
}

func (c *console) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.partial != "" {
		c.lines = append(c.lines, strings.TrimRight(c.partial, "\r"))
		c.times = append(c.times, time.Now())
		c.partial = ""
	}
	c.closed = true
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all.String()
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	out := strings.Join(l, "\n")
	if c.partial != "" {
		out += "\n" + c.partial
	}
	return out
}

// errConsoleClosed says QEMU exited before the awaited line came.
var errConsoleClosed = errors.New("the guest's console closed (QEMU exited)")

func (c *console) wait(ctx context.Context, match func(string) bool) (string, error) {
	next := 0
	for {
		c.mu.Lock()
		for ; next < len(c.lines); next++ {
			if match(c.lines[next]) {
				l := c.lines[next]
				c.mu.Unlock()
				return l, nil
			}
		}
		if c.closed {
			c.mu.Unlock()
			return "", errConsoleClosed
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// find returns the first line so far that satisfies match and when it came.
func (c *console) find(match func(string) bool) (string, time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range c.lines {
		if match(l) {
			return l, c.times[i], true
		}
	}
	return "", time.Time{}, false
}
