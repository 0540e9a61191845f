package smart

import (
	"encoding/json"
	"os"
	"runtime"
	"testing"
	"time"
)

// BenchmarkParse parses all 126 fixtures per iteration. The limit it is
// compared with, measured in the same run, is encoding/json decoding the
// same bytes into a generic value: the least any reader of this JSON does.
// Reported: ns/record, B/record (heap allocated per parse) and
// decode-limit-ratio (Parse time / generic decode time).
func BenchmarkParse(b *testing.B) {
	files := fixtureFiles(b)
	docs := make([][]byte, len(files))
	for i, f := range files {
		d, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		docs[i] = d
	}
	// The two are interleaved, one pass each per iteration, so that both
	// see the same load on a shared machine.
	var limit, elapsed time.Duration
	var before, after runtime.MemStats
	var parseAlloc uint64
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		for _, d := range docs {
			var v any
			if err := json.Unmarshal(d, &v); err != nil {
				b.Fatal(err)
			}
		}
		limit += time.Since(start)
		runtime.ReadMemStats(&before)
		start = time.Now()
		for _, d := range docs {
			if _, err := Parse(d); err != nil {
				b.Fatal(err)
			}
		}
		elapsed += time.Since(start)
		runtime.ReadMemStats(&after)
		parseAlloc += after.TotalAlloc - before.TotalAlloc
	}
	b.StopTimer()
	n := float64(b.N * len(docs))
	b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/record")
	b.ReportMetric(float64(parseAlloc)/n, "B/record")
	b.ReportMetric(float64(elapsed)/float64(limit), "decode-limit-ratio")
}
