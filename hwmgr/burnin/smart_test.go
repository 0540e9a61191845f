package burnin

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/smart"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

// capturedSMART replays a real smartctl capture: the first call returns it
// as captured, later calls with attribute 5 (reallocated sectors) grown by
// grow, as a drive remapping sectors during the burn-in would report.
type capturedSMART struct {
	raw   []byte
	grow  uint64
	calls int
}

func (c *capturedSMART) Run(ctx context.Context, device, deviceType string) (*smart.Output, error) {
	rec, err := smart.Parse(c.raw)
	if err != nil {
		return nil, err
	}
	if c.calls > 0 {
		for i := range rec.ATA.Attributes {
			if rec.ATA.Attributes[i].ID == 5 {
				rec.ATA.Attributes[i].Raw += c.grow
			}
		}
	}
	c.calls++
	return &smart.Output{Raw: c.raw, Record: rec}, nil
}

// TestSMARTDeltaJudged runs burn-ins whose SMART source grows the
// reallocated-sector count by 1 (a warning) and by 20 (hwmgr/health fails
// growth of 10 or more): only the second fails, with a smart reason.
func TestSMARTDeltaJudged(t *testing.T) {
	raw, err := os.ReadFile("../smart/testdata/smartctl-json/sat-Western_Digital_Ultrastar_DC_HC550-WDC__WUH721818ALN604-sda.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		grow uint64
		pass bool
	}{{1, true}, {20, false}} {
		path := loopdev.New(t, 32<<20)
		dev := openLoop(t, path)
		src := &capturedSMART{raw: raw, grow: c.grow}
		rep, err := Run(context.Background(), dev, target.Drive{Path: path}, Config{SMART: src})
		if err != nil {
			t.Fatal(err)
		}
		hasSMART := slices.ContainsFunc(rep.Reasons, func(r Reason) bool { return r.Rule == RuleSMART && r.Fail })
		if src.calls != 2 || rep.SMART == nil || rep.Pass != c.pass || hasSMART == c.pass {
			t.Errorf("growth %d: %d SMART samples, pass=%v, reasons %+v, smart %+v", c.grow, src.calls, rep.Pass, rep.Reasons, rep.SMART)
		}
	}
}

// TestZonedBurnIn burns in a zoned zone.Mem (write pointers kept as the
// kernel keeps them): every region is written at its write pointer, and the
// zones are empty again afterwards; the label zones are never touched.
func TestZonedBurnIn(t *testing.T) {
	m, err := zone.NewMem(zone.MemOptions{Kind: zone.KindZoned, ZoneSize: 1 << 20, NumZones: 8, ConvZones: 1, MaxOpen: 2, Path: "memzns"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rep, err := Run(ctx, m, target.Drive{Path: "memzns"}, Config{Passes: 2, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass || len(rep.Regions) != 6 || rep.BytesWritten != 2*6<<20 {
		t.Fatalf("pass=%v regions %d written %d reasons %+v", rep.Pass, len(rep.Regions), rep.BytesWritten, rep.Reasons)
	}
	zs, err := m.ReportZones(ctx, 0, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zs[2:] {
		if z.Cond != zone.CondEmpty {
			t.Errorf("zone %d after burn-in: %s", z.Index, z.Cond)
		}
	}
}
