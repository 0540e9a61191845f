package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/osd/zone"
)

// config is the daemon's flags.
type config struct {
	listen         string
	devices        string
	dataDir        string
	devSize        int64
	k, m           int
	scrubRate      int64
	readTokenFile  string
	adminTokenFile string
	timeouts       server.Timeouts
	logLevel       slog.Level
	sysRoot        string
	zoneSize       int64
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("osd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:9742", "address of the HTTP API")
	fs.StringVar(&c.devices, "devices", "", `drives: comma-separated paths or globs, or "auto" (every whole disk in /sys/block but loop, ram, zram, sr, dm-, md, nbd); empty: dev mode over files in -data-dir`)
	fs.StringVar(&c.dataDir, "data-dir", "./osd-data", "dev mode (-devices empty): directory of the 6 sparse drive files")
	size := fs.String("dev-size", "1GiB", "dev mode: size of each drive file")
	code := fs.String("code", "4+2", "erasure code k+m of new volumes (k ≤ 12, m ≤ 4)")
	rate := fs.String("scrub-rate", "50MiB", "scrub read rate in bytes per second (suffixes KB, MB, GB, KiB, MiB, GiB); 0 disables scrubbing")
	fs.StringVar(&c.readTokenFile, "read-token-file", "", "file of bearer tokens (one a line) for reads")
	fs.StringVar(&c.adminTokenFile, "admin-token-file", "", "file of bearer tokens (one a line) for writes and admin actions")
	fs.DurationVar(&c.timeouts.ReadHeader, "read-header-timeout", server.DefaultTimeouts.ReadHeader, "close connections whose request headers take longer")
	fs.DurationVar(&c.timeouts.Read, "read-timeout", server.DefaultTimeouts.Read, "a request body not in by then gets 408")
	fs.DurationVar(&c.timeouts.Write, "write-timeout", server.DefaultTimeouts.Write, "bound on writing a response")
	fs.DurationVar(&c.timeouts.Idle, "idle-timeout", server.DefaultTimeouts.Idle, "close keep-alive connections idle that long")
	zsz := fs.String("zone-size", "auto", "emulated zone size of conventional drives and files (auto: the largest power of two ≤ 1/64 of the drive, 4 MiB…256 MiB); it must stay the same across restarts")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.sysRoot, "sys-root", "/sys", "where sysfs is mounted (for -devices auto)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if c.k, c.m, err = parseCode(*code); err != nil {
		return c, err
	}
	if c.scrubRate, err = parseBytes(*rate); err != nil {
		return c, fmt.Errorf("-scrub-rate: %w", err)
	}
	if c.devSize, err = parseBytes(*size); err != nil {
		return c, fmt.Errorf("-dev-size: %w", err)
	}
	if *zsz != "auto" {
		if c.zoneSize, err = parseBytes(*zsz); err != nil || c.zoneSize < 1<<20 || c.zoneSize&(c.zoneSize-1) != 0 {
			return c, fmt.Errorf("-zone-size %q: want auto or a power of two ≥ 1MiB", *zsz)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("-log-level: %w", err)
	}
	return c, nil
}

// parseCode parses "k+m".
func parseCode(s string) (k, m int, err error) {
	a, b, ok := strings.Cut(s, "+")
	if ok {
		k, err = strconv.Atoi(a)
		if err == nil {
			m, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || k < 1 || k > 12 || m < 1 || m > 4 {
		return 0, 0, fmt.Errorf("-code %q: want k+m with 1 ≤ k ≤ 12 and 1 ≤ m ≤ 4, e.g. 4+2", s)
	}
	return k, m, nil
}

// parseBytes parses a byte count with an optional SI or IEC suffix.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a byte count", s)
	}
	return n * mult, nil
}

// excluded are the /sys/block name prefixes -devices auto leaves out.
var excluded = []string{"loop", "ram", "zram", "sr", "dm-", "md", "nbd"}

// devicePaths resolves -devices (or dev mode's files).
func devicePaths(c config, log *slog.Logger) ([]string, error) {
	switch c.devices {
	case "":
		return devFiles(c.dataDir, c.k+c.m, c.devSize, log)
	case "auto":
		ents, err := os.ReadDir(filepath.Join(c.sysRoot, "block"))
		if err != nil {
			return nil, fmt.Errorf("-devices auto: %w", err)
		}
		var out []string
	next:
		for _, e := range ents {
			for _, p := range excluded {
				if strings.HasPrefix(e.Name(), p) {
					continue next
				}
			}
			out = append(out, "/dev/"+e.Name())
		}
		return out, nil
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range strings.Split(c.devices, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ms, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("-devices %q: %w", p, err)
		}
		if len(ms) == 0 {
			return nil, fmt.Errorf("-devices: %s: no such device", p)
		}
		sort.Strings(ms)
		for _, m := range ms {
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// devFiles makes (once) n sparse files of size bytes in dir: the drives of
// a dev run.
func devFiles(dir string, n int, size int64, log *slog.Logger) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dev mode: %w", err)
	}
	var out []string
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("drive%d", i))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("dev mode: %w", err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() == 0 {
			err = f.Truncate(size)
			log.Info("dev mode: created drive file", "path", p, "bytes", size)
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("dev mode: %s: %w", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// openDevices opens each path as a zone device. A regular file on a
// filesystem without O_DIRECT (tmpfs) is opened buffered, with a warning.
func openDevices(paths []string, sysRoot string, zoneSz int64, log *slog.Logger) ([]zone.Device, error) {
	var devs []zone.Device
	for _, p := range paths {
		zs, err := zoneSz, error(nil)
		if zs == 0 {
			if zs, err = zoneSize(p); err != nil {
				return nil, err
			}
		}
		d, err := zone.Open(p, zone.Options{SysRoot: sysRoot, ZoneSize: zs})
		if err != nil {
			if st, serr := os.Stat(p); serr == nil && st.Mode().IsRegular() {
				if d, err = zone.Open(p, zone.Options{Buffered: true, ZoneSize: zs}); err == nil {
					log.Warn("dev mode: file opened without O_DIRECT (its filesystem refuses it): not durable across power loss", "path", p)
				}
			}
		}
		if err != nil {
			for _, d := range devs {
				d.Close()
			}
			return nil, err
		}
		devs = append(devs, d)
	}
	return devs, nil
}

// zoneSize is the emulated zone size for a conventional drive or file of
// its size: the largest power of two at most 1/64 of it, from 4 MiB to
// zone.DefaultZoneSize, so that small drives (loop devices, dev-mode
// files) still hold many extents. It depends only on the size, so a
// reopened drive gets the same geometry. Zoned drives keep their own.
func zoneSize(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("%s: size: %w", path, err)
	}
	zs := int64(4 << 20)
	for zs*2 <= size/64 && zs*2 <= zone.DefaultZoneSize {
		zs *= 2
	}
	return zs, nil
}

func readTokens(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("token file %s: no tokens", path)
	}
	return out, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: c.logLevel}))
	read, err := readTokens(c.readTokenFile)
	if err != nil {
		return err
	}
	admin, err := readTokens(c.adminTokenFile)
	if err != nil {
		return err
	}
	paths, err := devicePaths(c, log)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("no drives (-devices %q)", c.devices)
	}
	// Listen and serve first: /healthz answers and /readyz says 503
	// while the drives are opened and recovered (which takes a while on
	// big drives); block routes answer 503 not-ready meanwhile.
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	be := &late{}
	api := server.New(server.Config{
		Store: be, Admin: be, Status: be.Status, Ready: be.ready,
		Tokens: server.NewTokens(read, admin), Logger: log, Context: runCtx,
	})
	hs := server.HTTPServer(api, c.timeouts, log)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	defer hs.Close()

	devs, err := openDevices(paths, c.sysRoot, c.zoneSize, log)
	if err != nil {
		return err
	}
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	st, err := openNodeStore(ctx, devs, storeOptions{k: c.k, m: c.m, scrubRate: c.scrubRate, log: log}, c.sysRoot, c.zoneSize)
	if err != nil {
		return err
	}
	defer st.Close()
	go st.Run(runCtx)
	be.set(st)
	log.Info(fmt.Sprintf("osd API ready on http://%s", ln.Addr()), "drives", len(devs), "code", fmt.Sprintf("%d+%d", c.k, c.m))
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	log.Info("shutting down")
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("shutdown", "err", err)
	}
	return nil
}
