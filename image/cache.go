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
)

// InputsFile, in Config.Out, holds the digest of the inputs of the image
// there (see InputsDigest); Build with Config.Cache skips the build when
// it matches.
const InputsFile = ".inputs-sha256"

// InputsDigest hashes everything a build reads: the config (version,
// kernel version, modules, rescue commands, command line, epoch), the Go
// version, the kernel image and its modules.dep, smartctl and the
// libraries it links, go.mod, go.sum and every non-test .go file of the
// source tree (testdata, out/ and dot directories left out). The same
// digest means the same image bytes.
func InputsDigest(ctx context.Context, c Config) (string, error) {
	if err := c.defaults(ctx); err != nil {
		return "", err
	}
	h := sha256.New()
	goVersion, err := c.output(ctx, c.SourceDir, "env", "GOVERSION")
	if err != nil {
		return "", err
	}
	cfg, err := json.Marshal(struct {
		Version, KernelVersion, Cmdline, Go string
		Modules, Rescue                     []string
		Epoch                               int64
	}{c.Version, c.KernelVersion, c.Cmdline, strings.TrimSpace(goVersion), c.Modules, c.Rescue, *c.Epoch})
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	fmt.Fprintf(h, "config %d %s\n", len(cfg), cfg)
	files := []string{filepath.Join(c.BootDir, "vmlinuz-"+c.KernelVersion), filepath.Join(c.ModulesDir, c.KernelVersion, "modules.dep"), c.Smartctl}
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
		if name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
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
