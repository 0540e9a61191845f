package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stowage/stowage/image/kmod"
	"github.com/stowage/stowage/qemu/guest"
)

// Module is a kernel module the guest loads at boot, after its
// dependencies (from modules.dep), with its parameters.
type Module struct {
	Name   string // "null_blk", "scsi_debug", "dm-flakey"
	Params string // "zoned=1 nr_devices=1", as for modprobe
}

// Initramfs lists what goes into a guest's initramfs besides the test.
type Initramfs struct {
	// Init is the host path of the static init binary (cmd/vminit).
	Init string
	// Kernel provides the modules.
	Kernel Kernel
	// Modules to load, in order; their dependencies are added before them.
	Modules []Module
	// Binaries are host programs copied to the same absolute path in the
	// guest with the shared libraries ldd lists. A name without a slash is
	// looked up in PATH, /usr/sbin and /sbin.
	Binaries []string
	// Files maps guest paths to host files copied there.
	Files map[string]string
}

// guestModuleDir is where module files go inside the guest.
const guestModuleDir = "/stowage/modules"

// plan resolves modules and binaries into the file list of the archive and
// the module load list of the guest config.
type plan struct {
	files   map[string]string // guest path -> host path
	modules []guest.Module
}

func (r Initramfs) plan(ctx context.Context) (*plan, error) {
	p := &plan{files: map[string]string{"/init": r.Init}}
	if len(r.Modules) > 0 {
		ix, err := kmod.Load(r.Kernel.ModulesDir)
		if err != nil {
			return nil, err
		}
		loaded := map[string]bool{}
		for _, m := range r.Modules {
			order, err := ix.Resolve(m.Name)
			if err != nil {
				return nil, err
			}
			for _, name := range order {
				want := name == kmod.Name(m.Name)
				if loaded[name] && !(want && m.Params != "") {
					continue
				}
				if loaded[name] && want {
					return nil, fmt.Errorf("module %s: asked for twice, or with parameters after another module needed it; list it earlier", name)
				}
				rel, _ := ix.Path(name)
				if strings.HasSuffix(rel, ".xz") || strings.HasSuffix(rel, ".zst") || strings.HasSuffix(rel, ".gz") {
					return nil, fmt.Errorf("module %s: compressed module files (%s) are not supported", name, rel)
				}
				gp := guestModuleDir + "/" + name + ".ko"
				p.files[gp] = filepath.Join(r.Kernel.ModulesDir, rel)
				gm := guest.Module{Name: name, Path: gp}
				if want {
					gm.Params = m.Params
				}
				p.modules = append(p.modules, gm)
				loaded[name] = true
			}
		}
	}
	for _, b := range r.Binaries {
		path, err := lookBinary(b)
		if err != nil {
			return nil, err
		}
		p.files[path] = path
		libs, err := sharedLibs(ctx, path)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			p.files[l] = l
		}
	}
	for g, h := range r.Files {
		if !filepath.IsAbs(g) {
			return nil, fmt.Errorf("file %s: guest path must be absolute", g)
		}
		p.files[g] = h
	}
	return p, nil
}

// lookBinary finds a host program by name or path.
func lookBinary(name string) (string, error) {
	if strings.Contains(name, "/") {
		p, err := filepath.Abs(name)
		if err != nil {
			return "", fmt.Errorf("binary %s: %w", name, err)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("binary %s: %w", name, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("binary %s: not found in PATH, /usr/sbin or /sbin", name)
}

// key hashes the contents of every input file and its guest path.
func (p *plan) key() (string, error) {
	h := sha256.New()
	paths := make([]string, 0, len(p.files))
	for g := range p.files {
		paths = append(paths, g)
	}
	sort.Strings(paths)
	for _, g := range paths {
		f, err := os.Open(p.files[g])
		if err != nil {
			return "", fmt.Errorf("initramfs: %w", err)
		}
		fmt.Fprintf(h, "%s\x00", g)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("initramfs: read %s: %w", p.files[g], err)
		}
		fmt.Fprint(h, "\x00")
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// writeBase writes the cached part of the initramfs: the init, device
// nodes, directories, modules, binaries and files.
func (p *plan) writeBase(w io.Writer) error {
	a := newNewc(w)
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run", "/etc", "/stowage", "/root"} {
		a.Dir(d, 0o755)
	}
	a.CharDev("/dev/console", 0o600, 5, 1)
	a.CharDev("/dev/null", 0o666, 1, 3)
	paths := make([]string, 0, len(p.files))
	for g := range p.files {
		paths = append(paths, g)
	}
	sort.Strings(paths)
	for _, g := range paths {
		a.HostFile(g, p.files[g])
	}
	return a.Close()
}

// baseArchive returns the path of the cached base archive under cacheDir,
// building it when absent.
func (p *plan) baseArchive(cacheDir string) (string, error) {
	key, err := p.key()
	if err != nil {
		return "", err
	}
	path := filepath.Join(cacheDir, "initramfs-"+key+".cpio")
	if _, err := os.Stat(path); err == nil {
		now := time.Now()
		_ = os.Chtimes(path, now, now) // keep it from pruning
		return path, nil
	}
	pruneCache(cacheDir, "initramfs-*.cpio", cacheMaxAge)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	tmp, err := os.CreateTemp(cacheDir, "initramfs-*.tmp")
	if err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := p.writeBase(tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("initramfs %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("initramfs %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	return path, nil
}

// cacheMaxAge is how long an unused cache entry stays.
const cacheMaxAge = 24 * time.Hour

// pruneCache removes the entries matching pattern in dir that were not
// used for maxAge. Errors are ignored: pruning is housekeeping.
func pruneCache(dir, pattern string, maxAge time.Duration) {
	paths, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > maxAge {
			_ = os.Remove(p)
		}
	}
}

// Build writes the complete initramfs to out: the cached base archive
// (built under cacheDir when missing) followed by a second archive with
// the guest config and the test binary at guest path testPath. The kernel
// unpacks concatenated archives in order.
func (r Initramfs) Build(ctx context.Context, out, cacheDir string, cfg guest.Config, testBinary, testPath string) error {
	p, err := r.plan(ctx)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	cfg.Modules = append(p.modules, cfg.Modules...)
	base, err := p.baseArchive(cacheDir)
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	defer f.Close()
	bf, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	_, err = io.Copy(f, bf)
	bf.Close()
	if err != nil {
		return fmt.Errorf("initramfs: copy %s: %w", base, err)
	}
	cj, err := cfg.Marshal()
	if err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	a := newNewc(f)
	a.Bytes(guest.ConfigPath, 0o644, cj)
	if testBinary != "" {
		a.HostFile(testPath, testBinary)
	}
	if err := a.Close(); err != nil {
		return fmt.Errorf("initramfs %s: %w", out, err)
	}
	return f.Close()
}
