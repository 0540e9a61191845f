// Command mkimage builds Stowage's bootable image into a directory:
// vmlinuz, initramfs.cpio.gz, boot.ipxe and manifest.json.
//
//	mkimage [-out out/image] [-version V] [-kernel VERSION] [-cmdline ...] [-cache]
//
// The same inputs give the same bytes (see package image).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/stowage/stowage/image"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "out/image", "output directory")
	version := fs.String("version", "", "version stamped into the binaries (default: git describe, else dev)")
	kernel := fs.String("kernel", "", "kernel version (default: the newest /boot/vmlinuz-* with modules)")
	cmdline := fs.String("cmdline", image.DefaultCmdline, "kernel command line of the iPXE script")
	cache := fs.Bool("cache", false, "do nothing when -out holds an image built from the same inputs (sources, kernel, smartctl, flags)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mkimage: unexpected arguments %q\n", fs.Args())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	v := *version
	if v == "" {
		v = gitVersion(ctx)
	}
	start := time.Now()
	m, err := image.Build(ctx, image.Config{Out: *out, Version: v, KernelVersion: *kernel, Cmdline: *cmdline, Log: log, Cache: *cache})
	if err != nil {
		fmt.Fprintln(stderr, "mkimage:", err)
		return 1
	}
	fmt.Fprintf(stdout, "image %s (kernel %s, %s) built in %s:\n", v, m.KernelVersion, m.GoVersion, time.Since(start).Round(100*time.Millisecond))
	for _, a := range m.Artifacts {
		fmt.Fprintf(stdout, "  %-20s %10d bytes (%5.1f MiB)  sha256 %s\n", filepath.Join(*out, a.Name), a.Size, float64(a.Size)/(1<<20), a.SHA256)
	}
	return 0
}

// gitVersion is `git describe --always --dirty`, or "dev" outside git.
func gitVersion(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if v := strings.TrimSpace(string(out)); err == nil && v != "" {
		return v
	}
	return "dev"
}
