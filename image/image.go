// Package image builds Stowage's bootable image: Debian's kernel, an
// initramfs (newc cpio, gzip) holding our init, hwmgr, osd, a u-root busybox
// for the rescue shell, smartctl with its libraries and the kernel modules
// the hardware needs, a manifest with the SHA-256 of every artifact, and
// an iPXE script.
//
// The build is reproducible: Go binaries are built with -trimpath and an
// empty build ID, archive entries are sorted with fixed owners and one
// mtime (SOURCE_DATE_EPOCH, else 0), and gzip writes no name or time, so
// the same inputs give the same bytes.
package image

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/stowage/stowage/image/kmod"
)

// DefaultModules are the kernel modules the image carries (with their
// dependencies): storage controllers and disks, NICs, and the devices
// tests build in the guest.
var DefaultModules = []string{
	// storage
	"nvme", "ahci", "sd_mod", "sg", "virtio_pci", "virtio_blk", "virtio_scsi", "mpt3sas", "megaraid_sas",
	// network
	"virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "mlx5_core",
	// power button (ACPI button + evdev), for a clean shutdown; virtio-rng
	// seeds the kernel's RNG in a VM without RDRAND (DHCP needs it)
	"button", "evdev", "virtio_rng",
	// test devices
	"null_blk", "scsi_debug", "dm_flakey", "dm_log_writes",
}

// DefaultRescue are the u-root core commands in the rescue busybox.
var DefaultRescue = []string{
	"cat", "cp", "dd", "df", "dmesg", "echo", "find", "free", "gosh", "grep", "hexdump",
	"insmod", "ip", "kill", "ln", "ls", "lsmod", "mkdir", "more", "mount", "mv", "pci",
	"ps", "rm", "rmmod", "sync", "tail", "umount", "uname",
}

// DefaultCmdline is the kernel command line of the iPXE script.
const DefaultCmdline = "console=tty0 console=ttyS0,115200 quiet stowage.net=dhcp"

// Config says what to build. Zero values are the documented defaults.
type Config struct {
	// Out is the output directory (required).
	Out string
	// SourceDir is the Stowage module's root; default: the directory of
	// `go env GOMOD`.
	SourceDir string
	// BootDir holds vmlinuz-<version>; default /boot.
	BootDir string
	// ModulesDir holds <version>/modules.dep; default /lib/modules.
	ModulesDir string
	// KernelVersion picks the kernel; default the newest vmlinuz-* in
	// BootDir that has a modules directory.
	KernelVersion string
	// Modules to carry; default DefaultModules.
	Modules []string
	// Rescue lists the u-root core commands; default DefaultRescue.
	Rescue []string
	// Smartctl is the host smartctl; default found in PATH, /usr/sbin, /sbin.
	Smartctl string
	// Version is stamped into our binaries and the manifest; default "dev".
	Version string
	// Epoch is every archive mtime; default $SOURCE_DATE_EPOCH, else 0.
	Epoch *int64
	// Cmdline is the iPXE script's kernel command line; default DefaultCmdline.
	Cmdline string
	// Go is the go command; default "go".
	Go string
	// Log gets progress; default discards.
	Log *slog.Logger
	// Cache skips the build when Out holds an image built from the same
	// inputs (InputsDigest, recorded in Out/InputsFile) whose artifacts
	// match its manifest.
	Cache bool
}

// Artifact is one file of the image with its size and digest.
type Artifact struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a built image; it is written to Out/manifest.json.
type Manifest struct {
	Version         string     `json:"version"`
	KernelVersion   string     `json:"kernel_version"`
	GoVersion       string     `json:"go_version"`
	SourceDateEpoch int64      `json:"source_date_epoch"`
	Cmdline         string     `json:"cmdline"`
	Artifacts       []Artifact `json:"artifacts"`
	// Contents are the regular files inside the initramfs.
	Contents []Artifact `json:"initramfs_contents"`
	Modules  []string   `json:"modules"`
	Rescue   []string   `json:"rescue_commands"`
	// Components are the versions of the third-party parts: Debian
	// packages, Go modules of the rescue busybox, smartctl.
	Components []Component `json:"components"`
}

// Output file names inside Config.Out.
const (
	KernelFile    = "vmlinuz"
	InitramfsFile = "initramfs.cpio.gz"
	ManifestFile  = "manifest.json"
	IPXEFile      = "boot.ipxe"
)

func (c *Config) defaults(ctx context.Context) error {
	if c.Out == "" {
		return errors.New("image: Config.Out is required")
	}
	c.Go = cmp.Or(c.Go, "go")
	c.BootDir = cmp.Or(c.BootDir, "/boot")
	c.ModulesDir = cmp.Or(c.ModulesDir, "/lib/modules")
	c.Version = cmp.Or(c.Version, "dev")
	c.Cmdline = cmp.Or(c.Cmdline, DefaultCmdline)
	if c.Modules == nil {
		c.Modules = DefaultModules
	}
	if c.Rescue == nil {
		c.Rescue = DefaultRescue
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Epoch == nil {
		var e int64
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return fmt.Errorf("image: SOURCE_DATE_EPOCH=%q is not a non-negative integer", s)
			}
			e = v
		}
		c.Epoch = &e
	}
	if c.SourceDir == "" {
		out, err := exec.CommandContext(ctx, c.Go, "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("image: go env GOMOD: %w", err)
		}
		mod := strings.TrimSpace(string(out))
		if mod == "" || mod == os.DevNull {
			return errors.New("image: not inside a Go module; set Config.SourceDir")
		}
		c.SourceDir = filepath.Dir(mod)
	}
	if c.KernelVersion == "" {
		v, err := NewestKernel(c.BootDir, c.ModulesDir)
		if err != nil {
			return err
		}
		c.KernelVersion = v
	}
	for _, p := range []string{filepath.Join(c.BootDir, "vmlinuz-"+c.KernelVersion), filepath.Join(c.ModulesDir, c.KernelVersion, "modules.dep")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("image: kernel %s: %w", c.KernelVersion, err)
		}
	}
	if c.Smartctl == "" {
		p, err := lookPath("smartctl")
		if err != nil {
			return err
		}
		c.Smartctl = p
	}
	return nil
}

func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("image: %s not found in PATH, /usr/sbin or /sbin", name)
}

// NewestKernel returns the newest version V with a bootDir/vmlinuz-V and a
// modulesDir/V/modules.dep.
func NewestKernel(bootDir, modulesDir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
	if err != nil {
		return "", fmt.Errorf("image: %w", err)
	}
	var best string
	for _, p := range m {
		v := strings.TrimPrefix(filepath.Base(p), "vmlinuz-")
		if _, err := os.Stat(filepath.Join(modulesDir, v, "modules.dep")); err != nil {
			continue
		}
		if best == "" || VersionLess(best, v) {
			best = v
		}
	}
	if best == "" {
		return "", fmt.Errorf("image: no %s/vmlinuz-* with a %s/<version>/modules.dep (install linux-image-amd64)", bootDir, modulesDir)
	}
	return best, nil
}

// VersionLess orders kernel versions: numeric runs compare as numbers.
func VersionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '~' })
	}
	fa, fb := split(a), split(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		if ea == nil && eb == nil {
			if na != nb {
				return na < nb
			}
			continue
		}
		if fa[i] != fb[i] {
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}

// Build builds the image into c.Out and returns its manifest.
func Build(ctx context.Context, c Config) (*Manifest, error) {
	if err := c.defaults(ctx); err != nil {
		return nil, err
	}
	log := c.Log
	comps, err := c.components(ctx)
	if err != nil {
		return nil, err
	}
	digest := ""
	if c.Cache {
		d, err := c.inputsDigest(ctx, comps)
		if err != nil {
			return nil, err
		}
		if m, ok := cached(c, d); ok {
			log.Info("image up to date (same inputs)", "out", c.Out, "inputs", d[:12])
			return m, nil
		}
		digest = d
	}
	kernel := filepath.Join(c.BootDir, "vmlinuz-"+c.KernelVersion)
	modDir := filepath.Join(c.ModulesDir, c.KernelVersion)
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	work, err := os.MkdirTemp(c.Out, ".build-")
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	defer os.RemoveAll(work)

	log.Info("building Go binaries", "version", c.Version)
	bin := filepath.Join(work, "bin")
	if err := c.goBuild(ctx, bin); err != nil {
		return nil, err
	}
	log.Info("building the u-root rescue busybox", "commands", len(c.Rescue))
	bb := filepath.Join(work, "bb")
	if err := c.makeBB(ctx, bb); err != nil {
		return nil, err
	}

	t := NewTree()
	var errs []error
	must := func(err error) { errs = append(errs, err) }
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/var/log", "/etc", "/root", "/mnt"} {
		must(t.Dir(d, 0o755))
	}
	must(t.Dir("/tmp", 0o1777))
	must(t.CharDev("/dev/console", 0o600, 5, 1))
	must(t.CharDev("/dev/null", 0o666, 1, 3))
	must(t.HostFile("/init", filepath.Join(bin, "init"), 0o755))
	must(t.HostFile("/bin/hwmgr", filepath.Join(bin, "hwmgr"), 0o755))
	must(t.HostFile("/bin/osd", filepath.Join(bin, "osd"), 0o755))
	must(t.HostFile("/bin/bb", bb, 0o755))
	rescue := slices.Sorted(slices.Values(c.Rescue))
	for _, cmd := range rescue {
		must(t.Symlink("/bin/"+cmd, "bb"))
	}
	must(t.Bytes("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/gosh\n")))
	must(t.Bytes("/etc/group", 0o644, []byte("root:x:0:\n")))
	must(t.Bytes("/etc/stowage-release", 0o644, []byte(fmt.Sprintf("STOWAGE_VERSION=%s\nKERNEL_VERSION=%s\n", c.Version, c.KernelVersion))))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := addSmartctl(ctx, t, c.Smartctl); err != nil {
		return nil, err
	}
	modules, err := addModules(t, modDir, c.KernelVersion, c.Modules)
	if err != nil {
		return nil, err
	}

	log.Info("writing the initramfs", "entries", len(t.entries))
	initrd := filepath.Join(work, InitramfsFile)
	if err := writeInitramfs(t, initrd, *c.Epoch); err != nil {
		return nil, err
	}
	contents, err := t.contents()
	if err != nil {
		return nil, err
	}
	ipxe := fmt.Sprintf("#!ipxe\n# Stowage %s, kernel %s\nkernel %s initrd=%s %s\ninitrd %s\nboot\n",
		c.Version, c.KernelVersion, KernelFile, InitramfsFile, c.Cmdline, InitramfsFile)
	if err := os.WriteFile(filepath.Join(work, IPXEFile), []byte(ipxe), 0o644); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if err := copyFile(filepath.Join(work, KernelFile), kernel); err != nil {
		return nil, err
	}
	m := &Manifest{
		Version: c.Version, KernelVersion: c.KernelVersion, GoVersion: runtime.Version(),
		SourceDateEpoch: *c.Epoch, Cmdline: c.Cmdline, Contents: contents, Modules: modules, Rescue: rescue,
		Components: comps,
	}
	for _, name := range []string{KernelFile, InitramfsFile, IPXEFile} {
		a, err := digestFile(filepath.Join(work, name))
		if err != nil {
			return nil, err
		}
		a.Name = name
		m.Artifacts = append(m.Artifacts, a)
	}
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("image: manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(work, ManifestFile), append(mj, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	_ = os.Remove(filepath.Join(c.Out, InputsFile)) // a half-replaced image is no cache hit
	for _, name := range []string{KernelFile, InitramfsFile, IPXEFile, ManifestFile} {
		if err := os.Rename(filepath.Join(work, name), filepath.Join(c.Out, name)); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	if digest != "" {
		if err := os.WriteFile(filepath.Join(c.Out, InputsFile), []byte(digest+"\n"), 0o644); err != nil {
			return nil, fmt.Errorf("image: %w", err)
		}
	}
	return m, nil
}

// goBuild builds our static binaries (init, hwmgr, osd) into dir.
func (c *Config) goBuild(ctx context.Context, dir string) error {
	ldflags := "-s -w -buildid= -X main.version=" + c.Version
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + ldflags, "-o", dir + "/",
		"./bootstrap/cmd/init", "./hwmgr/cmd/hwmgr", "./osd/cmd/osd"}
	return c.run(ctx, c.SourceDir, args...)
}

// makeBB builds the u-root commands into one busybox-style binary with
// gobusybox's makebb (pinned in go.mod), which strips the build ID and
// trims paths so the binary is reproducible.
func (c *Config) makeBB(ctx context.Context, out string) error {
	dirOut, err := c.output(ctx, c.SourceDir, "list", "-m", "-f", "{{.Dir}}", "github.com/u-root/u-root")
	if err != nil {
		return err
	}
	uroot := strings.TrimSpace(dirOut)
	// goshliner: gosh with peterh/liner instead of bubbline, whose
	// terminal queries hang serial consoles that do not answer them.
	args := []string{"run", "github.com/u-root/gobusybox/src/cmd/makebb", "-go-build-tags", "goshliner", "-o", out}
	for _, cmd := range c.Rescue {
		if strings.ContainsAny(cmd, "/.") || cmd == "" {
			return fmt.Errorf("image: bad rescue command name %q", cmd)
		}
		args = append(args, filepath.Join(uroot, "cmds", "core", cmd))
	}
	return c.run(ctx, c.SourceDir, args...)
}

func (c *Config) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Go, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	return cmd
}

func (c *Config) run(ctx context.Context, dir string, args ...string) error {
	cmd := c.command(ctx, dir, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("image: go %s: %w\n%s", strings.Join(args[:min(len(args), 4)], " "), err, out.String())
	}
	return nil
}

func (c *Config) output(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := c.command(ctx, dir, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("image: go %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// addSmartctl adds smartctl at /usr/sbin/smartctl and the libraries ldd
// lists at the paths it lists them.
func addSmartctl(ctx context.Context, t *Tree, smartctl string) error {
	if err := t.HostFile("/usr/sbin/smartctl", smartctl, 0o755); err != nil {
		return err
	}
	libs, err := SharedLibs(ctx, smartctl)
	if err != nil {
		return err
	}
	for _, l := range libs {
		if err := t.HostFile(l, l, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// SharedLibs lists the absolute library paths `ldd bin` prints, the
// dynamic loader included, sorted.
func SharedLibs(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("image: ldd %s: %w", bin, err)
	}
	return ParseLdd(string(out))
}

// ParseLdd extracts the absolute library paths from ldd's output.
func ParseLdd(out string) ([]string, error) {
	seen := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.Contains(line, "linux-vdso") {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("image: ldd: %s", line)
		}
		if strings.Contains(line, "statically linked") {
			continue
		}
		p := line
		if _, after, ok := strings.Cut(line, "=>"); ok {
			p = strings.TrimSpace(after)
		}
		if i := strings.Index(p, " ("); i >= 0 {
			p = p[:i]
		}
		if !path.IsAbs(p) {
			return nil, fmt.Errorf("image: ldd: no absolute path in %q", line)
		}
		seen[p] = true
	}
	return slices.Sorted(func(yield func(string) bool) {
		for p := range seen {
			if !yield(p) {
				return
			}
		}
	}), nil
}

// addModules adds the modules and their dependencies under
// /lib/modules/<version>, with modules.dep and modules.alias restricted
// to them and the kernel's modules.builtin; it returns the module names.
func addModules(t *Tree, modDir, version string, names []string) ([]string, error) {
	ix, err := kmod.Load(modDir)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	order, err := ix.Resolve(names...)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	dep, alias, err := ix.Subset(order)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	root := "/lib/modules/" + version
	for _, n := range order {
		p, _ := ix.Path(n)
		if err := t.HostFile(path.Join(root, p), filepath.Join(modDir, p), 0o644); err != nil {
			return nil, err
		}
	}
	builtin, err := os.ReadFile(filepath.Join(modDir, "modules.builtin"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("image: %w", err)
	}
	for name, data := range map[string][]byte{"modules.dep": dep, "modules.alias": alias, "modules.builtin": builtin} {
		if err := t.Bytes(path.Join(root, name), 0o644, data); err != nil {
			return nil, err
		}
	}
	slices.Sort(order)
	return order, nil
}

func writeInitramfs(t *Tree, dst string, mtime int64) error {
	f, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		f.Close()
		return fmt.Errorf("image: %w", err)
	}
	zw.OS = 3 // Unix, fixed; no name, no mtime in the header
	err = t.WriteNewc(zw, mtime)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("image: write %s: %w", dst, err)
	}
	return nil
}

// contents digests every regular file of the tree.
func (t *Tree) contents() ([]Artifact, error) {
	var out []Artifact
	for _, p := range t.Paths() {
		e := t.entries[p[1:]]
		if e.kind != kindFile {
			continue
		}
		if e.data != nil {
			sum := sha256.Sum256(e.data)
			out = append(out, Artifact{Name: p, Size: int64(len(e.data)), SHA256: hex.EncodeToString(sum[:])})
			continue
		}
		a, err := digestFile(e.src)
		if err != nil {
			return nil, err
		}
		a.Name = p
		out = append(out, a)
	}
	return out, nil
}

func digestFile(p string) (Artifact, error) {
	f, err := os.Open(p)
	if err != nil {
		return Artifact{}, fmt.Errorf("image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Artifact{}, fmt.Errorf("image: digest %s: %w", p, err)
	}
	return Artifact{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("image: copy %s: %w", src, err)
	}
	return out.Close()
}
