// Command netbootd is Stowage's netboot server: proxyDHCP (UDP 67 and
// 4011) beside the site's DHCP server, read-only TFTP for the iPXE
// binaries, and HTTP for per-MAC iPXE scripts, kernels, initramfs and
// config, with per-MAC profiles from a JSON file (reloaded on change) or a
// pixiecore-compatible API. See bootstrap/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/stowage/stowage/bootstrap/netboot"
	"github.com/stowage/stowage/bootstrap/pxe"
	"github.com/stowage/stowage/bootstrap/tftp"
)

type options struct {
	iface      string
	serverIP   string
	httpListen string
	httpURL    string
	tftpListen string
	tftpRoot   string
	dhcp       bool
	profiles   string
	files      string
	api        string
	reload     time.Duration
	biosFile   string
	efiFile    string
	logFormat  string
	logLevel   string
	procRoot   string
}

func main() {
	var o options
	flag.StringVar(&o.iface, "iface", "", "network interface for proxyDHCP (binds the sockets to it; its first IPv4 address is the default -server-ip)")
	flag.StringVar(&o.serverIP, "server-ip", "", "IPv4 address advertised to clients as next-server, TFTP and HTTP server (default: first IPv4 of -iface)")
	flag.StringVar(&o.httpListen, "http-listen", ":8080", "HTTP listen address")
	flag.StringVar(&o.httpURL, "http-url", "", "HTTP base URL as machines see it (default http://<server-ip>:<http port>)")
	flag.StringVar(&o.tftpListen, "tftp-listen", ":69", "TFTP listen address (empty: no TFTP)")
	flag.StringVar(&o.tftpRoot, "tftp-root", "/usr/lib/ipxe", "directory served over TFTP (Debian's ipxe package puts undionly.kpxe and ipxe.efi here)")
	flag.BoolVar(&o.dhcp, "dhcp", true, "run the proxyDHCP server on UDP 67 and 4011")
	flag.StringVar(&o.profiles, "profiles", "", "profile file (JSON); required unless -api is given")
	flag.StringVar(&o.files, "files", "", "files root for kernels, initrds and /files/ (default: the profile file's directory)")
	flag.StringVar(&o.api, "api", "", "pixiecore-compatible API base URL (GET <api>/v1/boot/<mac>) instead of -profiles")
	flag.DurationVar(&o.reload, "reload", 2*time.Second, "how often to check the profile file for changes")
	flag.StringVar(&o.biosFile, "bios-file", "undionly.kpxe", "TFTP file for BIOS PXE firmware")
	flag.StringVar(&o.efiFile, "efi-file", "ipxe.efi", "TFTP file for x86-64 UEFI PXE firmware")
	flag.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	flag.StringVar(&o.procRoot, "proc", "/proc", "procfs root (for the ARP table: TFTP fetches logged per MAC)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "netbootd: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	log, err := newLogger(o.logFormat, o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbootd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("netbootd failed", "err", err)
		os.Exit(1)
	}
}

func newLogger(format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: %w", level, err)
	}
	hopts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, hopts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, hopts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// serverAddr picks the advertised IPv4 address.
func serverAddr(o options) (net.IP, error) {
	if o.serverIP != "" {
		ip := net.ParseIP(o.serverIP).To4()
		if ip == nil {
			return nil, fmt.Errorf("-server-ip %q: not an IPv4 address", o.serverIP)
		}
		return ip, nil
	}
	if o.iface == "" {
		return nil, errors.New("give -server-ip or -iface")
	}
	ifi, err := net.InterfaceByName(o.iface)
	if err != nil {
		return nil, fmt.Errorf("-iface %s: %w", o.iface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("-iface %s: %w", o.iface, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("-iface %s has no IPv4 address; give -server-ip", o.iface)
}

// checkServable opens name the way the TFTP server will.
func checkServable(root *os.Root, name string) error {
	p, err := tftp.CleanPath(name)
	if err != nil {
		return err
	}
	f, err := root.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", name)
	}
	return nil
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	ip, err := serverAddr(o)
	if err != nil {
		return err
	}
	httpURL := o.httpURL
	if httpURL == "" {
		_, port, err := net.SplitHostPort(o.httpListen)
		if err != nil {
			return fmt.Errorf("-http-listen %q: %w", o.httpListen, err)
		}
		if _, err := strconv.Atoi(port); err != nil {
			return fmt.Errorf("-http-listen %q: numeric port needed to build the URL; give -http-url", o.httpListen)
		}
		httpURL = "http://" + net.JoinHostPort(ip.String(), port)
	}
	rec := netboot.NewRecorder(log)

	// Where boots are decided, and the files root.
	filesDir := o.files
	if filesDir == "" && o.profiles != "" {
		filesDir = filepath.Dir(o.profiles)
	}
	var root *os.Root
	var rootFS fs.FS
	if filesDir != "" {
		if root, err = os.OpenRoot(filesDir); err != nil {
			return fmt.Errorf("-files: %w", err)
		}
		defer root.Close()
		rootFS = root.FS()
	}
	var src netboot.Source
	var fileSrc *netboot.FileSource
	switch {
	case o.api != "" && o.profiles != "":
		return errors.New("give -profiles or -api, not both")
	case o.api != "":
		if src, err = netboot.NewAPISource(o.api, nil); err != nil {
			return err
		}
	case o.profiles != "":
		fileSrc, err = netboot.NewFileSource(netboot.FileSourceConfig{
			Path: o.profiles, Files: rootFS, ServerURL: httpURL, Log: log, OnReload: rec.Reload,
		})
		if err != nil {
			return err
		}
		src = fileSrc
	default:
		return errors.New("give -profiles FILE or -api URL")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if fileSrc != nil {
		goRun("profile watch", func() error { fileSrc.Watch(ctx, o.reload); return nil })
	}

	// HTTP.
	hs := &http.Server{
		Addr:              o.httpListen,
		Handler:           (&netboot.HTTP{Source: src, Files: root, ServerURL: httpURL, Rec: rec}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", o.httpListen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	goRun("http", func() error {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})

	// TFTP.
	if o.tftpListen != "" {
		troot, err := os.OpenRoot(o.tftpRoot)
		if err != nil {
			return fmt.Errorf("-tftp-root: %w", err)
		}
		defer troot.Close()
		// Say now, not when a machine fails to boot, if a boot file
		// cannot be served (Debian's /usr/lib/ipxe/ipxe.efi is a symlink
		// to /boot, outside the root: copy the file in).
		for _, name := range []string{o.biosFile, o.efiFile} {
			if err := checkServable(troot, name); err != nil {
				log.Warn("TFTP boot file cannot be served; copy it into -tftp-root", "file", name, "tftp_root", o.tftpRoot, "err", err)
			}
		}
		tconn, err := net.ListenPacket("udp4", o.tftpListen)
		if err != nil {
			return fmt.Errorf("tftp: %w", err)
		}
		defer tconn.Close()
		ts := &tftp.Server{Root: troot, Log: log, OnTransfer: func(t tftp.Transfer) {
			mac := "unknown"
			if ua, ok := t.Remote.(*net.UDPAddr); ok {
				if m, err := netboot.NeighborMAC(o.procRoot, ua.IP); err == nil {
					mac = m.String()
				}
			}
			if t.Err != nil {
				rec.Error(netboot.StageTFTP, mac, t.Err, "file", t.Filename, "remote", t.Remote.String())
				return
			}
			rec.Sent("tftp", t.Bytes)
			rec.Stage(netboot.StageTFTP, mac, "", "file", t.Filename, "bytes", t.Bytes, "blksize", t.BlkSize, "remote", t.Remote.String())
		}}
		goRun("tftp", func() error { return ts.Serve(ctx, tconn) })
	}

	// proxyDHCP.
	if o.dhcp {
		ps := &pxe.Server{
			Config: pxe.Config{ServerIP: ip, HTTPURL: httpURL, BIOSFile: o.biosFile, EFIFile: o.efiFile},
			Lookup: func(ctx context.Context, mac net.HardwareAddr) (string, bool, error) {
				b, ok, err := src.Boot(ctx, mac)
				return b.Profile, ok, err
			},
			Log: log,
			OnDecision: func(port int, d pxe.Decision, raw []byte) {
				mac := d.MAC.String()
				if d.Reply == nil {
					if d.Err != nil {
						rec.Error(netboot.StageDHCPOffer, mac, d.Err, "port", port, "reason", d.Ignore)
					}
					rec.Ignored(d.Ignore, mac, "port", port, "type", d.Type.String())
					return
				}
				stage := netboot.StageDHCPOffer
				if port == pxe.PortPXE {
					stage = netboot.StageDHCPAck
				}
				rec.Stage(stage, mac, d.Profile, "client", d.Client, "arch", uint16(d.Arch), "bootfile", d.BootFile, "port", port)
				log.Debug("proxyDHCP request", "port", port, "mac", mac, "packet", fmt.Sprintf("%x", raw))
			},
		}
		for _, port := range []int{pxe.PortDHCP, pxe.PortPXE} {
			c, err := pxe.Listen(o.iface, port)
			if err != nil {
				return err
			}
			defer c.Close()
			goRun(fmt.Sprintf("proxyDHCP %d", port), func() error { return ps.Serve(ctx, port, c) })
		}
	}
	log.Info("netbootd serving", "server_ip", ip.String(), "http", httpURL, "tftp", o.tftpListen, "tftp_root", o.tftpRoot,
		"proxydhcp", o.dhcp, "iface", o.iface, "profiles", o.profiles, "api", o.api, "files", filesDir)

	<-ctx.Done()
	log.Info("netbootd shutting down")
	shCtx, shCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer shCancel()
	if err := hs.Shutdown(shCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
