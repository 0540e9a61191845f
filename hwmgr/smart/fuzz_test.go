package smart

import "testing"

// FuzzParse: no input panics Parse, and every Record it returns survives a
// JSON round trip unchanged (the Record is what the API and the offline
// `hwmgr smart parse` print, so it must read back as itself).
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"smartctl":{"exit_status":2,"messages":[{"string":"Device is in STANDBY mode, exit(2)","severity":"information"}]}}`))
	f.Add([]byte(`{"smartctl":{"exit_status":0},"ata_smart_attributes":{"table":[{"id":5,"value":100,"worst":100,"thresh":10,"raw":{"value":8,"string":"8"},"flags":{"string":"PO--CK ","prefailure":true}}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := Parse(data)
		if err != nil {
			if rec != nil {
				t.Fatalf("record and error: %v", err)
			}
			return
		}
		checkRoundTrip(t, rec)
	})
}
