package netboot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"text/template"
)

// Profile names a machine can be given. The set is closed: a profile file
// that names anything else is refused on load.
const (
	ProfileStorage = "storage"
	ProfileBurnin  = "burnin"
	ProfileErase   = "erase"
	ProfileRescue  = "rescue"
)

// KnownProfiles lists the profile names in a stable order.
var KnownProfiles = []string{ProfileStorage, ProfileBurnin, ProfileErase, ProfileRescue}

func knownProfile(name string) bool {
	for _, p := range KnownProfiles {
		if p == name {
			return true
		}
	}
	return false
}

// FileProfile is one profile as written in the profile file. Kernel, every
// Initrd entry and Cmdline are Go text/templates executed with TemplateData.
// Kernel and Initrd, once executed, are either a path relative to the files
// root (served by this server under /boot/{mac}/...) or an absolute http(s)
// URL handed to iPXE unchanged.
type FileProfile struct {
	Kernel  string   `json:"kernel"`
	Initrd  []string `json:"initrd"`
	Cmdline string   `json:"cmdline"`
}

// File is the profile file: profiles by name, machines by MAC or MAC
// prefix, and the profile for machines it does not list ("" = ignore them).
type File struct {
	Default  string                 `json:"default"`
	Profiles map[string]FileProfile `json:"profiles"`
	Machines map[string]string      `json:"machines"`
}

// TemplateData is what the kernel, initrd and cmdline templates see.
type TemplateData struct {
	MAC       string // the machine's MAC, lower case, colon separated
	ServerURL string // this server's base URL, e.g. http://10.0.0.1:8080
	Profile   string // the profile's name
}

type compiledProfile struct {
	name    string
	raw     FileProfile
	kernel  *template.Template
	initrd  []*template.Template
	cmdline *template.Template
}

// Profiles is a validated, compiled profile file. It is immutable and safe
// for concurrent use.
type Profiles struct {
	def      string
	profiles map[string]*compiledProfile
	exact    map[string]string // normalised MAC -> profile
	prefixes []macPrefix       // longest first
}

type macPrefix struct {
	prefix  string // normalised, e.g. "52:54:00"
	profile string
}

// NormalizeMAC returns the lower-case, colon-separated form of a MAC
// address or MAC prefix of 1 to 6 octets ("52-54-00", "5254.00ab.cdef" and
// "52:54:00:AB:CD:EF" are accepted), or an error saying what is wrong.
func NormalizeMAC(s string) (string, error) {
	if hw, err := net.ParseMAC(s); err == nil {
		if len(hw) != 6 {
			return "", fmt.Errorf("MAC %q: %d octets, want 6", s, len(hw))
		}
		return hw.String(), nil
	}
	sep := ":"
	if strings.Contains(s, "-") {
		sep = "-"
	}
	parts := strings.Split(s, sep)
	if len(parts) < 1 || len(parts) > 6 {
		return "", fmt.Errorf("MAC %q: want 1 to 6 octets", s)
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		if len(p) != 2 || !isHex(p[0]) || !isHex(p[1]) {
			return "", fmt.Errorf("MAC %q: octet %d (%q) is not two hex digits", s, i+1, p)
		}
		out[i] = strings.ToLower(p)
	}
	return strings.Join(out, ":"), nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// ParseProfiles decodes and validates a profile file. files, when not nil,
// is the files root: every kernel and initrd that is a relative path must
// exist there (checked with the MAC 00:00:00:00:00:00 and an empty server
// URL; a reference whose template has actions is checked for syntax only).
// Errors name the field at fault.
func ParseProfiles(data []byte, files fs.FS) (*Profiles, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("profile file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("profile file: trailing data after the JSON object")
	}
	return compile(f, files)
}

func compile(f File, files fs.FS) (*Profiles, error) {
	p := &Profiles{
		def:      f.Default,
		profiles: make(map[string]*compiledProfile),
		exact:    make(map[string]string),
	}
	if len(f.Profiles) == 0 {
		return nil, errors.New("profile file: no profiles")
	}
	names := make([]string, 0, len(f.Profiles))
	for name := range f.Profiles {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fp := f.Profiles[name]
		if !knownProfile(name) {
			return nil, fmt.Errorf("profile %q: unknown profile name (want one of %s)", name, strings.Join(KnownProfiles, ", "))
		}
		cp, err := compileProfile(name, fp)
		if err != nil {
			return nil, err
		}
		if files != nil {
			if err := cp.checkFiles(files); err != nil {
				return nil, err
			}
		}
		p.profiles[name] = cp
	}
	if f.Default != "" {
		if _, ok := p.profiles[f.Default]; !ok {
			return nil, fmt.Errorf("default: profile %q is not defined", f.Default)
		}
	}
	macs := make([]string, 0, len(f.Machines))
	for m := range f.Machines {
		macs = append(macs, m)
	}
	sort.Strings(macs)
	seen := make(map[string]string)
	for _, m := range macs {
		prof := f.Machines[m]
		norm, err := NormalizeMAC(m)
		if err != nil {
			return nil, fmt.Errorf("machines: %w", err)
		}
		if _, ok := p.profiles[prof]; !ok {
			return nil, fmt.Errorf("machines: %s: profile %q is not defined", m, prof)
		}
		if other, dup := seen[norm]; dup {
			return nil, fmt.Errorf("machines: %s and %s are the same address", other, m)
		}
		seen[norm] = m
		if len(norm) == len("00:00:00:00:00:00") {
			p.exact[norm] = prof
		} else {
			p.prefixes = append(p.prefixes, macPrefix{prefix: norm, profile: prof})
		}
	}
	sort.SliceStable(p.prefixes, func(i, j int) bool { return len(p.prefixes[i].prefix) > len(p.prefixes[j].prefix) })
	return p, nil
}

func compileProfile(name string, fp FileProfile) (*compiledProfile, error) {
	if fp.Kernel == "" {
		return nil, fmt.Errorf("profile %q: kernel is empty", name)
	}
	cp := &compiledProfile{name: name, raw: fp}
	var err error
	if cp.kernel, err = template.New(name + ".kernel").Option("missingkey=error").Parse(fp.Kernel); err != nil {
		return nil, fmt.Errorf("profile %q: kernel template: %w", name, err)
	}
	for i, s := range fp.Initrd {
		if s == "" {
			return nil, fmt.Errorf("profile %q: initrd[%d] is empty", name, i)
		}
		t, err := template.New(fmt.Sprintf("%s.initrd%d", name, i)).Option("missingkey=error").Parse(s)
		if err != nil {
			return nil, fmt.Errorf("profile %q: initrd[%d] template: %w", name, i, err)
		}
		cp.initrd = append(cp.initrd, t)
	}
	if cp.cmdline, err = template.New(name + ".cmdline").Option("missingkey=error").Parse(fp.Cmdline); err != nil {
		return nil, fmt.Errorf("profile %q: cmdline template: %w", name, err)
	}
	// Execute once with placeholder data so a template that refers to a
	// field that does not exist fails now, not when a machine boots.
	if _, err := cp.render(TemplateData{MAC: "00:00:00:00:00:00", ServerURL: "http://0.0.0.0", Profile: name}); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *compiledProfile) checkFiles(files fs.FS) error {
	b, err := cp.render(TemplateData{MAC: "00:00:00:00:00:00", ServerURL: "http://0.0.0.0", Profile: cp.name})
	if err != nil {
		return err
	}
	check := func(what, raw, ref string) error {
		// A reference that depends on the machine is checked when the
		// machine boots; a fixed one must exist now.
		if isURL(ref) || strings.Contains(raw, "{{") {
			return nil
		}
		st, err := fs.Stat(files, ref)
		if err != nil {
			return fmt.Errorf("profile %q: %s %q: %w", cp.name, what, ref, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("profile %q: %s %q: not a regular file", cp.name, what, ref)
		}
		return nil
	}
	if err := check("kernel", cp.raw.Kernel, b.Kernel); err != nil {
		return err
	}
	for i, r := range b.Initrd {
		if err := check(fmt.Sprintf("initrd[%d]", i), cp.raw.Initrd[i], r); err != nil {
			return err
		}
	}
	return nil
}

// Boot is what one machine boots: a profile name, a kernel, initrds and a
// kernel command line. Kernel and Initrd are paths relative to the files
// root or absolute http(s) URLs.
type Boot struct {
	Profile string   `json:"profile"`
	Kernel  string   `json:"kernel"`
	Initrd  []string `json:"initrd"`
	Cmdline string   `json:"cmdline"`
}

func (cp *compiledProfile) render(d TemplateData) (Boot, error) {
	exec := func(what string, t *template.Template) (string, error) {
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return "", fmt.Errorf("profile %q: %s: %w", cp.name, what, err)
		}
		return strings.TrimSpace(buf.String()), nil
	}
	b := Boot{Profile: cp.name}
	var err error
	if b.Kernel, err = exec("kernel", cp.kernel); err != nil {
		return Boot{}, err
	}
	if err := checkRef("kernel", cp.name, b.Kernel); err != nil {
		return Boot{}, err
	}
	for i, t := range cp.initrd {
		s, err := exec(fmt.Sprintf("initrd[%d]", i), t)
		if err != nil {
			return Boot{}, err
		}
		if err := checkRef(fmt.Sprintf("initrd[%d]", i), cp.name, s); err != nil {
			return Boot{}, err
		}
		b.Initrd = append(b.Initrd, s)
	}
	if b.Cmdline, err = exec("cmdline", cp.cmdline); err != nil {
		return Boot{}, err
	}
	if strings.ContainsAny(b.Cmdline, "\r\n") {
		return Boot{}, fmt.Errorf("profile %q: cmdline contains a line break", cp.name)
	}
	return b, nil
}

// checkRef refuses a kernel or initrd that is neither an http(s) URL nor a
// clean relative path inside the files root.
func checkRef(what, profile, ref string) error {
	if ref == "" {
		return fmt.Errorf("profile %q: %s is empty", profile, what)
	}
	if strings.ContainsAny(ref, " \t\r\n") {
		return fmt.Errorf("profile %q: %s %q contains white space", profile, what, ref)
	}
	if strings.Contains(ref, "://") {
		u, err := url.Parse(ref)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("profile %q: %s %q: want a relative path or an http(s) URL", profile, what, ref)
		}
		return nil
	}
	if !fs.ValidPath(ref) || path.Clean(ref) != ref {
		return fmt.Errorf("profile %q: %s %q: not a clean relative path inside the files root", profile, what, ref)
	}
	return nil
}

func isURL(ref string) bool {
	return strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://")
}

// Match returns the profile name for a MAC: its exact entry, else the
// longest matching prefix, else the default. ok is false when the machine
// is unknown and there is no default (it must be ignored).
func (p *Profiles) Match(mac net.HardwareAddr) (profile string, ok bool) {
	s := mac.String()
	if prof, ok := p.exact[s]; ok {
		return prof, true
	}
	for _, px := range p.prefixes {
		if strings.HasPrefix(s, px.prefix+":") {
			return px.profile, true
		}
	}
	if p.def != "" {
		return p.def, true
	}
	return "", false
}

// Boot renders the boot for a MAC. ok is false when the machine is to be
// ignored.
func (p *Profiles) Boot(mac net.HardwareAddr, serverURL string) (Boot, bool, error) {
	name, ok := p.Match(mac)
	if !ok {
		return Boot{}, false, nil
	}
	b, err := p.profiles[name].render(TemplateData{MAC: mac.String(), ServerURL: serverURL, Profile: name})
	if err != nil {
		return Boot{}, false, err
	}
	return b, true, nil
}

// LoadProfiles reads and validates a profile file from disk.
func LoadProfiles(file string, files fs.FS) (*Profiles, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := ParseProfiles(data, files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}
