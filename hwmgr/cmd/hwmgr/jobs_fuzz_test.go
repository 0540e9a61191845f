package main

import (
	"encoding/json"
	"testing"

	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/node"
)

// FuzzParamsOf: a job's parameters are read back from a label history note
// (on-disk bytes another process may have written): any detail gives
// parameters or none, never a panic, and what Start writes reads back.
func FuzzParamsOf(f *testing.F) {
	f.Add(`params {"passes":2,"share":0.5,"self_test":"short","zone_size":4194304,"started":"2026-12-02T19:00:00Z","batch":"burnin-1-1"}`)
	f.Add(`params {"method":"auto","retire":true,"started":"2026-12-02T19:00:00Z"}`)
	f.Add(`params {`)
	f.Add(`params null`)
	f.Add(`other`)
	f.Fuzz(func(t *testing.T, detail string) {
		rec := label.Record{History: []label.Entry{{Kind: label.KindNote, Actor: string(node.JobBurnIn), Detail: detail}}}
		p, ok := paramsOf(rec, node.JobBurnIn)
		if !ok {
			return
		}
		// What it read writes back (as Start writes it) and reads the same.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		rec.History = append(rec.History, label.Entry{Kind: label.KindNote, Actor: string(node.JobBurnIn), Detail: paramsPrefix + string(b)})
		q, ok := paramsOf(rec, node.JobBurnIn)
		if !ok || !q.Started.Equal(p.Started) {
			t.Fatalf("round trip of %+v: %+v %v", p, q, ok)
		}
		q.Started = p.Started
		if q != p {
			t.Fatalf("round trip of %+v: %+v", p, q)
		}
	})
}
