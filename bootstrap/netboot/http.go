package netboot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HTTP serves the boot over HTTP:
//
//	GET /boot/{mac}.ipxe          the iPXE script for the machine
//	GET /boot/{mac}/kernel        its kernel
//	GET /boot/{mac}/initrd/{i}    its i-th initrd (from 0)
//	GET /files/{path}             any file under the files root (config)
//	GET /metrics                  Prometheus metrics (own registry)
//	GET /healthz                  "ok"
//
// Files are served with http.ServeContent, so Range and If-Modified-Since
// work. Kernels and initrds that are URLs are not served here: the script
// points iPXE straight at them (and /boot/{mac}/kernel redirects there).
type HTTP struct {
	Source    Source
	Files     *os.Root // the files root; nil serves no files
	ServerURL string   // base URL as seen by the machines, e.g. http://10.0.0.1:8080
	Rec       *Recorder
}

// Handler returns the HTTP handler.
func (h *HTTP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", h.script)
	mux.HandleFunc("GET /boot/{mac}/kernel", h.kernel)
	mux.HandleFunc("GET /boot/{mac}/initrd/{i}", h.initrd)
	mux.HandleFunc("GET /files/{path...}", h.files)
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.Rec.Registry(), promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// lookup parses the MAC in the path and asks the source for its boot.
func (h *HTTP) lookup(w http.ResponseWriter, r *http.Request, stage Stage, macStr string) (net.HardwareAddr, Boot, bool) {
	norm, err := NormalizeMAC(macStr)
	if err != nil || len(norm) != len("00:00:00:00:00:00") {
		h.Rec.Ignored("bad_mac", macStr, "stage", string(stage), "remote", r.RemoteAddr)
		httpError(w, http.StatusBadRequest, fmt.Sprintf("bad MAC %q: want six octets like 52:54:00:12:34:56", macStr))
		return nil, Boot{}, false
	}
	mac, _ := net.ParseMAC(norm)
	b, ok, err := h.Source.Boot(r.Context(), mac)
	if err != nil {
		h.Rec.Error(stage, norm, err, "remote", r.RemoteAddr)
		httpError(w, http.StatusInternalServerError, "deciding the boot: "+err.Error())
		return nil, Boot{}, false
	}
	if !ok {
		h.Rec.Ignored("unknown_machine", norm, "stage", string(stage), "remote", r.RemoteAddr)
		httpError(w, http.StatusNotFound, "no profile for "+norm)
		return nil, Boot{}, false
	}
	return mac, b, true
}

func (h *HTTP) script(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	macStr, ok := strings.CutSuffix(file, ".ipxe")
	if !ok {
		httpError(w, http.StatusNotFound, "want /boot/{mac}.ipxe")
		return
	}
	mac, b, ok := h.lookup(w, r, StageScript, macStr)
	if !ok {
		return
	}
	s := Script(b, h.ServerURL, mac)
	h.Rec.Stage(StageScript, mac.String(), b.Profile, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, s)
}

// Script is the iPXE script that boots b. Kernels and initrds that are
// paths are fetched from this server's per-MAC URLs; URLs are used as they
// are. Each initrd is named initrdN and named on the kernel command line
// (initrd=initrdN), which UEFI kernels need to find it and BIOS kernels
// ignore.
func Script(b Boot, serverURL string, mac net.HardwareAddr) string {
	base := strings.TrimSuffix(serverURL, "/") + "/boot/" + mac.String()
	var sb strings.Builder
	sb.WriteString("#!ipxe\n")
	fmt.Fprintf(&sb, "echo Stowage netboot: %s boots profile %s\n", mac, b.Profile)
	kernel := b.Kernel
	if !isURL(kernel) {
		kernel = base + "/kernel"
	}
	args := make([]string, 0, len(b.Initrd)+1)
	for i := range b.Initrd {
		args = append(args, fmt.Sprintf("initrd=initrd%d", i))
	}
	if b.Cmdline != "" {
		args = append(args, b.Cmdline)
	}
	fmt.Fprintf(&sb, "kernel --name kernel %s %s\n", kernel, strings.Join(args, " "))
	for i, ref := range b.Initrd {
		u := ref
		if !isURL(u) {
			u = fmt.Sprintf("%s/initrd/%d", base, i)
		}
		fmt.Fprintf(&sb, "initrd --name initrd%d %s\n", i, u)
	}
	sb.WriteString("boot\n")
	return sb.String()
}

func (h *HTTP) kernel(w http.ResponseWriter, r *http.Request) {
	mac, b, ok := h.lookup(w, r, StageKernel, r.PathValue("mac"))
	if !ok {
		return
	}
	h.serveRef(w, r, StageKernel, mac.String(), b.Profile, b.Kernel)
}

func (h *HTTP) initrd(w http.ResponseWriter, r *http.Request) {
	mac, b, ok := h.lookup(w, r, StageInitrd, r.PathValue("mac"))
	if !ok {
		return
	}
	i, err := strconv.Atoi(r.PathValue("i"))
	if err != nil || i < 0 || i >= len(b.Initrd) {
		httpError(w, http.StatusNotFound, fmt.Sprintf("profile %s has %d initrds; no initrd %q", b.Profile, len(b.Initrd), r.PathValue("i")))
		return
	}
	h.serveRef(w, r, StageInitrd, mac.String(), b.Profile, b.Initrd[i], "index", i)
}

func (h *HTTP) serveRef(w http.ResponseWriter, r *http.Request, stage Stage, mac, profile, ref string, attrs ...any) {
	if isURL(ref) {
		h.Rec.Stage(stage, mac, profile, append(attrs, "redirect", ref, "remote", r.RemoteAddr)...)
		http.Redirect(w, r, ref, http.StatusFound)
		return
	}
	n, err := h.serveFile(w, r, ref)
	if err != nil {
		h.Rec.Error(stage, mac, err, append(attrs, "file", ref, "remote", r.RemoteAddr)...)
		return
	}
	h.Rec.Stage(stage, mac, profile, append(attrs, "file", ref, "bytes", n, "range", r.Header.Get("Range"), "remote", r.RemoteAddr)...)
}

func (h *HTTP) files(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("path")
	if _, err := h.serveFile(w, r, p); err != nil {
		h.Rec.Log().Warn("file request refused", "path", p, "remote", r.RemoteAddr, "err", err)
	}
}

// countingWriter counts body bytes written.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// serveFile serves a file under the files root with Range support. It
// writes the error response itself and returns the error for logging.
func (h *HTTP) serveFile(w http.ResponseWriter, r *http.Request, name string) (int64, error) {
	if h.Files == nil {
		httpError(w, http.StatusNotFound, "this server has no files root")
		return 0, errors.New("no files root")
	}
	if !fs.ValidPath(name) || path.Clean(name) != name {
		httpError(w, http.StatusBadRequest, fmt.Sprintf("bad path %q: want a clean relative path", name))
		return 0, fmt.Errorf("bad path %q", name)
	}
	f, err := h.Files.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			httpError(w, http.StatusNotFound, fmt.Sprintf("%s: not found", name))
		} else {
			httpError(w, http.StatusForbidden, fmt.Sprintf("%s: %v", name, err))
		}
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return 0, err
	}
	if !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, fmt.Sprintf("%s: not a regular file", name))
		return 0, fmt.Errorf("%s: not a regular file", name)
	}
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, path.Base(name), st.ModTime(), f)
	h.Rec.Sent("http", cw.n)
	return cw.n, nil
}
