// Command osd is the Stowage object storage daemon: it opens the node's
// drives as erasure-coded volumes and serves their blocks over HTTP
// (osd/server), and it is also the command-line client of that API.
//
//	osd [serve] [flags]              run the daemon (the default)
//	osd put [-server URL] FILE...    store each file as a block, print its key
//	osd get [-server URL] KEY [-o F] write a block to stdout (or F)
//	osd ls [-server URL]             list every key
//	osd status [-server URL]         print the node's status as JSON
//	osd admin [-server URL] ACTION [PATH]   add, remove, drain a drive; scrub
//
// See osd/cmd/osd/README.md for the flags, the API and the metrics.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "serve":
		if err := serve(ctx, args, stderr); err != nil {
			fmt.Fprintln(stderr, "osd:", err)
			return 1
		}
		return 0
	case "put", "get", "ls", "status", "admin":
		return cli(ctx, cmd, args, stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: osd [serve] [flags] | osd put|get|ls|status|admin [-server URL] ...\nosd serve -h lists the daemon's flags.")
		return 0
	}
	fmt.Fprintf(stderr, "osd: unknown command %q (serve, put, get, ls, status, admin)\n", cmd)
	return 2
}
