package iostat

import (
	"slices"
	"testing"
)

func TestOutliers(t *testing.T) {
	const hdd, ssd = "ST16000NM001G", "MZQL23T8"
	rd := func(lat float64, ops uint64) Rate { return Rate{ReadLatencyMs: lat, ReadOps: ops} }
	wr := func(lat float64, ops uint64) Rate { return Rate{WriteLatencyMs: lat, WriteOps: ops} }
	for _, tc := range []struct {
		name   string
		rates  map[string]Rate
		models map[string]string
		rule   Rule
		want   []string // drive/op
	}{
		{"one slow drive among six",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "c": rd(8.5, 1000), "d": rd(40, 1000), "e": rd(8.2, 1000), "f": rd(7.9, 1000)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd, "e": hdd, "f": hdd}, Rule{}, []string{"d/read"}},
		{"all healthy",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "c": rd(8.5, 1000), "d": rd(12, 1000)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd}, Rule{}, nil},
		{"group too small",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "d": rd(90, 1000)},
			map[string]string{"a": hdd, "b": hdd, "d": hdd}, Rule{}, nil},
		{"slow but idle drive is not judged",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "c": rd(8.5, 1000), "e": rd(8, 1000), "d": rd(90, 10)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd, "e": hdd}, Rule{}, nil},
		{"models are compared separately",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "c": rd(8.5, 1000), "d": rd(8, 1000),
				"n1": rd(0.1, 1000), "n2": rd(0.1, 1000), "n3": rd(0.12, 1000), "n4": rd(8, 1000)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd, "n1": ssd, "n2": ssd, "n3": ssd, "n4": ssd}, Rule{}, []string{"n4/read"}},
		{"under the absolute floor",
			map[string]Rate{"n1": rd(0.1, 1000), "n2": rd(0.1, 1000), "n3": rd(0.12, 1000), "n4": rd(3, 1000)},
			map[string]string{"n1": ssd, "n2": ssd, "n3": ssd, "n4": ssd}, Rule{}, nil},
		{"wide group: the MAD term protects the tail",
			map[string]Rate{"a": rd(4, 1000), "b": rd(8, 1000), "c": rd(12, 1000), "d": rd(16, 1000), "e": rd(20, 1000), "f": rd(30, 1000)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd, "e": hdd, "f": hdd}, Rule{Factor: 2}, nil},
		{"writes judged on their own",
			map[string]Rate{"a": wr(5, 500), "b": wr(5.5, 500), "c": wr(6, 500), "d": wr(30, 500)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd}, Rule{}, []string{"d/write"}},
		{"no model, reset windows: not judged",
			map[string]Rate{"a": rd(8, 1000), "b": rd(9, 1000), "c": rd(8.5, 1000), "d": {Reset: true, ReadLatencyMs: 90, ReadOps: 1000}, "x": rd(99, 1000)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd, "d": hdd}, Rule{MinGroup: 3}, nil},
		{"custom rule",
			map[string]Rate{"a": rd(8, 100), "b": rd(9, 100), "c": rd(20, 100)},
			map[string]string{"a": hdd, "b": hdd, "c": hdd}, Rule{MinGroup: 3, MinOps: 100, Factor: 2, MADs: 3, FloorMs: 1}, []string{"c/read"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := Outliers(tc.rates, tc.models, tc.rule)
			var got []string
			for _, o := range out {
				got = append(got, o.Drive+"/"+o.Op)
				if o.LatencyMs <= o.ThresholdMs || o.ThresholdMs < o.MedianMs || o.GroupSize < 3 || o.Model != tc.models[o.Drive] || o.String() == "" {
					t.Errorf("outlier numbers do not explain it: %+v", o)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("outliers %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOutlierNumbers checks the reported numbers of the fixture's slow drive.
func TestOutlierNumbers(t *testing.T) {
	a, b := fixtureSamples(t, false)
	rates, err := Rates(a, b)
	if err != nil {
		t.Fatal(err)
	}
	models := map[string]string{"sda": "ST16000NM001G", "sdb": "ST16000NM001G", "sdc": "ST16000NM001G", "sdd": "ST16000NM001G",
		"sde": "ST16000NM001G", "sdf": "ST16000NM001G", "sdg": "ST16000NM001G", "nvme0n1": "MZQL23T8", "loop0": ""}
	out := Outliers(rates, models, Rule{})
	if len(out) != 1 {
		t.Fatalf("outliers %v, want sdd/read only", out)
	}
	o := out[0]
	// Reads: 8, 9, 8.5, 40, 8 ms → median 8.5, |dev| 0.5 0.5 0 31.5 0.5 → MAD 0.5×1.4826;
	// threshold max(3×8.5, 8.5+5×0.7413, 5) = 25.5.
	if o.Drive != "sdd" || o.Op != "read" || !near(o.LatencyMs, 40) || !near(o.MedianMs, 8.5) ||
		!near(o.MADMs, 0.7413) || !near(o.ThresholdMs, 25.5) || o.GroupSize != 5 || o.Ops != 1000 {
		t.Errorf("outlier %+v", o)
	}
}
