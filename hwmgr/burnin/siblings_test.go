package burnin

import "testing"

// TestCompareRule checks the sibling rule on fixed numbers: below 80% of the
// model's median write or read fails, at 81% passes, a model with fewer than
// MinGroup drives is not judged, an unfinished run is left out.
func TestCompareRule(t *testing.T) {
	mk := func(path, model string, w, r float64) *Report {
		return &Report{Path: path, Model: model, Pass: true, WriteBps: w, ReadBps: r, BytesWritten: 1, BytesRead: 1}
	}
	reps := []*Report{
		mk("a", "M1", 100, 100), mk("b", "M1", 100, 100), mk("c", "M1", 100, 100),
		mk("slow-write", "M1", 79, 100), mk("ok-81", "M1", 81, 81), mk("slow-read", "M1", 100, 10),
		mk("x", "M2", 100, 100), mk("lonely-slow", "M2", 1, 1),
		{Path: "unfinished", Model: "M1", Pass: true},
	}
	failed := Compare(reps, SiblingRule{})
	want := map[string]bool{"slow-write": true, "slow-read": true}
	if len(failed) != len(want) {
		t.Errorf("failed %d drives, want %d", len(failed), len(want))
	}
	for _, r := range reps {
		if r.Pass == want[r.Path] {
			t.Errorf("%s: pass=%v reasons %+v", r.Path, r.Pass, r.Reasons)
		}
	}
	// A stricter rule, configured: 90% fails ok-81 too.
	reps = []*Report{mk("a", "M", 100, 100), mk("b", "M", 100, 100), mk("ok-81", "M", 81, 100)}
	if f := Compare(reps, SiblingRule{Pct: 90}); len(f) != 1 || f[0].Path != "ok-81" {
		t.Errorf("90%% rule failed %v", f)
	}
}
