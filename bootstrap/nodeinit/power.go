package nodeinit

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
)

// Linux input event constants (linux/input-event-codes.h).
const (
	evKey     = 0x01
	keyPower  = 116
	eventSize = 24 // struct input_event on 64-bit: timeval(16) type(2) code(2) value(4)
)

// IsPowerPress reports whether one struct input_event is a press of the
// power key (what the ACPI power button sends through evdev).
func IsPowerPress(ev []byte) bool {
	if len(ev) != eventSize {
		return false
	}
	typ := binary.LittleEndian.Uint16(ev[16:])
	code := binary.LittleEndian.Uint16(ev[18:])
	value := int32(binary.LittleEndian.Uint32(ev[20:]))
	return typ == evKey && code == keyPower && value == 1
}

// WatchPowerButton reads every devRoot/input/event* device and calls
// pressed once when one of them reports a power key press. It returns
// when ctx ends (the devices are closed then).
func WatchPowerButton(ctx context.Context, devRoot string, pressed func()) {
	paths, _ := filepath.Glob(filepath.Join(devRoot, "input", "event*"))
	fired := make(chan struct{}, 1)
	var files []*os.File
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		files = append(files, f)
		go func(r io.Reader) {
			buf := make([]byte, eventSize)
			for {
				if _, err := io.ReadFull(r, buf); err != nil {
					return
				}
				if IsPowerPress(buf) {
					select {
					case fired <- struct{}{}:
					default:
					}
				}
			}
		}(f)
	}
	select {
	case <-fired:
		pressed()
	case <-ctx.Done():
	}
	for _, f := range files {
		f.Close()
	}
}
