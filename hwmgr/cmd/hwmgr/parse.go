package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/smart"
)

// parsed is what `hwmgr smart parse` prints per file.
type parsed struct {
	File   string        `json:"file"`
	Record *smart.Record `json:"record,omitempty"`
	Health health.Result `json:"health"`
	Error  string        `json:"error,omitempty"`
}

// smartParse prints, for each captured `smartctl --json` output, the
// normalized record and the health verdict (no previous sample, no kernel
// errors), as one JSON object per file. It exits 1 if any file failed.
func smartParse(files []string, stdout, stderr io.Writer) int {
	if len(files) == 0 {
		fmt.Fprintln(stderr, "usage: hwmgr smart parse FILE...")
		return 2
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	rc := 0
	for _, f := range files {
		out := parsed{File: f}
		b, err := os.ReadFile(f)
		if err == nil {
			out.Record, err = smart.Parse(b)
		}
		if err != nil {
			out.Error = err.Error()
			fmt.Fprintf(stderr, "hwmgr: %s: %v\n", f, err)
			rc = 1
		} else {
			out.Health = health.Defaults().Evaluate(health.Sample{SMART: out.Record}, nil)
		}
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(stderr, "hwmgr:", err)
			return 1
		}
	}
	return rc
}
