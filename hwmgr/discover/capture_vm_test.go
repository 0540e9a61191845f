//go:build vmtest

package discover_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The guest can print its sysfs, as far as discovery reads it, on the
// console; the host turns it into the fixture testdata/qemu-guest, which
// TestFixtureQEMUGuest scans on every unit-test run. Refresh it with
//
//	STOWAGE_UPDATE_FIXTURES=1 go test -tags vmtest -run '^TestVMDiscovery$' ./hwmgr/discover/
const (
	updateEnv     = "STOWAGE_UPDATE_FIXTURES"
	captureEnv    = "STOWAGE_CAPTURE_SYSFS"
	capturePrefix = "STOWAGE-SYSFS-CAPTURE "
	guestFixture  = "testdata/qemu-guest"
)

// captureSysfs prints, as base64 gzip tar lines, the parts of sysfs that
// discovery reads: /sys/block links, each disk's attributes and queue,
// its device (and for NVMe the controller), driver links up the device
// path, and /sys/class/scsi_host with proc_name.
func captureSysfs(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	seen := map[string]bool{}
	rel := func(p string) string { r, _ := filepath.Rel("/sys", p); return r }
	addLink := func(p string) {
		if seen[p] {
			return
		}
		target, err := os.Readlink(p)
		if err != nil {
			return
		}
		seen[p] = true
		must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "sys/" + rel(p), Linkname: target, Mode: 0o777}))
	}
	addFiles := func(dir string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			if seen[p] || !e.Type().IsRegular() {
				continue
			}
			info, err := e.Info()
			if err != nil || info.Mode().Perm()&0o444 == 0 {
				continue
			}
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			seen[p] = true
			must(t, tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "sys/" + rel(p), Size: int64(len(b)), Mode: 0o644}))
			_, err = tw.Write(b)
			must(t, err)
		}
	}
	blocks, err := os.ReadDir("/sys/block")
	must(t, err)
	for _, b := range blocks {
		link := filepath.Join("/sys/block", b.Name())
		addLink(link)
		real, err := filepath.EvalSymlinks(link)
		if err != nil {
			continue
		}
		addFiles(real)
		addFiles(filepath.Join(real, "queue"))
		addFiles(filepath.Join(real, "loop"))
		addLink(filepath.Join(real, "device"))
		dev, err := filepath.EvalSymlinks(filepath.Join(real, "device"))
		if err != nil {
			continue
		}
		addFiles(dev)
		addLink(filepath.Join(dev, "device"))
		for p := dev; p != "/sys/devices" && p != "/"; p = filepath.Dir(p) {
			addLink(filepath.Join(p, "driver"))
		}
		if pci, err := filepath.EvalSymlinks(filepath.Join(dev, "device")); err == nil {
			addLink(filepath.Join(pci, "driver"))
		}
	}
	hosts, _ := os.ReadDir("/sys/class/scsi_host")
	for _, h := range hosts {
		link := filepath.Join("/sys/class/scsi_host", h.Name())
		addLink(link)
		if real, err := filepath.EvalSymlinks(link); err == nil {
			addFiles(real)
		}
	}
	must(t, tw.Close())
	must(t, zw.Close())
	enc := base64.StdEncoding.EncodeToString(buf.Bytes())
	const chunk = 1000
	n := (len(enc) + chunk - 1) / chunk
	for i := 0; i < n; i++ {
		fmt.Fprintf(os.Stdout, "\n%s%d/%d %s\n", capturePrefix, i, n, enc[i*chunk:min(len(enc), (i+1)*chunk)])
	}
}

var captureLine = regexp.MustCompile(regexp.QuoteMeta(capturePrefix) + `([0-9]+)/([0-9]+) ([A-Za-z0-9+/=]+)`)

// writeCapture reassembles the capture lines of console into dir,
// replacing what was there.
func writeCapture(console, dir string) error {
	var parts []string
	for _, m := range captureLine.FindAllStringSubmatch(console, -1) {
		i, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		if parts == nil {
			parts = make([]string, n)
		}
		if i < len(parts) {
			parts[i] = m[3]
		}
	}
	if len(parts) == 0 {
		return fmt.Errorf("no %q lines on the console", capturePrefix)
	}
	for i, p := range parts {
		if p == "" {
			return fmt.Errorf("capture line %d of %d missing", i, len(parts))
		}
	}
	raw, err := base64.StdEncoding.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"dev", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, d, ".keep"), nil, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
