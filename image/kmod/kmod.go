// Package kmod reads a kernel's module index (modules.dep, modules.alias,
// modules.builtin) and answers the two questions an image builder and an
// init ask: which files does loading module M need, in what order, and
// which modules does a device with modalias A want.
//
// The formats are depmod's text files:
//
//	modules.dep:     kernel/drivers/nvme/host/nvme.ko: kernel/drivers/nvme/host/nvme-core.ko
//	modules.alias:   alias pci:v*d*sv*sd*bc01sc08i02* nvme
//	modules.builtin: kernel/drivers/block/virtio_blk.ko
//
// Module names are normalised: '-' and '_' are the same to the kernel.
package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Name normalises a module name or path: the directory and the .ko (and
// any compression) suffix are dropped and '-' becomes '_'.
func Name(s string) string {
	s = path.Base(s)
	if i := strings.LastIndex(s, ".ko"); i >= 0 && (i+3 == len(s) || s[i+3] == '.') {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// Alias is one line of modules.alias.
type Alias struct {
	Pattern string // a glob over modalias strings (*, ?, [...])
	Module  string // normalised name
}

// Index is a kernel's module index. Build one with Load or Parse*.
type Index struct {
	path    map[string]string   // name -> path relative to the modules dir
	deps    map[string][]string // name -> direct dependencies (names)
	builtin map[string]bool
	aliases []Alias
}

// Load reads modules.dep (required), modules.alias and modules.builtin
// (optional) from dir, a /lib/modules/<version> directory.
func Load(dir string) (*Index, error) {
	ix := newIndex()
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("kmod: %w", err)
	}
	defer f.Close()
	if err := ix.ParseDep(f); err != nil {
		return nil, fmt.Errorf("kmod: %s: %w", f.Name(), err)
	}
	for _, opt := range []struct {
		name  string
		parse func(io.Reader) error
	}{{"modules.alias", ix.ParseAlias}, {"modules.builtin", ix.ParseBuiltin}} {
		g, err := os.Open(filepath.Join(dir, opt.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("kmod: %w", err)
		}
		err = opt.parse(g)
		g.Close()
		if err != nil {
			return nil, fmt.Errorf("kmod: %s: %w", g.Name(), err)
		}
	}
	return ix, nil
}

// New returns an empty index.
func New() *Index { return newIndex() }

func newIndex() *Index {
	return &Index{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
}

func scanLines(r io.Reader, fn func(n int, line string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return sc.Err()
}

// ParseDep adds the "path: dep dep ..." lines of a modules.dep.
func (ix *Index) ParseDep(r io.Reader) error {
	return scanLines(r, func(n int, line string) error {
		p, rest, ok := strings.Cut(line, ":")
		p = strings.TrimSpace(p)
		if !ok || p == "" || Name(p) == "" {
			return fmt.Errorf("line %d: want \"module.ko: deps...\", got %q", n, line)
		}
		var deps []string
		for _, d := range strings.Fields(rest) {
			if Name(d) == "" {
				return fmt.Errorf("line %d: dependency %q has no name", n, d)
			}
			deps = append(deps, Name(d))
		}
		ix.path[Name(p)] = p
		ix.deps[Name(p)] = deps
		return nil
	})
}

// ParseAlias adds the "alias PATTERN module" lines of a modules.alias.
func (ix *Index) ParseAlias(r io.Reader) error {
	return scanLines(r, func(n int, line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return fmt.Errorf("line %d: want \"alias PATTERN MODULE\", got %q", n, line)
		}
		if _, err := path.Match(f[1], ""); err != nil {
			return fmt.Errorf("line %d: bad pattern %q: %w", n, f[1], err)
		}
		ix.aliases = append(ix.aliases, Alias{Pattern: f[1], Module: Name(f[2])})
		return nil
	})
}

// ParseBuiltin adds the module paths of a modules.builtin.
func (ix *Index) ParseBuiltin(r io.Reader) error {
	return scanLines(r, func(_ int, line string) error {
		ix.builtin[Name(line)] = true
		return nil
	})
}

// Builtin reports whether the module is built into the kernel.
func (ix *Index) Builtin(name string) bool { return ix.builtin[Name(name)] }

// Path returns the module file's path relative to the modules directory.
func (ix *Index) Path(name string) (string, bool) {
	p, ok := ix.path[Name(name)]
	return p, ok
}

// Deps returns the direct dependencies of a module.
func (ix *Index) Deps(name string) []string { return ix.deps[Name(name)] }

// Aliases returns every alias, in file order.
func (ix *Index) Aliases() []Alias { return ix.aliases }

// Resolve returns the modules to load for names, dependencies first, each
// once, leaving out built-in ones. A module neither in modules.dep nor
// built in is an error, and so is a dependency cycle.
func (ix *Index) Resolve(names ...string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, chain []string) error
	visit = func(n string, chain []string) error {
		switch state[n] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("module %s: dependency cycle %s", n, strings.Join(append(chain, n), " -> "))
		}
		if _, ok := ix.path[n]; !ok {
			if ix.builtin[n] {
				state[n] = 2
				return nil
			}
			return fmt.Errorf("module %s: not in modules.dep and not built in", n)
		}
		state[n] = 1
		for _, d := range ix.deps[n] {
			if err := visit(d, append(chain, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(Name(n), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Match returns the modules whose aliases match a device's modalias,
// sorted and without duplicates. Matching follows the kernel's fnmatch:
// '*', '?' and bracket classes.
func (ix *Index) Match(modalias string) []string {
	modalias = strings.TrimSpace(modalias)
	if modalias == "" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, a := range ix.aliases {
		if seen[a.Module] {
			continue
		}
		if ok, _ := path.Match(a.Pattern, modalias); ok {
			seen[a.Module] = true
			out = append(out, a.Module)
		}
	}
	sort.Strings(out)
	return out
}

// Subset returns the modules.dep and modules.alias texts restricted to the
// given modules (which must be closed under dependencies), in a stable
// order: what an image ships beside its modules.
func (ix *Index) Subset(names []string) (dep, alias []byte, err error) {
	keep := map[string]bool{}
	for _, n := range names {
		n = Name(n)
		if _, ok := ix.path[n]; !ok {
			return nil, nil, fmt.Errorf("kmod: module %s not in modules.dep", n)
		}
		keep[n] = true
	}
	sorted := make([]string, 0, len(keep))
	for n := range keep {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var d strings.Builder
	for _, n := range sorted {
		d.WriteString(ix.path[n] + ":")
		for _, dep := range ix.deps[n] {
			if !keep[dep] {
				if ix.builtin[dep] {
					continue
				}
				return nil, nil, fmt.Errorf("kmod: module %s needs %s, not in the set", n, dep)
			}
			d.WriteString(" " + ix.path[dep])
		}
		d.WriteString("\n")
	}
	var a strings.Builder
	for _, al := range ix.aliases {
		if keep[al.Module] {
			fmt.Fprintf(&a, "alias %s %s\n", al.Pattern, al.Module)
		}
	}
	return []byte(d.String()), []byte(a.String()), nil
}
