package nodeinit

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the node's configuration, read from the kernel command line
// (stowage.* keys). The zero value is not valid; DefaultConfig gives the
// defaults.
type Config struct {
	// Net is "dhcp" (every NIC with a link) or "none". Key stowage.net.
	Net string
	// DHCPTimeout bounds the whole network bring-up. Key stowage.dhcp.timeout.
	DHCPTimeout time.Duration
	// HwmgrListen is hwmgr's API address. Key stowage.hwmgr.listen.
	HwmgrListen string
	// OSDListen is the OSD's API address. Key stowage.osd.listen.
	OSDListen string
	// OSDDevices is the OSD's -devices: "auto" (every whole disk), or
	// comma-separated /dev paths or globs, or "conventional": the init
	// lists the whole disks that are not zoned when the OSD starts (the
	// QEMU lab's ZNS namespaces lose their zone state when QEMU
	// restarts). Key stowage.osd.devices.
	OSDDevices string
	// AdminTokens and ReadTokens are hwmgr's bearer tokens
	// (comma-separated). Keys stowage.token (admin) and stowage.read_token.
	AdminTokens, ReadTokens []string
	// Rescue starts the rescue shell on the console at boot. Key
	// stowage.rescue (1/0, true/false, yes/no, or bare).
	Rescue bool
	// Modules are loaded at boot beside those the devices ask for
	// (comma-separated). Key stowage.modules.
	Modules []string
	// Hostname of the node. Key stowage.hostname.
	Hostname string
	// ConfigURL, when set, is fetched once the network is up: an
	// http(s) document of stowage.* words (same syntax as the command
	// line) applied over this config. Key stowage.config_url.
	ConfigURL string
}

// DefaultConfig is the configuration with no stowage.* key.
func DefaultConfig() Config {
	return Config{Net: "dhcp", DHCPTimeout: 20 * time.Second, HwmgrListen: ":9741", OSDListen: ":9742", OSDDevices: "auto", Hostname: "stowage"}
}

// Keys lists the stowage.* keys the command line may hold.
var keys = []string{
	"stowage.net", "stowage.dhcp.timeout", "stowage.hwmgr.listen", "stowage.osd.listen", "stowage.osd.devices", "stowage.token",
	"stowage.read_token", "stowage.rescue", "stowage.modules", "stowage.hostname", "stowage.config_url",
}

// SplitCmdline splits a kernel command line into words the way the kernel
// does: spaces separate words, double quotes group (and are removed).
func SplitCmdline(s string) []string {
	var words []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if have {
				words = append(words, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		words = append(words, cur.String())
	}
	return words
}

// ParseCmdline reads the stowage.* keys of a kernel command line (other
// words are ignored). Every bad key or value is reported in the error,
// joined; the returned Config keeps the default for each of them, so the
// node still boots.
func ParseCmdline(cmdline string) (Config, error) {
	return DefaultConfig().Apply(cmdline)
}

// Apply reads the stowage.* words of text over c, like ParseCmdline does
// over the defaults: a bad key or value is reported and leaves c's value.
func (c Config) Apply(text string) (Config, error) {
	var errs []error
	bad := func(key, val, why string) {
		errs = append(errs, fmt.Errorf("kernel command line: %s=%q: %s", key, val, why))
	}
	for _, w := range SplitCmdline(text) {
		key, val, hasVal := strings.Cut(w, "=")
		if !strings.HasPrefix(key, "stowage.") {
			continue
		}
		switch key {
		case "stowage.net":
			if val != "dhcp" && val != "none" {
				bad(key, val, "want dhcp or none")
				continue
			}
			c.Net = val
		case "stowage.dhcp.timeout":
			d, err := time.ParseDuration(val)
			if err != nil || d < time.Second || d > 10*time.Minute {
				bad(key, val, "want a duration from 1s to 10m, e.g. 20s")
				continue
			}
			c.DHCPTimeout = d
		case "stowage.hwmgr.listen":
			if err := checkListen(val); err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.HwmgrListen = val
		case "stowage.osd.listen":
			if err := checkListen(val); err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.OSDListen = val
		case "stowage.osd.devices":
			if err := checkDevices(val); err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.OSDDevices = val
		case "stowage.token", "stowage.read_token":
			toks, err := splitTokens(val)
			if err != nil {
				bad(key, val, err.Error())
				continue
			}
			if key == "stowage.token" {
				c.AdminTokens = toks
			} else {
				c.ReadTokens = toks
			}
		case "stowage.rescue":
			if !hasVal {
				c.Rescue = true
				continue
			}
			b, err := parseBool(val)
			if err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.Rescue = b
		case "stowage.modules":
			mods, err := splitModules(val)
			if err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.Modules = mods
		case "stowage.hostname":
			if err := checkHostname(val); err != nil {
				bad(key, val, err.Error())
				continue
			}
			c.Hostname = val
		case "stowage.config_url":
			u, err := url.Parse(val)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(key, val, "want an http:// or https:// URL")
				continue
			}
			c.ConfigURL = val
		default:
			errs = append(errs, fmt.Errorf("kernel command line: unknown key %q (known: %s)", key, strings.Join(keys, ", ")))
		}
	}
	return c, errors.Join(errs...)
}

// Cmdline renders the config as stowage.* words that ParseCmdline reads
// back to the same Config.
func (c Config) Cmdline() string {
	w := []string{
		"stowage.net=" + c.Net,
		"stowage.dhcp.timeout=" + c.DHCPTimeout.String(),
		"stowage.hwmgr.listen=" + c.HwmgrListen,
		"stowage.osd.listen=" + c.OSDListen,
		"stowage.osd.devices=" + c.OSDDevices,
		"stowage.rescue=" + strconv.FormatBool(c.Rescue),
		"stowage.hostname=" + c.Hostname,
	}
	if len(c.AdminTokens) > 0 {
		w = append(w, "stowage.token="+strings.Join(c.AdminTokens, ","))
	}
	if len(c.ReadTokens) > 0 {
		w = append(w, "stowage.read_token="+strings.Join(c.ReadTokens, ","))
	}
	if len(c.Modules) > 0 {
		w = append(w, "stowage.modules="+strings.Join(c.Modules, ","))
	}
	if c.ConfigURL != "" {
		w = append(w, `"stowage.config_url=`+c.ConfigURL+`"`)
	}
	return strings.Join(w, " ")
}

func checkListen(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return errors.New("want HOST:PORT or :PORT")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return errors.New("port must be 1-65535")
	}
	if host != "" && net.ParseIP(host) == nil {
		return errors.New("host must be an IP address or empty")
	}
	return nil
}

// checkDevices accepts "auto" or comma-separated absolute /dev paths
// (globs allowed) without spaces or quotes.
func checkDevices(v string) error {
	if v == "auto" || v == "conventional" {
		return nil
	}
	for _, p := range strings.Split(v, ",") {
		if !strings.HasPrefix(p, "/dev/") || strings.ContainsAny(p, " \t\"'") || strings.Contains(p, "..") {
			return errors.New("want auto, conventional or comma-separated /dev/... paths or globs")
		}
	}
	return nil
}

func splitTokens(v string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(v, ",") {
		if t == "" {
			return nil, errors.New("empty token")
		}
		for _, r := range t {
			if r <= ' ' || r > '~' || r == '"' {
				return nil, errors.New("tokens are printable ASCII without spaces or quotes")
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("want 1/0, true/false, yes/no or on/off")
}

func splitModules(v string) ([]string, error) {
	var out []string
	for _, m := range strings.Split(v, ",") {
		if m == "" || len(m) > 64 || strings.IndexFunc(m, func(r rune) bool {
			return !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) >= 0 {
			return nil, fmt.Errorf("bad module name %q", m)
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func checkHostname(v string) error {
	if v == "" || len(v) > 63 || v[0] == '-' || v[len(v)-1] == '-' {
		return errors.New("want 1-63 letters, digits or '-', not starting or ending with '-'")
	}
	for _, r := range v {
		if !(r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return errors.New("want 1-63 letters, digits or '-', not starting or ending with '-'")
		}
	}
	return nil
}
