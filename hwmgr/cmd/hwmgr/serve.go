package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stowage/stowage/hwmgr/api"
	"github.com/stowage/stowage/hwmgr/burnin"
	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/discover"
	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/metrics"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/hwmgr/systemd"
)

// DefaultListen is the API's default address (hwmgr.socket uses the same
// port).
const DefaultListen = ":9741"

// options are the serve flags. The zero value is not meaningful; use
// defaultOptions.
type options struct {
	Listen         string
	ReadTokens     []string
	AdminTokens    []string
	ReadTokenFile  string
	AdminTokenFile string
	TLSCert        string
	TLSKey         string

	SysRoot  string
	DevRoot  string
	RunRoot  string
	ProcRoot string
	KmsgPath string

	Smartctl       string
	SmartTimeout   time.Duration
	SmartParallel  int
	SmartInterval  time.Duration
	StatsInterval  time.Duration
	RescanInterval time.Duration
	NoUevents      bool

	IncludeLoop    bool
	LoopBackingDir string
	Devices        []string

	BodyLimit       int64
	EventRing       int
	DontFail        bool
	ShutdownTimeout time.Duration

	LogLevel  string
	LogFormat string

	// Burn-in and erase jobs.
	SkipSerials      []string
	SkipWWNs         []string
	SkipPaths        []string
	JobsPerCtl       int
	JobsAllowLab     bool
	ReportDir        string
	BurninRegionSize int64
	SiblingPct       float64
	SiblingMinGroup  int
	FailSlowRegions  bool
	BurninMaxTemp    int64
	BurninSMARTEvery time.Duration
}

func defaultOptions() options {
	return options{
		Listen: DefaultListen, SysRoot: "/sys", DevRoot: "/dev", RunRoot: "/run", ProcRoot: "/proc",
		KmsgPath: "/dev/kmsg", Smartctl: "smartctl", SmartTimeout: smart.DefaultTimeout, SmartParallel: 4,
		SmartInterval: 10 * time.Minute, StatsInterval: 10 * time.Second, RescanInterval: time.Minute,
		BodyLimit: api.DefaultBodyLimit, EventRing: 1024, ShutdownTimeout: 10 * time.Second,
		LogLevel: "info", LogFormat: "text",
		JobsPerCtl: 8, ReportDir: "/run/hwmgr/reports", SiblingPct: burnin.DefaultSiblingPct, SiblingMinGroup: 3,
		BurninSMARTEvery: 5 * time.Minute,
	}
}

type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}
func (l listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l.p = append(*l.p, v)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := defaultOptions()
	fs := flag.NewFlagSet("hwmgr serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", o.Listen, "API address (ignored under systemd socket activation)")
	fs.Var(listFlag{&o.ReadTokens}, "read-token", "bearer token of the read role (repeatable; visible in ps: prefer -read-token-file)")
	fs.Var(listFlag{&o.AdminTokens}, "admin-token", "bearer token of the admin role (repeatable; prefer -admin-token-file)")
	fs.StringVar(&o.ReadTokenFile, "read-token-file", "", "file of read tokens, one per line")
	fs.StringVar(&o.AdminTokenFile, "admin-token-file", "", "file of admin tokens, one per line; without any admin token, actions are refused")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "TLS certificate (PEM); with -tls-key, serve HTTPS")
	fs.StringVar(&o.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&o.SysRoot, "sys-root", o.SysRoot, "sysfs mount point")
	fs.StringVar(&o.DevRoot, "dev-root", o.DevRoot, "devtmpfs mount point")
	fs.StringVar(&o.RunRoot, "run-root", o.RunRoot, "directory holding udev/data")
	fs.StringVar(&o.ProcRoot, "proc-root", o.ProcRoot, "procfs mount point (diskstats)")
	fs.StringVar(&o.KmsgPath, "kmsg", o.KmsgPath, "kernel log device for I/O errors (\"\" disables)")
	fs.StringVar(&o.Smartctl, "smartctl", o.Smartctl, "smartctl binary (\"\" disables SMART polling)")
	fs.DurationVar(&o.SmartTimeout, "smart-timeout", o.SmartTimeout, "bound on one smartctl run")
	fs.IntVar(&o.SmartParallel, "smart-parallel", o.SmartParallel, "concurrent smartctl runs")
	fs.DurationVar(&o.SmartInterval, "smart-interval", o.SmartInterval, "SMART poll interval (drives in standby are not woken)")
	fs.DurationVar(&o.StatsInterval, "stats-interval", o.StatsInterval, "I/O statistics sampling interval")
	fs.DurationVar(&o.RescanInterval, "rescan-interval", o.RescanInterval, "periodic rescan (hot-plug uevents trigger one at once)")
	fs.BoolVar(&o.NoUevents, "no-uevents", false, "do not listen to kernel uevents (periodic rescans only)")
	fs.BoolVar(&o.IncludeLoop, "include-loop", false, "count loop devices as drives (tests)")
	fs.StringVar(&o.LoopBackingDir, "loop-backing-dir", "", "with -include-loop, only loop devices backed by files below this directory")
	fs.Var(listFlag{&o.Devices}, "devices", "only these kernel names (comma-separated; default all)")
	fs.Int64Var(&o.BodyLimit, "body-limit", o.BodyLimit, "request body limit in bytes")
	fs.IntVar(&o.EventRing, "event-ring", o.EventRing, "events kept for Last-Event-ID resume")
	fs.BoolVar(&o.DontFail, "no-auto-fail", false, "report a failing verdict without moving the drive to failed")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", o.ShutdownTimeout, "graceful shutdown bound")
	fs.Var(listFlag{&o.SkipSerials}, "skip-serial", "serials burn-in and erase never touch (repeatable; no request overrides it)")
	fs.Var(listFlag{&o.SkipWWNs}, "skip-wwn", "WWNs burn-in and erase never touch (repeatable)")
	fs.Var(listFlag{&o.SkipPaths}, "skip-path", "device paths (/dev/disk/by-path/..., by-id, /dev/sdX) burn-in and erase never touch (repeatable)")
	fs.IntVar(&o.JobsPerCtl, "jobs-per-controller", o.JobsPerCtl, "concurrent burn-in/erase jobs per controller (PCI function)")
	fs.BoolVar(&o.JobsAllowLab, "jobs-allow-lab", false, "let burn-in and erase run on loop and null_blk devices (tests; other virtual devices are always refused)")
	fs.StringVar(&o.ReportDir, "report-dir", o.ReportDir, "directory for burn-in and erase JSON reports (\"\": memory only)")
	fs.Int64Var(&o.BurninRegionSize, "burnin-region-size", 0, "burn-in region (checkpoint unit) on conventional drives, bytes (0: 256 MiB)")
	fs.Float64Var(&o.SiblingPct, "sibling-pct", o.SiblingPct, "burn-in fails a drive below this percent of the median throughput of its model's drives in the batch")
	fs.IntVar(&o.SiblingMinGroup, "sibling-min-group", o.SiblingMinGroup, "fewest drives of a model the sibling rule compares")
	fs.BoolVar(&o.FailSlowRegions, "fail-slow-regions", false, "fail a burn-in whose read pass finds a region below half the drive's median region speed (default: a warning in the report)")
	fs.Int64Var(&o.BurninMaxTemp, "burnin-max-temp", 0, "burn-in temperature ceiling in °C, judged on the peak SMART reading (0: the drive's own limit, else 60 HDD / 70 SSD and NVMe; -1: none)")
	fs.DurationVar(&o.BurninSMARTEvery, "burnin-smart-interval", o.BurninSMARTEvery, "SMART sampling interval during a burn-in, for the temperature peak (drives in standby are not woken)")
	fs.StringVar(&o.LogLevel, "log-level", o.LogLevel, "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", o.LogFormat, "text or json")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	for _, f := range []struct {
		path string
		into *[]string
	}{{o.ReadTokenFile, &o.ReadTokens}, {o.AdminTokenFile, &o.AdminTokens}} {
		if f.path == "" {
			continue
		}
		toks, err := api.ReadTokenFile(f.path)
		if err != nil {
			return o, err
		}
		*f.into = append(*f.into, toks...)
	}
	return o, nil
}

func newLogger(o options, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", o.LogLevel, err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: text or json", o.LogFormat)
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	l, activated, err := systemd.Listen(o.Listen)
	if err != nil {
		return err
	}
	log.Info("hwmgr starting", "version", version, "addr", l.Addr().String(), "socket_activated", activated, "tls", o.TLSCert != "")
	return runDaemon(ctx, o, l, log, nil)
}

func nodeInfo(o options) node.Info {
	h, _ := os.Hostname()
	info := node.Info{Hostname: h, Version: version}
	if b, err := os.ReadFile(o.ProcRoot + "/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		info.MachineID = strings.TrimSpace(string(b))
	}
	return info
}

// daemon is one running hwmgr: the node, its sources and the HTTP server.
type daemon struct {
	node    *node.Node
	scanner *discover.Scanner
	handler http.Handler
	jobs    *jobManager
}

func newDaemon(ctx context.Context, o options, log *slog.Logger, kernel *ioErrorCounter) (*daemon, error) {
	scanner := discover.NewScanner(discover.Config{SysRoot: o.SysRoot, DevRoot: o.DevRoot, RunRoot: o.RunRoot,
		Filter: discover.Filter{Loop: o.IncludeLoop, LoopBackingDir: o.LoopBackingDir, Names: o.Devices},
		Logger: log.With("component", "discover")})
	cfg := node.Config{
		Drives: driveSource{scanner: scanner},
		Health: healthPolicy{cfg: health.Defaults(), kernel: kernel},
		Info:   nodeInfo(o), RescanInterval: o.RescanInterval, SMARTInterval: o.SmartInterval,
		StatsInterval: o.StatsInterval, SMARTParallel: o.SmartParallel, EventRing: o.EventRing,
		DontFail: o.DontFail, Logger: log.With("component", "node"),
	}
	if o.Smartctl != "" {
		cfg.SMART = smartSource{runner: smart.Runner{Path: o.Smartctl, Timeout: o.SmartTimeout}, now: time.Now}
	}
	if err := wireExtras(&cfg, o, log); err != nil {
		return nil, err
	}
	n := node.New(cfg)
	m, err := metrics.New(n)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	jc := jobConfig{
		Skip:          target.SkipList{Serials: o.SkipSerials, WWNs: o.SkipWWNs, Paths: o.SkipPaths},
		PerController: o.JobsPerCtl, AllowLab: o.JobsAllowLab, ReportDir: o.ReportDir, ZoneSize: o.BurninRegionSize,
		Siblings: burnin.SiblingRule{Pct: o.SiblingPct, MinGroup: o.SiblingMinGroup}, SysRoot: o.SysRoot,
		FailSlowRegions: o.FailSlowRegions, MaxTempC: o.BurninMaxTemp, SMARTInterval: o.BurninSMARTEvery,
	}
	if o.Smartctl != "" {
		jc.SMART = smart.Runner{Path: o.Smartctl, Timeout: o.SmartTimeout}
		jc.SelfTest = burnin.Smartctl{Path: o.Smartctl, Timeout: o.SmartTimeout}
	}
	jobs := newJobManager(ctx, jc, n, cfg.Labels.(*labelStore), log.With("component", "jobs"))
	a := api.New(api.Config{Node: n, Tokens: api.NewTokens(o.ReadTokens, o.AdminTokens), Metrics: m.Handler(),
		Jobs: jobs, BodyLimit: o.BodyLimit, Logger: log.With("component", "api")})
	return &daemon{node: n, scanner: scanner, handler: a, jobs: jobs}, nil
}

// runDaemon serves on l until ctx ends, then shuts down gracefully.
// started, when not nil, is called once the first scan completed.
func runDaemon(ctx context.Context, o options, l net.Listener, log *slog.Logger, started func(*daemon)) error {
	var kernel *ioErrorCounter
	if o.KmsgPath != "" {
		kernel = newIOErrorCounter()
	}
	bg, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := newDaemon(bg, o, log, kernel)
	if err != nil {
		l.Close()
		return err
	}
	if len(o.AdminTokens) == 0 {
		log.Warn("no admin token configured: drive actions are refused (use -admin-token-file)")
	}
	if len(o.ReadTokens) == 0 && len(o.AdminTokens) == 0 {
		log.Warn("no tokens configured: reads are open to anyone who can reach the API")
	}
	srv := api.HTTPServer(d.handler, log)
	// Requests (event streams above all) end when the daemon stops.
	srv.BaseContext = func(net.Listener) context.Context { return bg }
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			l.Close()
			return fmt.Errorf("TLS: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		l = tls.NewListener(l, srv.TLSConfig)
	}

	var wg sync.WaitGroup
	goBG := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	if kernel != nil {
		goBG(func() { kernel.run(bg, o.KmsgPath, log.With("component", "kmsg")) })
	}
	goBG(func() {
		if err := d.node.Run(bg); err != nil && bg.Err() == nil {
			log.Error("node stopped", "err", err)
		}
	})
	if !o.NoUevents {
		goBG(func() {
			// The node rescans on its own schedule; the watcher only turns
			// uevents into immediate rescans.
			err := d.scanner.Watch(bg, discover.WatchConfig{Interval: 24 * time.Hour}, func(u discover.Update) {
				if u.Reason != "initial" {
					d.node.Trigger()
				}
			})
			if err != nil && bg.Err() == nil {
				log.Warn("hot-plug watcher stopped", "err", err)
			}
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()

	// Ready once the first scan is done (or the context ends first).
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-d.node.ReadyC():
	}
	if ctx.Err() == nil {
		inv := d.node.Inventory()
		if _, err := systemd.Ready(fmt.Sprintf("serving %d drives on %s", len(inv.Drives), l.Addr())); err != nil {
			log.Warn("sd_notify READY failed", "err", err)
		}
		log.Info("hwmgr ready", "drives", len(inv.Drives), "addr", l.Addr().String())
		d.jobs.resume(bg)
		if started != nil {
			started(d)
		}
	}
	if iv, err := systemd.WatchdogInterval(); err != nil {
		log.Warn("watchdog", "err", err)
	} else if iv > 0 {
		goBG(func() {
			// A deadlocked drive table blocks Inventory and stops the pings.
			if err := systemd.Watchdog(bg, iv, func() bool { _ = d.node.Inventory(); return true }); err != nil {
				log.Warn("watchdog pings stopped", "err", err)
			}
		})
	}

	var err2 error
	select {
	case <-ctx.Done():
	case err2 = <-serveErr:
	}
	log.Info("hwmgr stopping")
	if _, err := systemd.Stopping(); err != nil {
		log.Warn("sd_notify STOPPING failed", "err", err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer scancel()
	// Event streams never end by themselves: Shutdown waits for idle
	// connections only, so cancel the background (and the streams' base
	// context) first.
	cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete", "err", err)
		srv.Close()
	}
	wg.Wait()
	d.jobs.wait()
	if err2 != nil && !errors.Is(err2, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err2)
	}
	return nil
}
