package image

import (
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Tree is the content of an initramfs before it is written: every entry
// by its absolute path. Parents are added on demand. Write emits the
// entries sorted by path with inode numbers in that order, uid/gid 0 and
// one fixed mtime, so the same tree gives the same bytes.
type Tree struct {
	entries map[string]*entry
}

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindCharDev
)

type entry struct {
	kind         entryKind
	perm         uint32
	src          string // host file, for kindFile when data is nil
	data         []byte
	target       string
	major, minor uint32
}

// NewTree returns a tree holding only the root directory.
func NewTree() *Tree {
	return &Tree{entries: map[string]*entry{}}
}

// clean turns a guest path into an archive name without the leading slash.
func clean(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || strings.ContainsRune(c, 0) {
		return "", fmt.Errorf("image: bad guest path %q", p)
	}
	return c, nil
}

func (t *Tree) add(p string, e *entry) error {
	name, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := t.entries[name]; ok {
		if old.kind == kindDir && e.kind == kindDir {
			old.perm = e.perm
			return nil
		}
		return fmt.Errorf("image: %s added twice", "/"+name)
	}
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		old, ok := t.entries[d]
		if ok && old.kind != kindDir {
			return fmt.Errorf("image: %s: parent %s is not a directory", "/"+name, "/"+d)
		}
		if !ok {
			t.entries[d] = &entry{kind: kindDir, perm: 0o755}
		}
	}
	t.entries[name] = e
	return nil
}

// Dir adds a directory.
func (t *Tree) Dir(p string, perm uint32) error {
	return t.add(p, &entry{kind: kindDir, perm: perm & 0o7777})
}

// Bytes adds a regular file with the given contents.
func (t *Tree) Bytes(p string, perm uint32, data []byte) error {
	if data == nil {
		data = []byte{}
	}
	return t.add(p, &entry{kind: kindFile, perm: perm & 0o7777, data: data})
}

// HostFile adds a copy of the host file src (symlinks followed) at p with
// mode perm. The file is read when the tree is written.
func (t *Tree) HostFile(p, src string, perm uint32) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("image: %s is not a regular file", src)
	}
	return t.add(p, &entry{kind: kindFile, perm: perm & 0o7777, src: src})
}

// Symlink adds a symbolic link.
func (t *Tree) Symlink(p, target string) error {
	return t.add(p, &entry{kind: kindSymlink, perm: 0o777, target: target})
}

// CharDev adds a character device node.
func (t *Tree) CharDev(p string, perm, major, minor uint32) error {
	return t.add(p, &entry{kind: kindCharDev, perm: perm & 0o7777, major: major, minor: minor})
}

// Paths returns every entry's absolute path, sorted.
func (t *Tree) Paths() []string {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		names[i] = "/" + n
	}
	return names
}

const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
	newcMagic   = "070701"
	trailerName = "TRAILER!!!"
)

// WriteNewc writes the tree as a newc (SVR4, magic 070701) cpio archive,
// the format the kernel unpacks as an initramfs: entries sorted by path
// (so parents come first), inodes numbered in that order, owner 0:0,
// every mtime set to mtime.
func (t *Tree) WriteNewc(w io.Writer, mtime int64) error {
	if mtime < 0 || mtime > 0xffffffff {
		return fmt.Errorf("image: mtime %d does not fit newc's 32 bits", mtime)
	}
	cw := &countWriter{w: w}
	ino := uint32(1)
	header := func(name string, mode uint32, size int64, nlink, rmajor, rminor uint32) error {
		if size > 0xffffffff {
			return fmt.Errorf("image: %s: %d bytes is too large for newc", name, size)
		}
		hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			newcMagic, ino, mode, 0, 0, nlink, uint32(mtime), uint32(size), 0, 0, rmajor, rminor, len(name)+1, 0)
		ino++
		if _, err := io.WriteString(cw, hdr+name+"\x00"); err != nil {
			return err
		}
		return cw.pad()
	}
	for _, p := range t.Paths() {
		name := p[1:]
		e := t.entries[name]
		var err error
		switch e.kind {
		case kindDir:
			err = header(name, modeDir|e.perm, 0, 2, 0, 0)
		case kindSymlink:
			if err = header(name, modeSymlink|e.perm, int64(len(e.target)), 1, 0, 0); err == nil {
				if _, err = io.WriteString(cw, e.target); err == nil {
					err = cw.pad()
				}
			}
		case kindCharDev:
			err = header(name, modeChar|e.perm, 0, 1, e.major, e.minor)
		case kindFile:
			err = t.writeFile(cw, name, e, header)
		}
		if err != nil {
			return fmt.Errorf("image: cpio %s: %w", p, err)
		}
	}
	ino = 0
	if err := header(trailerName, 0, 0, 1, 0, 0); err != nil {
		return fmt.Errorf("image: cpio trailer: %w", err)
	}
	return nil
}

func (t *Tree) writeFile(cw *countWriter, name string, e *entry, header func(string, uint32, int64, uint32, uint32, uint32) error) error {
	if e.data != nil {
		if err := header(name, modeFile|e.perm, int64(len(e.data)), 1, 0, 0); err != nil {
			return err
		}
		if _, err := cw.Write(e.data); err != nil {
			return err
		}
		return cw.pad()
	}
	f, err := os.Open(e.src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := header(name, modeFile|e.perm, st.Size(), 1, 0, 0); err != nil {
		return err
	}
	n, err := io.Copy(cw, f)
	if err == nil && n != st.Size() {
		err = fmt.Errorf("%s changed size while copied (%d of %d bytes)", e.src, n, st.Size())
	}
	if err != nil {
		return err
	}
	return cw.pad()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) pad() error {
	if r := c.n % 4; r != 0 {
		_, err := c.Write(make([]byte, 4-r))
		return err
	}
	return nil
}
