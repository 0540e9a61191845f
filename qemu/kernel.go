package qemu

import (
	"fmt"
	"path/filepath"

	"github.com/stowage/stowage/image"
)

// Kernel is a bootable kernel image and its modules.
type Kernel struct {
	Version    string // "6.1.0-56-amd64"
	Image      string // "/boot/vmlinuz-6.1.0-56-amd64"
	ModulesDir string // "/lib/modules/6.1.0-56-amd64"
}

// FindKernel picks the newest kernel under root ("/" on a host) that has
// both /lib/modules/<version>/modules.dep and /boot/vmlinuz-<version>
// (image.NewestKernel, the image builder's choice too).
func FindKernel(root string) (Kernel, error) {
	boot, mods := filepath.Join(root, "boot"), filepath.Join(root, "lib", "modules")
	v, err := image.NewestKernel(boot, mods)
	if err != nil {
		return Kernel{}, fmt.Errorf("find kernel: %w (make deps installs linux-image-amd64)", err)
	}
	return Kernel{Version: v, Image: filepath.Join(boot, "vmlinuz-"+v), ModulesDir: filepath.Join(mods, v)}, nil
}
