package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/stowage/stowage/image/kmod"
)

// InputsFile, in Config.Out, holds the digest of the inputs of the image
// there (see InputsDigest); Build with Config.Cache skips the build when
// it matches.
const InputsFile = ".inputs-sha256"

// InputsDigest hashes everything a build reads: the config (version,
// kernel version, modules, rescue commands, command line, epoch), the Go
// version, the versions of the image's components (the kernel's and
// smartctl's Debian packages, u-root, gobusybox: see Manifest.Components),
// the kernel image, its modules.dep, modules.alias, modules.builtin and
// the .ko file of every module the image carries, smartctl and the
// libraries it links, and every file of the source tree except tests
// (*_test.go, testdata) and out/ and dot directories: Go sources, go.mod,
// go.sum, and whatever a package embeds (the OpenAPI documents). The
// same digest means the same image bytes.
func InputsDigest(ctx context.Context, c Config) (string, error) {
	if err := c.defaults(ctx); err != nil {
		return "", err
	}
	comps, err := c.components(ctx)
	if err != nil {
		return "", err
	}
	return c.inputsDigest(ctx, comps)
}

// inputsDigest is InputsDigest of a Config with its defaults set and its
// components already looked up (Build needs them for the manifest too).
func (c *Config) inputsDigest(ctx context.Context, comps []Component) (string, error) {
	h := sha256.New()
	goVersion, err := c.output(ctx, c.SourceDir, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	cfg, err := json.Marshal(struct {
		Version, KernelVersion, Cmdline, Go string
		Modules, Rescue                     []string
		Epoch                               int64
		Components                          []Component
	}{c.Version, c.KernelVersion, c.Cmdline, strings.TrimSpace(goVersion), c.Modules, c.Rescue, *c.Epoch, comps})
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	fmt.Fprintf(h, "config %d %s\n", len(cfg), cfg)
	modDir := filepath.Join(c.ModulesDir, c.KernelVersion)
	files := []string{filepath.Join(c.BootDir, "vmlinuz-"+c.KernelVersion), c.Smartctl}
	for _, name := range []string{"modules.dep", "modules.alias", "modules.builtin"} {
		if p := filepath.Join(modDir, name); exists(p) {
			files = append(files, p)
		}
	}
	ix, err := kmod.Load(modDir)
	if err != nil {
		return "", fmt.Errorf("image: inputs: %w", err)
	}
	mods, err := ix.Resolve(c.Modules...)
	if err != nil {
		return "", fmt.Errorf("image: inputs: %w", err)
	}
	for _, m := range mods {
		if p, ok := ix.Path(m); ok {
			files = append(files, filepath.Join(modDir, p))
		}
	}
	libs, err := SharedLibs(ctx, c.Smartctl)
	if err != nil {
		return "", err
	}
	files = append(files, libs...)
	err = filepath.WalkDir(c.SourceDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != c.SourceDir && (strings.HasPrefix(name, ".") || name == "testdata" || name == "out") {
				return filepath.SkipDir
			}
			return nil
		}
		// Regular files only: sockets or FIFOs a developer left in the
		// tree are no input (and would block a read).
		if d.Type().IsRegular() && !strings.HasSuffix(name, "_test.go") && !strings.HasPrefix(name, ".") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("image: inputs: %w", err)
	}
	for _, p := range files {
		if err := hashFile(h, p, c.SourceDir); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// hashFile adds a file's name (relative to root when under it), size and
// content to h.
func hashFile(h io.Writer, p, root string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("image: inputs: %w", err)
	}
	defer f.Close()
	name := p
	if rel, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(rel, "..") {
		name = rel
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image: inputs: %w", err)
	}
	fmt.Fprintf(h, "file %q %d\n", name, st.Size())
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("image: inputs: %s: %w", p, err)
	}
	return nil
}

// cached returns the manifest in c.Out when its inputs digest is digest
// and every artifact it lists is there with its size and SHA-256.
func cached(c Config, digest string) (*Manifest, bool) {
	b, err := os.ReadFile(filepath.Join(c.Out, InputsFile))
	if err != nil || strings.TrimSpace(string(b)) != digest {
		return nil, false
	}
	mj, err := os.ReadFile(filepath.Join(c.Out, ManifestFile))
	if err != nil {
		return nil, false
	}
	var m Manifest
	if json.Unmarshal(mj, &m) != nil || len(m.Artifacts) == 0 {
		return nil, false
	}
	for _, a := range m.Artifacts {
		got, err := digestFile(filepath.Join(c.Out, a.Name))
		if err != nil || got.Size != a.Size || got.SHA256 != a.SHA256 {
			return nil, false
		}
	}
	return &m, true
}
