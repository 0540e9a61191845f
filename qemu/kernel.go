package qemu

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kernel is a bootable kernel image and its modules.
type Kernel struct {
	Version    string // "6.1.0-56-amd64"
	Image      string // "/boot/vmlinuz-6.1.0-56-amd64"
	ModulesDir string // "/lib/modules/6.1.0-56-amd64"
}

// FindKernel picks the newest kernel under root ("/" on a host) that has
// both /lib/modules/<version>/modules.dep and /boot/vmlinuz-<version>.
func FindKernel(root string) (Kernel, error) {
	modRoot := filepath.Join(root, "lib", "modules")
	ents, err := os.ReadDir(modRoot)
	if err != nil {
		return Kernel{}, fmt.Errorf("find kernel: %w", err)
	}
	var found []Kernel
	for _, e := range ents {
		k := Kernel{
			Version:    e.Name(),
			Image:      filepath.Join(root, "boot", "vmlinuz-"+e.Name()),
			ModulesDir: filepath.Join(modRoot, e.Name()),
		}
		if _, err := os.Stat(k.Image); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(k.ModulesDir, "modules.dep")); err != nil {
			continue
		}
		found = append(found, k)
	}
	if len(found) == 0 {
		return Kernel{}, fmt.Errorf("find kernel: no %s/<version> with a matching %s/vmlinuz-<version> and modules.dep (install linux-image-amd64: make deps)",
			modRoot, filepath.Join(root, "boot"))
	}
	sort.Slice(found, func(i, j int) bool { return versionLess(found[i].Version, found[j].Version) })
	return found[len(found)-1], nil
}

// versionLess compares kernel versions field by field, numerically where
// both fields are numbers.
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	}
	fa, fb := split(a), split(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		switch {
		case ea == nil && eb == nil:
			if na != nb {
				return na < nb
			}
		case fa[i] != fb[i]:
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}

// ModuleName normalises a module name: dashes and underscores are the same
// to the kernel, and a path or .ko suffix is dropped.
func ModuleName(s string) string {
	s = filepath.Base(s)
	if i := strings.LastIndex(s, ".ko"); i >= 0 && (i+3 == len(s) || s[i+3] == '.') {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// ModuleIndex is a kernel's modules.dep and modules.builtin.
type ModuleIndex struct {
	Dir     string              // the /lib/modules/<version> directory
	path    map[string]string   // name -> path relative to Dir
	deps    map[string][]string // name -> names of direct dependencies
	builtin map[string]bool
}

// LoadModuleIndex reads modules.dep (and modules.builtin if present) from dir.
func LoadModuleIndex(dir string) (*ModuleIndex, error) {
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("module index: %w", err)
	}
	defer f.Close()
	ix, err := parseModulesDep(f)
	if err != nil {
		return nil, fmt.Errorf("module index %s: %w", f.Name(), err)
	}
	ix.Dir = dir
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				ix.builtin[ModuleName(l)] = true
			}
		}
	}
	return ix, nil
}

// parseModulesDep reads the "path: dep dep ..." lines of modules.dep.
func parseModulesDep(r io.Reader) (*ModuleIndex, error) {
	ix := &ModuleIndex{path: map[string]string{}, deps: map[string][]string{}, builtin: map[string]bool{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p, rest, ok := strings.Cut(line, ":")
		p = strings.TrimSpace(p)
		if !ok || p == "" {
			return nil, fmt.Errorf("line %d: want \"module.ko: deps...\", got %q", n, line)
		}
		name := ModuleName(p)
		if name == "" {
			return nil, fmt.Errorf("line %d: module path %q has no name", n, p)
		}
		ix.path[name] = p
		var deps []string
		for _, d := range strings.Fields(rest) {
			dn := ModuleName(d)
			if dn == "" {
				return nil, fmt.Errorf("line %d: dependency %q has no name", n, d)
			}
			deps = append(deps, dn)
		}
		ix.deps[name] = deps
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ix, nil
}

// Builtin reports whether the module is built into the kernel.
func (ix *ModuleIndex) Builtin(name string) bool { return ix.builtin[ModuleName(name)] }

// Path returns the module file's path relative to ix.Dir.
func (ix *ModuleIndex) Path(name string) (string, bool) {
	p, ok := ix.path[ModuleName(name)]
	return p, ok
}

// Resolve returns the modules to load for names, dependencies first, each
// once, leaving out built-in modules. An unknown module is an error.
func (ix *ModuleIndex) Resolve(names ...string) ([]string, error) {
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
			return fmt.Errorf("module %s: not in %s/modules.dep and not built in", n, ix.Dir)
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
		if err := visit(ModuleName(n), nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}
