package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/stowage/stowage/osd/client"
	"github.com/stowage/stowage/osd/server"
)

// cli runs a client subcommand against -server.
func cli(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("osd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	srv := fs.String("server", envOr("OSD_SERVER", "http://127.0.0.1:9742"), "URL of the osd API (env OSD_SERVER)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (first line); env OSD_TOKEN otherwise")
	out := fs.String("o", "", "get: write the block to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	token := os.Getenv("OSD_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "osd:", err)
			return 1
		}
		token, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	c, err := client.New(*srv, client.Options{Token: token})
	if err != nil {
		fmt.Fprintln(stderr, "osd:", err)
		return 2
	}
	if err := runCLI(ctx, c, cmd, fs.Args(), *out, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "osd:", err)
		return 1
	}
	return 0
}

func runCLI(ctx context.Context, c *client.Client, cmd string, args []string, out string, stdin io.Reader, stdout io.Writer) error {
	switch cmd {
	case "put":
		if len(args) == 0 {
			return fmt.Errorf("usage: osd put FILE... (- for stdin)")
		}
		for _, name := range args {
			var data []byte
			var err error
			if name == "-" {
				data, err = io.ReadAll(io.LimitReader(stdin, server.MaxBlock+1))
			} else {
				data, err = os.ReadFile(name)
			}
			if err != nil {
				return err
			}
			k, created, err := c.Put(ctx, data)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			state := "stored"
			if !created {
				state = "already stored"
			}
			fmt.Fprintf(stdout, "%s\t%d\t%s\t%s\n", server.FormatKey(k), len(data), state, name)
		}
		return nil
	case "get":
		if len(args) != 1 {
			return fmt.Errorf("usage: osd get KEY [-o FILE]")
		}
		k, err := server.ParseKey(args[0])
		if err != nil {
			return err
		}
		data, err := c.Get(ctx, k)
		if err != nil {
			return err
		}
		if out != "" {
			return os.WriteFile(out, data, 0o644)
		}
		_, err = stdout.Write(data)
		return err
	case "ls":
		var after client.Key
		for {
			keys, next, err := c.List(ctx, after, server.MaxListLimit)
			if err != nil {
				return err
			}
			for _, k := range keys {
				fmt.Fprintln(stdout, server.FormatKey(k))
			}
			if next == nil {
				return nil
			}
			after = *next
		}
	case "status":
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	case "admin":
		if len(args) == 0 || (args[0] != "scrub" && len(args) != 2) {
			return fmt.Errorf("usage: osd admin add|remove|drain PATH | osd admin scrub")
		}
		path := ""
		if len(args) > 1 {
			path = args[1]
		}
		res, err := c.Admin(ctx, args[0], path)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", res.Action, res.Path, res.State)
		return nil
	}
	return fmt.Errorf("unknown command %q", cmd)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
