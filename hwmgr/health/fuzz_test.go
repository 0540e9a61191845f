package health

import (
	"reflect"
	"testing"

	"github.com/stowage/stowage/hwmgr/smart"
)

// FuzzEvaluate feeds two fuzzed smartctl outputs (current and previous)
// through hwmgr/smart and the policy. Oracle: no panic; the verdict is the
// worst of the reasons (ok when there are none); every reason names its
// rule and says why; judging again gives the same result.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte(`{"smartctl":{"exit_status":0},"smart_status":{"passed":true},"ata_smart_attributes":{"table":[{"id":5,"value":100,"worst":100,"thresh":10,"raw":{"value":12,"string":"12"}}]}}`),
		[]byte(`{"smartctl":{"exit_status":0},"smart_status":{"passed":true},"ata_smart_attributes":{"table":[{"id":5,"value":100,"worst":100,"thresh":10,"raw":{"value":1,"string":"1"}}]}}`),
		uint64(3))
	f.Fuzz(func(t *testing.T, cur, prev []byte, kernel uint64) {
		rc, err := smart.Parse(cur)
		if err != nil {
			return
		}
		var ps *Sample
		if rp, err := smart.Parse(prev); err == nil {
			ps = &Sample{SMART: rp}
		}
		s := Sample{SMART: rc, KernelIOErrors: kernel}
		res := Config{}.Evaluate(s, ps)
		worst := OK
		for _, r := range res.Reasons {
			if r.Rule == "" || r.Message == "" || (r.Verdict != Warn && r.Verdict != Fail) {
				t.Fatalf("bad reason %+v", r)
			}
			worst = worst.Worse(r.Verdict)
		}
		if res.Verdict != worst {
			t.Fatalf("verdict %s, worst reason %s", res.Verdict, worst)
		}
		if again := (Config{}).Evaluate(s, ps); !reflect.DeepEqual(again, res) {
			t.Fatalf("not deterministic:\n%+v\n%+v", res, again)
		}
	})
}
