package netboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Source decides what a machine boots. ok is false when the machine must be
// ignored (unknown and no default).
type Source interface {
	Boot(ctx context.Context, mac net.HardwareAddr) (b Boot, ok bool, err error)
}

// FileSource serves boots from a profile file and reloads it when it
// changes on disk. A bad edit is logged and the last good profiles stay in
// force.
type FileSource struct {
	path      string
	files     fs.FS
	serverURL string
	log       *slog.Logger
	onReload  func(ok bool)

	mu      sync.RWMutex
	cur     *Profiles
	modTime time.Time
	size    int64
	sum     [sha256.Size]byte
}

// FileSourceConfig configures a FileSource. Zero values: no files check,
// slog.Default, no reload hook.
type FileSourceConfig struct {
	Path      string       // the profile file
	Files     fs.FS        // the files root kernels and initrds are checked against
	ServerURL string       // passed to templates as .ServerURL
	Log       *slog.Logger // where reloads and bad edits are logged
	OnReload  func(ok bool)
}

// NewFileSource loads the profile file; it fails if the first load fails.
func NewFileSource(c FileSourceConfig) (*FileSource, error) {
	s := &FileSource{path: c.Path, files: c.Files, serverURL: c.ServerURL, log: c.Log, onReload: c.OnReload}
	if s.log == nil {
		s.log = slog.Default()
	}
	st, err := os.Stat(c.Path)
	if err != nil {
		return nil, fmt.Errorf("profile file: %w", err)
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return nil, fmt.Errorf("profile file: %w", err)
	}
	p, err := ParseProfiles(data, c.Files)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Path, err)
	}
	s.cur, s.modTime, s.size, s.sum = p, st.ModTime(), st.Size(), sha256.Sum256(data)
	return s, nil
}

// Profiles returns the profiles in force.
func (s *FileSource) Profiles() *Profiles {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

// Boot implements Source.
func (s *FileSource) Boot(_ context.Context, mac net.HardwareAddr) (Boot, bool, error) {
	return s.Profiles().Boot(mac, s.serverURL)
}

// Check reloads the profile file if its size, modification time or content
// changed since the last look. It returns whether new profiles took effect,
// and the error that kept a changed file from taking effect.
func (s *FileSource) Check() (bool, error) {
	st, err := os.Stat(s.path)
	if err != nil {
		s.mu.Lock()
		missingBefore := s.size < 0
		s.size = -1
		s.mu.Unlock()
		if !missingBefore {
			s.log.Error("profile file unreadable; keeping the last good profiles", "file", s.path, "err", err)
			s.hook(false)
		}
		return false, err
	}
	s.mu.RLock()
	same := st.ModTime().Equal(s.modTime) && st.Size() == s.size
	s.mu.RUnlock()
	if same {
		return false, nil
	}
	data, err := os.ReadFile(s.path)
	if err != nil {
		return false, err
	}
	sum := sha256.Sum256(data)
	s.mu.Lock()
	s.modTime, s.size = st.ModTime(), st.Size()
	unchanged := sum == s.sum
	s.sum = sum
	s.mu.Unlock()
	if unchanged {
		return false, nil
	}
	p, err := ParseProfiles(data, s.files)
	if err != nil {
		err = fmt.Errorf("%s: %w", s.path, err)
		s.log.Error("profile file rejected; keeping the last good profiles", "file", s.path, "err", err)
		s.hook(false)
		return false, err
	}
	s.mu.Lock()
	s.cur = p
	s.mu.Unlock()
	s.log.Info("profile file reloaded", "file", s.path)
	s.hook(true)
	return true, nil
}

func (s *FileSource) hook(ok bool) {
	if s.onReload != nil {
		s.onReload(ok)
	}
}

// Watch calls Check every interval until ctx is done.
func (s *FileSource) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = s.Check() // logged inside
		}
	}
}

// APISource asks a pixiecore-compatible API: GET <base>/v1/boot/<mac>
// answers 200 with {"kernel": ..., "initrd": [...], "cmdline": ...} to boot
// the machine and 404 to ignore it. Relative kernel and initrd URLs are
// resolved against the API's base URL.
type APISource struct {
	base   *url.URL
	client *http.Client
}

// maxAPIBody bounds an API answer: a boot spec is a few hundred bytes.
const maxAPIBody = 1 << 20

// NewAPISource returns a source that asks the API at base. client nil means
// a client with a 10 s timeout.
func NewAPISource(base string, client *http.Client) (*APISource, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("api URL %q: %w", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("api URL %q: want http(s)://host[:port][/path]", base)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &APISource{base: u, client: client}, nil
}

type apiBoot struct {
	Kernel  string   `json:"kernel"`
	Initrd  []string `json:"initrd"`
	Cmdline string   `json:"cmdline"`
}

// ProfileAPI is the profile name reported for boots decided by an API.
const ProfileAPI = "api"

// Boot implements Source.
func (a *APISource) Boot(ctx context.Context, mac net.HardwareAddr) (Boot, bool, error) {
	u := a.base.JoinPath("v1", "boot", mac.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Boot{}, false, fmt.Errorf("api %s: %w", u, err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return Boot{}, false, fmt.Errorf("api: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody+1))
	if err != nil {
		return Boot{}, false, fmt.Errorf("api %s: reading answer: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return Boot{}, false, nil
	case resp.StatusCode != http.StatusOK:
		return Boot{}, false, fmt.Errorf("api %s: status %s", u, resp.Status)
	case len(body) > maxAPIBody:
		return Boot{}, false, fmt.Errorf("api %s: answer longer than %d bytes", u, maxAPIBody)
	}
	var ab apiBoot
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ab); err != nil {
		return Boot{}, false, fmt.Errorf("api %s: bad answer: %w", u, err)
	}
	if ab.Kernel == "" {
		return Boot{}, false, fmt.Errorf("api %s: answer has no kernel", u)
	}
	if strings.ContainsAny(ab.Cmdline, "\r\n") {
		return Boot{}, false, fmt.Errorf("api %s: cmdline contains a line break", u)
	}
	b := Boot{Profile: ProfileAPI, Cmdline: ab.Cmdline}
	if b.Kernel, err = a.resolve(ab.Kernel); err != nil {
		return Boot{}, false, fmt.Errorf("api %s: kernel: %w", u, err)
	}
	for i, s := range ab.Initrd {
		r, err := a.resolve(s)
		if err != nil {
			return Boot{}, false, fmt.Errorf("api %s: initrd[%d]: %w", u, i, err)
		}
		b.Initrd = append(b.Initrd, r)
	}
	return b, true, nil
}

func (a *APISource) resolve(ref string) (string, error) {
	r, err := url.Parse(ref)
	if err != nil {
		return "", err
	}
	abs := a.base.ResolveReference(r)
	if abs.Scheme != "http" && abs.Scheme != "https" {
		return "", errors.New("not an http(s) URL: " + ref)
	}
	s := abs.String()
	if strings.ContainsAny(s, " \t\r\n") {
		return "", errors.New("URL contains white space: " + ref)
	}
	return s, nil
}
