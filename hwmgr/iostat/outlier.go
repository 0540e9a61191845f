package iostat

import (
	"fmt"
	"math"
	"sort"
)

// Rule decides which drives are slow against their siblings. Zero fields
// take the defaults in brackets.
//
// For each model and each direction (read, write) separately:
//
//  1. A drive is *loaded* when it completed at least MinOps I/Os of that
//     direction in the window [50] and its Rate is not Reset. Only loaded
//     drives are judged and only they form the group.
//  2. A group needs at least MinGroup loaded drives [4]; smaller groups get
//     no verdict (one or two drives have no "normal" to compare against).
//  3. median is the median of the group's average latencies; MAD the median
//     absolute deviation from it, scaled by 1.4826 so it estimates σ for
//     normally distributed latencies.
//  4. A drive is an outlier when its latency exceeds all three of:
//     Factor × median [3], median + MADs × MAD [5], and FloorMs [5 ms].
//
// Factor keeps a tight group (MAD ≈ 0) from flagging normal jitter; the MAD
// term keeps a widely spread group from flagging its slow tail; the floor
// keeps sub-millisecond flash from flagging a 0.3 ms drive against a
// 0.1 ms median. The median includes the judged drive, so with at least 4
// drives one slow drive cannot hide itself by raising the median.
type Rule struct {
	MinOps   uint64
	MinGroup int
	Factor   float64
	MADs     float64
	FloorMs  float64
}

func (r Rule) withDefaults() Rule {
	if r.MinOps == 0 {
		r.MinOps = 50
	}
	if r.MinGroup == 0 {
		r.MinGroup = 4
	}
	if r.Factor == 0 {
		r.Factor = 3
	}
	if r.MADs == 0 {
		r.MADs = 5
	}
	if r.FloorMs == 0 {
		r.FloorMs = 5
	}
	return r
}

// Outlier is one drive judged slow, with the numbers that made it so.
type Outlier struct {
	Drive       string  `json:"drive"`
	Model       string  `json:"model"`
	Op          string  `json:"op"` // "read" or "write"
	LatencyMs   float64 `json:"latency_ms"`
	Ops         uint64  `json:"ops"`       // I/Os behind LatencyMs
	MedianMs    float64 `json:"median_ms"` // of the group
	MADMs       float64 `json:"mad_ms"`    // scaled MAD of the group
	ThresholdMs float64 `json:"threshold_ms"`
	GroupSize   int     `json:"group_size"` // loaded drives of the model
}

func (o Outlier) String() string {
	return fmt.Sprintf("%s (%s) %s latency %.2f ms over %d I/Os > threshold %.2f ms (group of %d: median %.2f ms, MAD %.2f ms)",
		o.Drive, o.Model, o.Op, o.LatencyMs, o.Ops, o.ThresholdMs, o.GroupSize, o.MedianMs, o.MADMs)
}

// Outliers applies rule to rates (by kernel name); modelOf gives each
// drive's model (vendor and model, as the caller prefers). Drives without
// a model are not judged. The result is sorted by drive, then op.
func Outliers(rates map[string]Rate, modelOf map[string]string, rule Rule) []Outlier {
	rule = rule.withDefaults()
	type entry struct {
		name string
		lat  float64
		ops  uint64
	}
	groups := map[[2]string][]entry{}
	for name, r := range rates {
		m := modelOf[name]
		if m == "" || r.Reset {
			continue
		}
		if r.ReadOps >= rule.MinOps {
			groups[[2]string{m, "read"}] = append(groups[[2]string{m, "read"}], entry{name, r.ReadLatencyMs, r.ReadOps})
		}
		if r.WriteOps >= rule.MinOps {
			groups[[2]string{m, "write"}] = append(groups[[2]string{m, "write"}], entry{name, r.WriteLatencyMs, r.WriteOps})
		}
	}
	var out []Outlier
	for key, g := range groups {
		if len(g) < rule.MinGroup {
			continue
		}
		lats := make([]float64, len(g))
		for i, e := range g {
			lats[i] = e.lat
		}
		med := median(lats)
		dev := make([]float64, len(g))
		for i, l := range lats {
			dev[i] = math.Abs(l - med)
		}
		mad := 1.4826 * median(dev)
		threshold := max(rule.Factor*med, med+rule.MADs*mad, rule.FloorMs)
		for _, e := range g {
			if e.lat > threshold {
				out = append(out, Outlier{
					Drive: e.name, Model: key[0], Op: key[1], LatencyMs: e.lat, Ops: e.ops,
					MedianMs: med, MADMs: mad, ThresholdMs: threshold, GroupSize: len(g),
				})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Drive != out[j].Drive {
			return out[i].Drive < out[j].Drive
		}
		return out[i].Op < out[j].Op
	})
	return out
}

// median of xs (reordered in place); xs is not empty.
func median(xs []float64) float64 {
	sort.Float64s(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
