package qemu

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// newc is a writer of "newc" (SVR4, magic 070701) cpio archives, the
// format the Linux kernel unpacks as an initramfs. It writes every parent
// directory before its first child, uses zero times and owners so the same
// inputs give the same bytes, and never writes a name twice.
type newc struct {
	w    io.Writer
	ino  uint32
	seen map[string]bool
	err  error
}

func newNewc(w io.Writer) *newc { return &newc{w: w, ino: 1, seen: map[string]bool{}} }

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// clean turns a guest path into an archive name without a leading slash.
func cleanName(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || c == "." || strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("cpio: bad path %q", p)
	}
	return c, nil
}

func (a *newc) header(name string, mode uint32, size int64, rmajor, rminor uint32) {
	if a.err != nil {
		return
	}
	if size > 0xffffffff {
		a.err = fmt.Errorf("cpio: %s: %d bytes is too large for newc", name, size)
		return
	}
	nlink := uint32(1)
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		a.ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
	a.ino++
	a.write([]byte(hdr))
	a.write([]byte(name))
	a.write([]byte{0})
	a.pad(int64(len(hdr) + len(name) + 1))
}

func (a *newc) write(b []byte) {
	if a.err != nil {
		return
	}
	_, a.err = a.w.Write(b)
}

func (a *newc) pad(n int64) {
	if r := n % 4; r != 0 {
		a.write(make([]byte, 4-r))
	}
}

// parents writes the missing parent directories of name.
func (a *newc) parents(name string) {
	dir := path.Dir(name)
	if dir == "." || a.seen[dir] {
		return
	}
	a.parents(dir)
	a.seen[dir] = true
	a.header(dir, modeDir|0o755, 0, 0, 0)
}

// claim reserves a name; it reports false when the name was written before.
func (a *newc) claim(p string) (string, bool) {
	name, err := cleanName(p)
	if err != nil {
		if a.err == nil {
			a.err = err
		}
		return "", false
	}
	if a.seen[name] {
		return name, false
	}
	a.parents(name)
	a.seen[name] = true
	return name, true
}

// Dir adds a directory.
func (a *newc) Dir(p string, perm uint32) {
	if name, ok := a.claim(p); ok {
		a.header(name, modeDir|perm&0o7777, 0, 0, 0)
	}
}

// Bytes adds a regular file with the given contents.
func (a *newc) Bytes(p string, perm uint32, data []byte) {
	if name, ok := a.claim(p); ok {
		a.header(name, modeFile|perm&0o7777, int64(len(data)), 0, 0)
		a.write(data)
		a.pad(int64(len(data)))
	}
}

// HostFile adds a copy of the host file src (symlinks followed) at p.
func (a *newc) HostFile(p, src string) {
	if a.err != nil {
		return
	}
	f, err := os.Open(src)
	if err != nil {
		a.err = fmt.Errorf("cpio: add %s: %w", p, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		a.err = fmt.Errorf("cpio: add %s: %w", p, err)
		return
	}
	if !st.Mode().IsRegular() {
		a.err = fmt.Errorf("cpio: add %s: %s is not a regular file", p, src)
		return
	}
	name, ok := a.claim(p)
	if !ok {
		return
	}
	a.header(name, modeFile|uint32(st.Mode().Perm()), st.Size(), 0, 0)
	if a.err != nil {
		return
	}
	n, err := io.Copy(a.w, f)
	if err == nil && n != st.Size() {
		err = fmt.Errorf("%s changed size while copied (%d of %d bytes)", src, n, st.Size())
	}
	if err != nil {
		a.err = fmt.Errorf("cpio: add %s: %w", p, err)
		return
	}
	a.pad(n)
}

// Symlink adds a symbolic link at p pointing to target.
func (a *newc) Symlink(p, target string) {
	if name, ok := a.claim(p); ok {
		a.header(name, modeSymlink|0o777, int64(len(target)), 0, 0)
		a.write([]byte(target))
		a.pad(int64(len(target)))
	}
}

// CharDev adds a character device node.
func (a *newc) CharDev(p string, perm, major, minor uint32) {
	if name, ok := a.claim(p); ok {
		a.header(name, modeChar|perm&0o7777, 0, major, minor)
	}
}

// Close writes the trailer and returns the first error met.
func (a *newc) Close() error {
	a.header("TRAILER!!!", 0, 0, 0, 0)
	return a.err
}
