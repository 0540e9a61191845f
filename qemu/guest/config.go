// Package guest holds what runs inside a stowage QEMU test guest: the
// configuration the host hands to the guest init, the init's steps
// (mounts, module loading, waiting for drives, running the test binary,
// power-off), the console markers both sides agree on, and a sysfs reader
// that finds block devices by serial number without udev.
package guest

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ConfigPath is where the host puts the guest configuration inside the initramfs.
const ConfigPath = "/stowage/config.json"

// Marker is the prefix of every console line the guest init prints for the
// host. The host matches it anywhere in a line, since kernel messages can
// share a line with it.
const Marker = "STOWAGE-VM:"

// Marker lines, written as Marker + " " + kind + [" " + argument].
const (
	MarkStart = "start" // the test binary is about to run; argument: boot timing
	MarkBody  = "body"  // the guest side of RunTest is about to run its body; argument: Options.Boot
	MarkExit  = "exit"  // the test binary ended; argument: its exit status
	MarkError = "error" // the init failed before or around the test; argument: why
	MarkUser  = "mark"  // a named point the guest body reached; argument: the name
)

// ExitInitFailed is the status the init reports when it could not run the
// test binary at all.
const ExitInitFailed = 125

// Module is a kernel module for the init to load, in order.
type Module struct {
	Name   string `json:"name"`   // module name, for messages
	Path   string `json:"path"`   // path of the .ko file inside the guest
	Params string `json:"params"` // module parameters, "a=1 b=2"
}

// Config is what the guest init does, written by the host as JSON at ConfigPath.
type Config struct {
	// Modules are loaded in this order (dependencies first).
	Modules []Module `json:"modules"`
	// WaitSerials are serial numbers of block devices the init waits for
	// before it starts the test.
	WaitSerials []string `json:"wait_serials"`
	// WaitTimeout bounds that wait; zero means 60 s.
	WaitTimeout Duration `json:"wait_timeout"`
	// Args is the command to run: Args[0] is the path of the test binary.
	Args []string `json:"args"`
	// Env is the complete environment of the command.
	Env []string `json:"env"`
	// Control, if set, is a serial port ("/dev/ttyS1") the host writes
	// signal lines to. The init opens it raw at boot, so nothing the host
	// sends is lost, and hands it to the command as file descriptor
	// ControlFD.
	Control string `json:"control,omitempty"`
}

// ControlFD is the file descriptor of the control port in the test process.
const ControlFD = 3

// Duration is a time.Duration that reads and writes JSON as a Go duration string.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// ReadConfig reads and checks the guest configuration at path.
func ReadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("guest config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes and checks a guest configuration.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("guest config: %w", err)
	}
	if len(c.Args) == 0 || c.Args[0] == "" {
		return nil, fmt.Errorf("guest config: no command to run (args is empty)")
	}
	for i, m := range c.Modules {
		if m.Path == "" {
			return nil, fmt.Errorf("guest config: module %d (%q) has no path", i, m.Name)
		}
	}
	if c.WaitTimeout < 0 {
		return nil, fmt.Errorf("guest config: negative wait_timeout %v", time.Duration(c.WaitTimeout))
	}
	return &c, nil
}

// MarkLine formats one marker line (without the newline).
func MarkLine(kind, arg string) string {
	if arg == "" {
		return Marker + " " + kind
	}
	return Marker + " " + kind + " " + arg
}

// ParseMark finds a marker in a console line. It returns the kind and the
// argument, and ok=false when the line holds no marker.
func ParseMark(line string) (kind, arg string, ok bool) {
	i := strings.Index(line, Marker)
	if i < 0 {
		return "", "", false
	}
	rest := strings.TrimSpace(line[i+len(Marker):])
	if rest == "" {
		return "", "", false
	}
	kind, arg, _ = strings.Cut(rest, " ")
	return kind, strings.TrimSpace(arg), true
}

// ParseExit reads the exit status argument of a MarkExit line.
func ParseExit(arg string) (int, error) {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return 0, fmt.Errorf("exit marker: bad status %q: %w", arg, err)
	}
	return n, nil
}

// Marshal encodes the config as the host writes it to ConfigPath.
func (c *Config) Marshal() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }
