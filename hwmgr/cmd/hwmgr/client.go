package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/stowage/stowage/hwmgr/api"
	"github.com/stowage/stowage/hwmgr/node"
)

// jobUsage is the usage of `hwmgr burnin` and `hwmgr erase`.
const jobUsage = `usage: hwmgr %[1]s start [flags] DRIVE[=SERIAL]...   start a %[1]s of the drives (admin token)
       hwmgr %[1]s status [flags] [DRIVE]             progress and ETA (all drives' jobs without DRIVE)
       hwmgr %[1]s cancel [flags] DRIVE               cancel a running %[1]s (admin token)
       hwmgr %[1]s report [flags] DRIVE               print the JSON report of the last %[1]s
DRIVE is an ID, serial, WWN or kernel name; =SERIAL confirms a drive that
holds data (or, for burn-in, a ready drive). The daemon's address and token
come from -url / -token-file, else $HWMGR_URL / $HWMGR_TOKEN.
`

// jobClient talks to the daemon's API.
type jobClient struct {
	base  string
	token string
	http  *http.Client
}

func (c jobClient) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// problemText turns an error response into one line.
func problemText(status int, b []byte) string {
	var p api.Problem
	if json.Unmarshal(b, &p) == nil && p.Title != "" {
		slug := strings.TrimPrefix(p.Type, api.ProblemBase)
		return fmt.Sprintf("%d %s (%s): %s", status, p.Title, slug, p.Detail)
	}
	return fmt.Sprintf("%d: %s", status, strings.TrimSpace(string(b)))
}

func printJob(w io.Writer, j node.Job) {
	line := fmt.Sprintf("%-12s %-7s %-10s %-10s %6.1f%%  %s/%s", j.Drive, j.Kind, j.State, j.Step, 100*j.Ratio(),
		fmtBytes(j.DoneBytes), fmtBytes(j.TotalBytes))
	if j.Active() && j.ETASeconds > 0 {
		line += "  ETA " + (time.Duration(j.ETASeconds) * time.Second).String()
	}
	if j.Resumed {
		line += "  (resumed)"
	}
	for _, r := range j.Reasons {
		line += "\n    " + r
	}
	fmt.Fprintln(w, line)
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}

// jobCommand runs `hwmgr burnin ...` or `hwmgr erase ...`.
func jobCommand(ctx context.Context, kind node.JobKind, args []string, stdout, stderr io.Writer) int {
	usage := func() int { fmt.Fprintf(stderr, jobUsage, kind); return 2 }
	if len(args) == 0 {
		return usage()
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("hwmgr "+string(kind)+" "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("HWMGR_URL", "http://127.0.0.1"+DefaultListen), "daemon API base URL")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default $HWMGR_TOKEN)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each request")
	body := api.JobBody{}
	watch := false
	switch sub {
	case "start":
		fs.StringVar(&body.Reason, "reason", "", "reason recorded in the label history")
		if kind == node.JobBurnIn {
			fs.IntVar(&body.Passes, "passes", 0, "write+verify passes (0: 1)")
			fs.Float64Var(&body.Share, "share", 0, "share of the drive burned in, (0, 1] (0: all)")
			fs.StringVar(&body.SelfTest, "self-test", "", "SMART self-test: short (default), long or none")
		} else {
			fs.StringVar(&body.Method, "method", "", "auto (default: strongest the drive supports, with fallbacks) or one method by name (see hwmgr/erase)")
			fs.BoolVar(&body.Retire, "retire", false, "retire the drive after a passed erase (else it becomes ready)")
		}
	case "status":
		fs.BoolVar(&watch, "watch", false, "repeat every 2s until no job is queued or running")
	case "cancel", "report":
	default:
		return usage()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	token := os.Getenv("HWMGR_TOKEN")
	if *tokenFile != "" {
		toks, err := api.ReadTokenFile(*tokenFile)
		if err != nil {
			fmt.Fprintln(stderr, "hwmgr:", err)
			return 1
		}
		token = toks[0]
	}
	if _, err := url.Parse(*base); err != nil {
		fmt.Fprintln(stderr, "hwmgr: -url:", err)
		return 2
	}
	c := jobClient{base: *base, token: token, http: &http.Client{Timeout: *timeout}}
	fail := func(err error) int { fmt.Fprintln(stderr, "hwmgr:", err); return 1 }
	one := func() (string, bool) {
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "hwmgr %s %s: name one drive\n", kind, sub)
			return "", false
		}
		return url.PathEscape(fs.Arg(0)), true
	}
	switch sub {
	case "start":
		if fs.NArg() == 0 {
			fmt.Fprintf(stderr, "hwmgr %s start: name at least one drive\n", kind)
			return 2
		}
		for _, a := range fs.Args() {
			d, s, _ := strings.Cut(a, "=")
			body.Drives = append(body.Drives, node.JobDrive{Drive: d, Serial: s})
		}
		status, b, err := c.do(ctx, "POST", "/v1/"+string(kind), body)
		if err != nil {
			return fail(err)
		}
		if status != http.StatusAccepted {
			return fail(fmt.Errorf("%s", problemText(status, b)))
		}
		var l api.JobList
		if err := json.Unmarshal(b, &l); err != nil {
			return fail(err)
		}
		for _, j := range l.Jobs {
			printJob(stdout, j)
		}
		return 0
	case "status":
		for {
			var jobs []node.Job
			if fs.NArg() == 0 {
				status, b, err := c.do(ctx, "GET", "/v1/jobs", nil)
				if err != nil {
					return fail(err)
				}
				if status != http.StatusOK {
					return fail(fmt.Errorf("%s", problemText(status, b)))
				}
				var l api.JobList
				if err := json.Unmarshal(b, &l); err != nil {
					return fail(err)
				}
				for _, j := range l.Jobs {
					if j.Kind == kind {
						jobs = append(jobs, j)
					}
				}
			} else {
				id, ok := one()
				if !ok {
					return 2
				}
				status, b, err := c.do(ctx, "GET", "/v1/drives/"+id+"/"+string(kind), nil)
				if err != nil {
					return fail(err)
				}
				if status != http.StatusOK {
					return fail(fmt.Errorf("%s", problemText(status, b)))
				}
				var j node.Job
				if err := json.Unmarshal(b, &j); err != nil {
					return fail(err)
				}
				jobs = append(jobs, j)
			}
			active := false
			for _, j := range jobs {
				printJob(stdout, j)
				active = active || j.Active()
			}
			if !watch || !active {
				return 0
			}
			select {
			case <-ctx.Done():
				return 1
			case <-time.After(2 * time.Second):
			}
		}
	case "cancel", "report":
		id, ok := one()
		if !ok {
			return 2
		}
		method, path, want := "DELETE", "/v1/drives/"+id+"/"+string(kind), http.StatusAccepted
		if sub == "report" {
			method, path, want = "GET", path+"/report", http.StatusOK
		}
		status, b, err := c.do(ctx, method, path, nil)
		if err != nil {
			return fail(err)
		}
		if status != want {
			return fail(fmt.Errorf("%s", problemText(status, b)))
		}
		if sub == "cancel" {
			var j node.Job
			if err := json.Unmarshal(b, &j); err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "cancel requested: ")
			printJob(stdout, j)
			return 0
		}
		stdout.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			fmt.Fprintln(stdout)
		}
		return 0
	}
	return usage()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
