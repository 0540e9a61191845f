// Command hwmgr is the Stowage hardware manager daemon: it discovers every
// drive of the node, polls SMART and I/O statistics, judges health, keeps
// each drive's lifecycle state in its on-drive label, and serves all of it
// over an HTTP API with Prometheus metrics.
//
//	hwmgr [serve] [flags]          run the daemon (the default)
//	hwmgr smart parse FILE...      print the normalized record and health
//	                               verdict of captured smartctl --json outputs
//	hwmgr burnin start|status|cancel|report ...   burn-in jobs, through the API
//	hwmgr erase start|status|cancel|report ...    erase jobs, through the API
//	hwmgr version                  print the version
//
// See hwmgr/README.md for the flags, the API and the metrics.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/stowage/stowage/hwmgr/node"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		if err := serve(ctx, args, stderr); err != nil {
			fmt.Fprintln(stderr, "hwmgr:", err)
			return 1
		}
		return 0
	case "smart":
		if len(args) == 0 || args[0] != "parse" {
			fmt.Fprintln(stderr, "usage: hwmgr smart parse FILE...")
			return 2
		}
		return smartParse(args[1:], stdout, stderr)
	case "burnin", "erase":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return jobCommand(ctx, node.JobKind(cmd), args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "hwmgr", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: hwmgr [serve] [flags] | hwmgr burnin|erase start|status|cancel|report ... | hwmgr smart parse FILE... | hwmgr version\nhwmgr serve -h lists the flags; hwmgr burnin (or erase) alone its usage.")
		return 0
	}
	fmt.Fprintf(stderr, "hwmgr: unknown command %q (serve, burnin, erase, smart parse, version)\n", cmd)
	return 2
}
