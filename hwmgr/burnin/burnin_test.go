package burnin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const testZone = 8 << 20

func TestPatternClassifies(t *testing.T) {
	b := zone.AlignedBlock(BlockSize)
	fillBlock(b, 77, 5, fillFor(5))
	if m, ok := checkBlock(b, 77, 5, 77*BlockSize); !ok {
		t.Fatalf("a fresh block fails its check: %s", m)
	}
	cases := []struct {
		name string
		mut  func(b []byte)
		lba  uint64
		want string
	}{
		{"bit flip in fill", func(b []byte) { b[1000] ^= 0x10 }, 77, KindCorrupt},
		{"bit flip in header", func(b []byte) { b[9] ^= 1 }, 77, KindCorrupt},
		{"block of another LBA", func(b []byte) { fillBlock(b, 78, 5, fillFor(5)) }, 77, KindMisdirected},
		{"block of another pass", func(b []byte) { fillBlock(b, 77, 4, fillFor(4)) }, 77, KindStale},
		{"zeros", func(b []byte) { clear(b) }, 77, KindMissing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := zone.AlignedBlock(BlockSize)
			copy(x, b)
			c.mut(x)
			m, ok := checkBlock(x, c.lba, 5, int64(c.lba)*BlockSize)
			if ok || m.Kind != c.want || m.LBA != c.lba {
				t.Fatalf("got ok=%v %+v, want kind %s at LBA %d", ok, m, c.want, c.lba)
			}
		})
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	for _, c := range []Config{{Share: 1.5}, {Share: -0.1}, {Passes: -1}, {ChunkSize: 1000}, {Resume: label.Task{Kind: "erase"}}} {
		if err := c.fill(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func openLoop(t *testing.T, path string) zone.Device {
	t.Helper()
	dev, _, err := target.Open(context.Background(), target.Drive{Path: path, Serial: "S-" + path}, target.SkipList{},
		target.Request{Action: lifecycle.ActBurnIn}, testZone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	return dev
}

func TestRegionsSampledDeterministically(t *testing.T) {
	dev := openLoop(t, loopdev.New(t, 128<<20))
	all, err := Regions(context.Background(), dev, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 16 || all[0].Offset != 2*label.RegionSize || all[0].Len != testZone-2*label.RegionSize {
		t.Fatalf("whole drive: %d regions, first %+v; want 16, the first starting past the 2 MiB label area", len(all), all[0])
	}
	a, _ := Regions(context.Background(), dev, 0.25, 42)
	b, _ := Regions(context.Background(), dev, 0.25, 42)
	c, _ := Regions(context.Background(), dev, 0.25, 43)
	if len(a) != 4 || !slices.Equal(a, b) {
		t.Fatalf("share 0.25 seed 42: %v then %v; want the same 4 regions", a, b)
	}
	if slices.Equal(a, c) {
		t.Logf("seeds 42 and 43 happen to pick the same regions: %v", a)
	}
}

// TestFaultsBetweenPasses changes the device between the write and the
// verify pass and checks the burn-in names the damaged LBA and the kind.
func TestFaultsBetweenPasses(t *testing.T) {
	const x, y = int64(5<<20 + 3*BlockSize), int64(20<<20 + 7*BlockSize)
	cases := []struct {
		name  string
		fault func(dev zone.Device) error
		lba   uint64
		kind  string
		found uint64
	}{
		{"byte flipped", func(dev zone.Device) error {
			b := zone.AlignedBlock(BlockSize)
			if _, err := dev.ReadAt(b, x); err != nil {
				return err
			}
			b[2000] ^= 0x01
			_, err := dev.WriteAt(b, x)
			return err
		}, uint64(x / BlockSize), KindCorrupt, 0},
		{"misdirected write", func(dev zone.Device) error {
			b := zone.AlignedBlock(BlockSize)
			if _, err := dev.ReadAt(b, x); err != nil {
				return err
			}
			_, err := dev.WriteAt(b, y)
			return err
		}, uint64(y / BlockSize), KindMisdirected, uint64(x / BlockSize)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := loopdev.New(t, 64<<20)
			dev := openLoop(t, path)
			rep, err := Run(context.Background(), dev, target.Drive{Path: path}, Config{Seed: 9,
				AfterWrite: func(ctx context.Context, pass int) error { return c.fault(dev) }})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Pass || rep.MismatchCount != 1 || len(rep.Mismatches) != 1 {
				t.Fatalf("pass=%v, %d mismatches %+v; want a failure with exactly one", rep.Pass, rep.MismatchCount, rep.Mismatches)
			}
			m := rep.Mismatches[0]
			if m.LBA != c.lba || m.Kind != c.kind || m.FoundLBA != c.found {
				t.Fatalf("mismatch %+v; want LBA %d kind %s found %d", m, c.lba, c.kind, c.found)
			}
			if len(rep.Reasons) == 0 || rep.Reasons[0].Rule != RuleMismatch {
				t.Fatalf("reasons %+v; want %s first", rep.Reasons, RuleMismatch)
			}
		})
	}
}

// TestResumeFromCheckpoint cancels a run in its verify pass, then resumes it
// from the last checkpoint: the resumed run only verifies what the first one
// wrote, and the label written before the burn-in is intact afterwards. The
// SMART baseline (a real capture) is kept in the label by the first run;
// the drive's reallocated sectors grow by 20 before the restart, and the
// resumed run, judging growth from the kept baseline, fails on it (a fresh
// baseline taken at the restart would hide it).
func TestResumeFromCheckpoint(t *testing.T) {
	raw, err := os.ReadFile("../smart/testdata/smartctl-json/sat-Western_Digital_Ultrastar_DC_HC550-WDC__WUH721818ALN604-sda.json")
	if err != nil {
		t.Fatal(err)
	}
	path := loopdev.New(t, 64<<20)
	dev := openLoop(t, path)
	ctx := context.Background()
	area, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := area.Write(ctx, label.Record{State: lifecycle.BurnIn, Serial: "S1"}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last label.Task
	cfg := Config{Seed: 77, SMART: &capturedSMART{raw: raw}, KeepBaseline: func(ctx context.Context, e label.Entry) error {
		_, err := area.Update(ctx, func(r *label.Record) error { r.AddEntry(e); return nil })
		return err
	}, Checkpoint: func(ctx context.Context, tk label.Task) error {
		if _, err := area.Update(ctx, func(r *label.Record) error { r.Task = tk; return nil }); err != nil {
			return err
		}
		last = tk
		if tk.Step == "verify-1" && tk.Done >= 3*testZone {
			cancel()
		}
		return nil
	}}
	rep, err := Run(cctx, dev, target.Drive{Path: path}, cfg)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v; want cancelled", err)
	}
	if rep.BytesWritten != 62<<20 {
		t.Fatalf("first run wrote %d bytes, want the whole drive past the label", rep.BytesWritten)
	}
	if err := area.Rescan(ctx); err != nil {
		t.Fatal(err)
	}
	rec, _ := area.Current()
	if rec.Task.Done != last.Done || rec.Task.Step != "verify-1" {
		t.Fatalf("label task %+v, last checkpoint %+v", rec.Task, last)
	}
	base, ok := LoadBaseline(rec, rec.Task.Started)
	if !ok || base.ATA["5"] != 0 || base.Serial == "" {
		t.Fatalf("baseline kept in the label: %+v %v (history %+v)", base, ok, rec.History)
	}
	// After the restart every sample shows 20 more reallocated sectors.
	cfg.Checkpoint, cfg.Resume, cfg.KeepBaseline = nil, rec.Task, nil
	cfg.SMART, cfg.Baseline = &capturedSMART{raw: raw, grow: 20, calls: 1}, base
	rep, err = Run(ctx, dev, target.Drive{Path: path}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.BytesWritten != 0 || rep.BytesRead != 62<<20-int64(rec.Task.Done) || rep.MismatchCount != 0 {
		t.Fatalf("resumed: wrote %d read %d, %d mismatches (reasons %+v); want no writes, %d read",
			rep.BytesWritten, rep.BytesRead, rep.MismatchCount, rep.Reasons, 62<<20-int64(rec.Task.Done))
	}
	if rep.Pass || !slices.ContainsFunc(rep.Reasons, func(x Reason) bool {
		return x.Rule == RuleSMART && x.Fail && strings.Contains(x.Message, "grew by 20 (0 -> 20)")
	}) {
		t.Fatalf("resumed run judged SMART growth since the restart only: pass=%v reasons %+v", rep.Pass, rep.Reasons)
	}
	area2, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := area2.Current(); !ok || got.Serial != "S1" || got.State != lifecycle.BurnIn {
		t.Fatalf("label after burn-in: %+v %v", got, ok)
	}
	got, err := UpdateLabel(ctx, area2, rep)
	if err != nil {
		t.Fatal(err)
	}
	if last := got.History[len(got.History)-1]; got.Task != (label.Task{}) || last.Kind != label.KindBurnIn || last.Result != label.ResultFail ||
		!strings.Contains(last.Detail, "smart") {
		t.Fatalf("label after UpdateLabel: task %+v, last entry %+v", got.Task, last)
	}
}

// TestBatchFailsThrottledSibling burns in four loop devices of one model in
// parallel; one is throttled with cgroup blkio to 8 MiB/s, a fraction of
// the others' speed, and must fail the sibling rule; the others pass.
func TestBatchFailsThrottledSibling(t *testing.T) {
	var paths []string
	for range 4 {
		paths = append(paths, loopdev.New(t, 64<<20))
	}
	loopdev.Throttle(t, 8<<20, paths[2])
	var mu sync.Mutex
	last := map[string]Progress{}
	var jobs []Job
	for i, p := range paths {
		jobs = append(jobs, Job{Drive: target.Drive{Path: p, Serial: p, Model: "LOOP64", Controller: []string{"hba0", "hba1"}[i%2]},
			ZoneSize: testZone, Config: Config{Seed: uint64(i), Share: 0.25, Progress: func(pr Progress) {
				mu.Lock()
				last[pr.Path] = pr
				mu.Unlock()
			}}})
	}
	// 50%, not the default 80%: the unthrottled siblings share two busy
	// cores, and their spread must not fail one of them.
	res := Batch{PerController: 2, Siblings: SiblingRule{Pct: 50}}.Run(context.Background(), jobs)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Drive.Path, r.Err)
		}
		rep := r.Report
		t.Logf("%s: pass=%v write %.0f MB/s read %.0f MB/s reasons %v", rep.Path, rep.Pass, rep.WriteBps/1e6, rep.ReadBps/1e6, rep.Reasons)
		if pr := last[rep.Path]; pr.Done != pr.Total || pr.Total != rep.BytesWritten+rep.BytesRead {
			t.Errorf("%s: last progress %+v, moved %d bytes", rep.Path, pr, rep.BytesWritten+rep.BytesRead)
		}
		if i == 2 {
			if rep.Pass || !slices.ContainsFunc(rep.Reasons, func(x Reason) bool { return x.Rule == RuleSiblingSlow && x.Fail }) {
				t.Errorf("throttled %s passed: %+v", rep.Path, rep.Reasons)
			}
			continue
		}
		if !rep.Pass {
			t.Errorf("%s failed: %+v", rep.Path, rep.Reasons)
		}
		b, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		var back Report
		if err := json.Unmarshal(b, &back); err != nil || back.BytesWritten != rep.BytesWritten || len(back.Regions) != 2 {
			t.Errorf("JSON report round trip: %v %+v", err, back)
		}
	}
}

// TestBatchDefaultSiblingRule burns in four loop devices of one model
// with the default 80 % rule. Every device is throttled with cgroup blkio,
// so their speeds are the throttle's, not the busy host's: three to
// 8 MB/s, one to 2.5 MB/s (31 % of its siblings). The slow one fails
// sibling-slow, the three others pass. Why this does not flake: the
// median of four is the mean of the middle two, here the two slower fast
// drives, so a fast drive fails only below 2/3 of the next one. Under
// -race on loaded cores a write pass stalls now and then (one of three
// equal drives throttled to 16 MB/s once wrote at 10.3 MB/s against 17.3):
// at 8 MB/s each write pass takes 1.3 s, so a stall weighs half as much.
// The backing files are in memory (/dev/shm; the loop devices still use
// direct I/O), away from the shared host disk, whose load spread writes
// throttled to 8 MB/s over 4.3–8.2 MB/s.
func TestBatchDefaultSiblingRule(t *testing.T) {
	var paths []string
	rates := map[string]int64{}
	for i := range 4 {
		p := loopdev.Attach(t, shmFile(t, 12<<20))
		paths, rates[p] = append(paths, p), 8e6
		if i == 1 {
			rates[p] = 2.5e6
		}
	}
	loopdev.ThrottleEach(t, rates)
	var jobs []Job
	for i, p := range paths {
		jobs = append(jobs, Job{Drive: target.Drive{Path: p, Serial: p, Model: "LOOP12", Controller: "hba0"},
			ZoneSize: testZone, Config: Config{Seed: uint64(i)}})
	}
	res := Batch{PerController: 4}.Run(context.Background(), jobs)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Drive.Path, r.Err)
		}
		rep := r.Report
		t.Logf("%s (%.0f MB/s): pass=%v write %.1f MB/s read %.1f MB/s reasons %v", rep.Path, float64(rates[rep.Path])/1e6,
			rep.Pass, rep.WriteBps/1e6, rep.ReadBps/1e6, rep.Reasons)
		slow := slices.ContainsFunc(rep.Reasons, func(x Reason) bool { return x.Rule == RuleSiblingSlow && x.Fail })
		if want := i == 1; slow != want || rep.Pass == want {
			t.Errorf("%s: pass=%v sibling-slow %v; want sibling-slow %v (reasons %+v)", rep.Path, rep.Pass, slow, want, rep.Reasons)
		}
	}
}

// shmFile writes a backing file of size bytes in /dev/shm (memory) and
// removes it when the test ends.
func shmFile(t *testing.T, size int64) string {
	t.Helper()
	f, err := os.CreateTemp("/dev/shm", "stowage-burnin-*.img")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.Write(bytes.Repeat([]byte{0xa5}, int(size))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// TestLostWriteCaught puts the pass-1 block back at LBA X after pass 2 (a
// write the drive acknowledged but never made): verify-2 names it stale.
func TestLostWriteCaught(t *testing.T) {
	const x = int64(9<<20 + 5*BlockSize)
	path := loopdev.New(t, 32<<20)
	dev := openLoop(t, path)
	saved := zone.AlignedBlock(BlockSize)
	rep, err := Run(context.Background(), dev, target.Drive{Path: path}, Config{Passes: 2, Seed: 3,
		AfterWrite: func(ctx context.Context, pass int) error {
			if pass == 1 {
				_, err := dev.ReadAt(saved, x)
				return err
			}
			_, err := dev.WriteAt(saved, x)
			return err
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.MismatchCount != 1 || rep.Mismatches[0].Kind != KindStale || rep.Mismatches[0].LBA != uint64(x/BlockSize) ||
		rep.Mismatches[0].FoundPass != passID(3, 1) {
		t.Fatalf("pass=%v mismatches %+v", rep.Pass, rep.Mismatches)
	}
}

// TestIOErrorFailsDrive: a write error injected by zone.Faulty at a known
// offset fails the drive with an io-error reason naming the offset, and no
// verify pass runs.
func TestIOErrorFailsDrive(t *testing.T) {
	path := loopdev.New(t, 32<<20)
	const bad = int64(20 << 20)
	f, err := zone.NewFaulty(openLoop(t, path), 1, zone.Rule{Ops: zone.OpWrite, From: bad, To: bad + BlockSize})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Run(context.Background(), f, target.Drive{Path: path}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || len(rep.Reasons) != 1 || rep.Reasons[0].Rule != RuleIOError || rep.BytesRead != 0 ||
		!strings.Contains(rep.Reasons[0].Message, "offset 20971520") {
		t.Fatalf("pass=%v read %d reasons %+v", rep.Pass, rep.BytesRead, rep.Reasons)
	}
}
