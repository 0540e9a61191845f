package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// sharedLibs lists the shared libraries (and the dynamic loader) the host
// binary bin needs, as absolute host paths, using ldd. A static binary has none.
func sharedLibs(ctx context.Context, bin string) ([]string, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ldd", bin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	text := out.String() + errb.String()
	if strings.Contains(text, "not a dynamic executable") || strings.Contains(text, "statically linked") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", bin, err, strings.TrimSpace(text))
	}
	libs, err := parseLdd(out.String())
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin, err)
	}
	return libs, nil
}

// parseLdd reads ldd's output: "name => /path (addr)", "/path (addr)" and
// "linux-vdso.so.1 (addr)" lines. A library ldd could not find is an error.
func parseLdd(out string) ([]string, error) {
	var libs []string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if name, rest, ok := strings.Cut(line, "=>"); ok {
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, "not found") {
				return nil, fmt.Errorf("library %s not found", strings.TrimSpace(name))
			}
			p := strings.Fields(rest)
			if len(p) > 0 && filepath.IsAbs(p[0]) {
				libs = append(libs, p[0])
			}
			continue
		}
		if p := strings.Fields(line); len(p) > 0 && filepath.IsAbs(p[0]) {
			libs = append(libs, p[0])
		}
	}
	return libs, nil
}
