package nodeinit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stowage/stowage/image/kmod"
)

// ModuleLoader loads the kernel modules the node's devices ask for: it
// reads every SysRoot/bus/*/devices/*/modalias, matches them against the
// index's modules.alias, and loads the matches with their dependencies
// first, each module once. Loading can reveal new devices (virtio_pci
// makes the virtio bus), so it scans again until a round loads nothing.
type ModuleLoader struct {
	// SysRoot is sysfs; default "/sys".
	SysRoot string
	// Dir is /lib/modules/<version> (required).
	Dir string
	// Load loads one module file; default finit_module(2). EEXIST counts
	// as loaded.
	Load func(path string) error
	// Log gets one line per module and per failure; default discards.
	Log *slog.Logger

	ix     *kmod.Index
	tried  map[string]bool
	loaded []string
}

// maxRounds bounds the scan/load loop.
const maxRounds = 8

// Modaliases returns the distinct modalias strings under sysRoot's buses,
// sorted.
func Modaliases(sysRoot string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(sysRoot, "bus", "*", "devices", "*", "modalias"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a device that went away
		}
		if a := strings.TrimSpace(string(b)); a != "" {
			seen[a] = true
		}
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	slices.Sort(out)
	return out, nil
}

func (l *ModuleLoader) init() error {
	if l.ix != nil {
		return nil
	}
	if l.Dir == "" {
		return errors.New("modules: ModuleLoader.Dir is required")
	}
	if l.SysRoot == "" {
		l.SysRoot = "/sys"
	}
	if l.Log == nil {
		l.Log = slog.New(slog.DiscardHandler)
	}
	if l.Load == nil {
		l.Load = finitModule
	}
	ix, err := kmod.Load(l.Dir)
	if err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	l.ix = ix
	l.tried = map[string]bool{}
	return nil
}

// Wanted returns the modules the present devices match, sorted.
func (l *ModuleLoader) Wanted() ([]string, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	aliases, err := Modaliases(l.SysRoot)
	if err != nil {
		return nil, fmt.Errorf("modules: %w", err)
	}
	seen := map[string]bool{}
	for _, a := range aliases {
		for _, m := range l.ix.Match(a) {
			seen[m] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// LoadAll loads extra (by name) and every module the devices ask for,
// scanning again while new modules got loaded. Failures are logged and
// joined into the error; loading goes on past them. It returns the
// modules loaded by this call, in load order.
func (l *ModuleLoader) LoadAll(ctx context.Context, extra []string) ([]string, error) {
	if err := l.init(); err != nil {
		return nil, err
	}
	start := len(l.loaded)
	var errs []error
	want := slices.Clone(extra)
	for round := 0; round < maxRounds; round++ {
		matched, err := l.Wanted()
		if err != nil {
			return l.loaded[start:], err
		}
		want = append(want, matched...)
		progress := false
		for _, m := range want {
			if ctx.Err() != nil {
				return l.loaded[start:], ctx.Err()
			}
			n, err := l.loadOne(m)
			if err != nil {
				errs = append(errs, err)
			}
			if n > 0 {
				progress = true
			}
		}
		want = nil
		if !progress {
			break
		}
	}
	return l.loaded[start:], errors.Join(errs...)
}

// loadOne loads a module after its dependencies; it returns how many
// modules it loaded.
func (l *ModuleLoader) loadOne(name string) (int, error) {
	name = kmod.Name(name)
	if l.tried[name] {
		return 0, nil
	}
	order, err := l.ix.Resolve(name)
	if err != nil {
		l.tried[name] = true
		l.Log.Warn("module not loadable", "module", name, "err", err)
		return 0, fmt.Errorf("module %s: %w", name, err)
	}
	n := 0
	for _, m := range order {
		if l.tried[m] {
			continue
		}
		l.tried[m] = true
		p, _ := l.ix.Path(m)
		if err := l.Load(filepath.Join(l.Dir, p)); err != nil && !errors.Is(err, unix.EEXIST) {
			l.Log.Warn("module load failed", "module", m, "err", err)
			return n, fmt.Errorf("module %s: %w", m, err)
		}
		l.Log.Debug("module loaded", "module", m)
		l.loaded = append(l.loaded, m)
		n++
	}
	return n, nil
}

// finitModule loads a module file with finit_module(2).
func finitModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil {
		return &os.PathError{Op: "finit_module", Path: path, Err: err}
	}
	return nil
}
