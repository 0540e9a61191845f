package image

import (
	"cmp"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Component is one third-party part of the image and its version: a
// Debian package (Source "deb": the kernel, smartmontools, the libraries
// smartctl links), a Go module (Source "go": u-root, gobusybox) or what a
// tool says of itself (Source "smartctl --version").
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Source  string `json:"source"`
}

// components lists the versions of what the image is made of besides our
// own code: the Debian packages owning the kernel image, smartctl and
// its libraries, the u-root and gobusybox modules the rescue busybox is
// built from, and smartctl's own version line. A file no Debian package
// owns (or a host without dpkg) is left out rather than failing the
// build: the files' SHA-256 are in the manifest anyway.
func (c *Config) components(ctx context.Context) ([]Component, error) {
	files := []string{filepath.Join(c.BootDir, "vmlinuz-"+c.KernelVersion), c.Smartctl}
	libs, err := SharedLibs(ctx, c.Smartctl)
	if err != nil {
		return nil, err
	}
	files = append(files, libs...)
	out := debPackages(ctx, files)
	for _, mod := range []string{"github.com/u-root/u-root", "github.com/u-root/gobusybox/src"} {
		v, err := c.output(ctx, c.SourceDir, "list", "-m", "-f", "{{.Version}}", mod)
		if err != nil {
			return nil, err
		}
		out = append(out, Component{Name: mod, Version: strings.TrimSpace(v), Source: "go"})
	}
	if v, err := exec.CommandContext(ctx, c.Smartctl, "--version").Output(); err == nil {
		// "smartctl 7.3 2022-02-28 r5338 [x86_64-linux-6.1.0-57-amd64] (local build)":
		// the bracket names the host's running kernel, not the binary.
		line, _, _ := strings.Cut(string(v), "\n")
		line, _, _ = strings.Cut(line, " [")
		if name, ver, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == "smartctl" {
			out = append(out, Component{Name: "smartctl", Version: ver, Source: "smartctl --version"})
		}
	}
	slices.SortFunc(out, func(a, b Component) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// debPackages returns the Debian packages (with their versions) owning
// the files, each once, trying a file's symlink target and /usr twins
// too (merged /usr: dpkg may know /usr/lib/x/libfoo.so.6 but not
// /lib/x/libfoo.so.6). It asks dpkg-query twice in all: it reads its
// whole database on every call, seconds on a loaded host.
func debPackages(ctx context.Context, files []string) []Component {
	cands := map[string][]string{}
	var all []string
	for _, f := range files {
		cs := []string{f}
		if real, err := filepath.EvalSymlinks(f); err == nil && real != f {
			cs = append(cs, real)
		}
		for _, c := range slices.Clone(cs) {
			if strings.HasPrefix(c, "/lib") || strings.HasPrefix(c, "/bin") || strings.HasPrefix(c, "/sbin") {
				cs = append(cs, "/usr"+c)
			}
		}
		cands[f] = cs
		all = append(all, cs...)
	}
	// dpkg-query exits 1 when a path has no owner; the others are listed.
	out, _ := exec.CommandContext(ctx, "dpkg-query", append([]string{"-S"}, all...)...).Output()
	owner := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		// "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6"; diversion
		// lines ("diversion by x from: ...") have spaces before ": ".
		pkgs, path, ok := strings.Cut(line, ": ")
		if !ok || strings.Contains(pkgs, " ") {
			continue
		}
		pkg, _, _ := strings.Cut(pkgs, ",") // a path shared by several packages: the first
		pkg, _, _ = strings.Cut(pkg, ":")
		owner[path] = pkg
	}
	var pkgs []string
	for _, f := range files {
		for _, c := range cands[f] {
			if p := owner[c]; p != "" {
				if !slices.Contains(pkgs, p) {
					pkgs = append(pkgs, p)
				}
				break
			}
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	out, _ = exec.CommandContext(ctx, "dpkg-query", append([]string{"-W", "-f=${Package} ${Version}\n"}, pkgs...)...).Output()
	var comps []Component
	for _, line := range strings.Split(string(out), "\n") {
		if name, v, ok := strings.Cut(line, " "); ok && v != "" && slices.Contains(pkgs, name) {
			comps = append(comps, Component{Name: name, Version: v, Source: "deb"})
		}
	}
	return comps
}
