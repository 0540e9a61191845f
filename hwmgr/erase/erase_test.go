package erase

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stowage/stowage/hwmgr/burnin/target"
	"github.com/stowage/stowage/hwmgr/label"
	"github.com/stowage/stowage/hwmgr/lifecycle"
	"github.com/stowage/stowage/osd/zone"
	"github.com/stowage/stowage/qemu/loopdev"
)

const testZone = 8 << 20

func writeLabel(t *testing.T, path string, rec label.Record) {
	t.Helper()
	ctx := context.Background()
	dev, err := zone.Open(path, zone.Options{ZoneSize: testZone})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	a, err := label.Open(ctx, dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
}

// checkErased reads the whole device with plain reads (not the verifier) and
// requires the label area unchanged and every byte after it to be pattern.
func checkErased(t *testing.T, path string, labelBefore []byte, pattern []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[:2*label.RegionSize], labelBefore) {
		t.Errorf("%s: label area changed by the erase", path)
	}
	want := bytes.Repeat(pattern, BlockSize/len(pattern))
	for off := 2 * label.RegionSize; off < len(b); off += BlockSize {
		if !bytes.Equal(b[off:off+BlockSize], want) {
			t.Fatalf("%s: block at offset %d not erased", path, off)
		}
	}
}

// TestParallelOverwriteErase erases three loop devices at once, with zeros
// and with a pattern, one of them holding an OSD owner payload (so its serial
// is named), and checks every byte past the label area independently.
func TestParallelOverwriteErase(t *testing.T) {
	paths := []string{loopdev.New(t, 64<<20), loopdev.New(t, 64<<20), loopdev.New(t, 96<<20)}
	writeLabel(t, paths[1], label.Record{State: lifecycle.Drained, Serial: "P1", Owner: "osd", Payload: []byte("sb")})
	pats := [][]byte{nil, {0xde, 0xad, 0xbe, 0xef}, nil}
	var heads [][]byte
	for _, p := range paths {
		b := make([]byte, 2*label.RegionSize)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		heads = append(heads, b)
	}
	var jobs []Job
	for i, p := range paths {
		jobs = append(jobs, Job{Drive: target.Drive{Path: p, Serial: []string{"P0", "P1", "P2"}[i], Controller: "hba0"},
			ZoneSize: testZone, Config: Config{Method: Overwrite{Pattern: pats[i]}, Seed: uint64(i + 1)}})
	}
	res := Batch{PerController: 3, Serials: map[string]string{paths[1]: "P1"}}.Run(context.Background(), jobs)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Drive.Path, r.Err)
		}
		rep := r.Report
		if !rep.Pass || rep.Markers < 50 || rep.MarkersFound != 0 || rep.BytesVerified < 2<<20 {
			t.Fatalf("%s: %+v", rep.Path, rep)
		}
		p := pats[i]
		if p == nil {
			p = []byte{0}
		}
		checkErased(t, r.Drive.Path, heads[i], p)
	}
	// The label records the erase and drops the owner payload.
	dev, err := zone.Open(paths[1], zone.Options{ZoneSize: testZone})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	a, err := label.Open(context.Background(), dev, label.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := UpdateLabel(context.Background(), a, res[1].Report)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Owner != "" || rec.Payload != nil || rec.History[len(rec.History)-1].Kind != label.KindErase {
		t.Fatalf("label after erase: %+v", rec)
	}
}

// TestVerificationCatchesSurvivors puts data back after the erase (as a
// drive that ignored writes would) and requires the verification to fail.
func TestVerificationCatchesSurvivors(t *testing.T) {
	path := loopdev.New(t, 64<<20)
	dev, _, err := target.Open(context.Background(), target.Drive{Path: path}, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, testZone)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	cfg := Config{Method: Overwrite{}, Seed: 5, Markers: 8}
	// Where the markers go: the same seed picks the same places.
	spans, err := DataSpans(context.Background(), dev)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterErase = func(ctx context.Context) error {
		// Restore a marker and dirty the last block of the device.
		b := zone.AlignedBlock(BlockSize)
		last := spans[len(spans)-1]
		off := last.Offset + last.Len - BlockSize
		b[0] = 1
		if _, err := dev.WriteAt(b, off); err != nil {
			return err
		}
		return dev.Flush(ctx)
	}
	rep, err := Run(context.Background(), dev, target.Drive{Path: path}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || len(rep.Reasons) == 0 {
		t.Fatalf("dirty block passed: %+v", rep)
	}
	t.Log(rep.Reasons)

	// A marker that survives is named.
	var markerOff int64
	cfg.AfterErase = func(ctx context.Context) error {
		b := zone.AlignedBlock(BlockSize)
		markerBlock(b, markerOff, cfg.Seed)
		if _, err := dev.WriteAt(b, markerOff); err != nil {
			return err
		}
		return dev.Flush(ctx)
	}
	// Find the first marker place by writing markers with the run's seed.
	rng := newRNG(cfg.Seed)
	offs, err := writeMarkers(context.Background(), dev, spans, cfg.Markers, cfg.Seed, rng)
	if err != nil {
		t.Fatal(err)
	}
	markerOff = offs[0]
	rep, err = Run(context.Background(), dev, target.Drive{Path: path}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Pass || rep.MarkersFound != 1 {
		t.Fatalf("surviving marker at %d: %+v", markerOff, rep)
	}
}

// TestZoneReset erases a zoned in-memory device (zone.Mem keeps write
// pointers as the kernel does) and refuses a conventional loop device.
func TestZoneReset(t *testing.T) {
	m, err := zone.NewMem(zone.MemOptions{Kind: zone.KindZoned, ZoneSize: 1 << 20, NumZones: 8, Path: "memzns"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b := zone.AlignedBlock(64 << 10)
	for i := 2; i < 8; i++ {
		for k := range b {
			b[k] = byte(i)
		}
		if _, err := m.WriteAt(b, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Run(ctx, m, target.Drive{Path: "memzns"}, Config{Method: ZoneReset{}, Seed: 3, Markers: 16})
	if err != nil {
		t.Fatal(err)
	}
	zs, _ := m.ReportZones(ctx, 0, 8)
	for _, z := range zs[2:] {
		if z.Cond != zone.CondEmpty || z.WP != z.Start {
			t.Errorf("zone %d after reset: %s wp %d", z.Index, z.Cond, z.WP)
		}
	}
	if !rep.Pass || rep.Markers == 0 {
		t.Fatalf("%+v", rep)
	}
	dev, _, err := target.Open(ctx, target.Drive{Path: loopdev.New(t, 16<<20)}, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := Run(ctx, dev, target.Drive{}, Config{Method: ZoneReset{}}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("zone reset of a loop device: %v", err)
	}
}

// TestGuardRails: an in-service drive, a drive holding data without its
// serial, and a skip-listed drive are refused and unchanged.
func TestGuardRails(t *testing.T) {
	cases := []struct {
		name string
		rec  label.Record
		skip target.SkipList
		ser  string
		want error
	}{
		{"in-service", label.Record{State: lifecycle.InService, Serial: "G1", Owner: "osd", Payload: []byte("x")}, target.SkipList{}, "G1", lifecycle.ErrInService},
		{"payload without serial", label.Record{State: lifecycle.Drained, Serial: "G1", Owner: "osd", Payload: []byte("x")}, target.SkipList{}, "", lifecycle.ErrSerialRequired},
		{"skip list", label.Record{State: lifecycle.Ready, Serial: "G1"}, target.SkipList{Serials: []string{"G1"}}, "G1", target.ErrSkipped},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := loopdev.New(t, 32<<20)
			writeLabel(t, path, c.rec)
			before := loopdev.Hash(t, path)
			res := Batch{Skip: c.skip, Serials: map[string]string{path: c.ser}}.Run(context.Background(),
				[]Job{{Drive: target.Drive{Path: path, Serial: "G1"}, ZoneSize: testZone, Config: Config{Method: Overwrite{}}}})
			if !errors.Is(res[0].Err, c.want) {
				t.Fatalf("%v; want %v", res[0].Err, c.want)
			}
			if after := loopdev.Hash(t, path); after != before {
				t.Fatalf("refused drive changed: %s → %s", before, after)
			}
		})
	}
}

// TestCancelAndProgress cancels an erase from its progress callback: the run
// stops with the context's error, and progress counted up to that point.
func TestCancelAndProgress(t *testing.T) {
	path := loopdev.New(t, 32<<20)
	dev, _, err := target.Open(context.Background(), target.Drive{Path: path}, target.SkipList{}, target.Request{Action: lifecycle.ActErase}, testZone)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last Progress
	_, err = Run(ctx, dev, target.Drive{Path: path}, Config{Method: Overwrite{}, Progress: func(p Progress) {
		last = p
		if p.Done >= 8<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v; want cancelled", err)
	}
	if last.Step != "erase" || last.Done != 8<<20 || last.Total <= last.Done {
		t.Fatalf("last progress %+v", last)
	}
}

func TestBadConfigRefused(t *testing.T) {
	m, err := zone.NewMem(zone.MemOptions{Kind: zone.KindFile, ZoneSize: 4 << 20, NumZones: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, cfg := range map[string]Config{
		"no method":        {},
		"3-byte pattern":   {Method: Overwrite{Pattern: []byte{1, 2, 3}}},
		"odd chunk":        {Method: Overwrite{ChunkSize: 1000}},
		"negative markers": {Method: Overwrite{}, Markers: -1},
		"share above 1":    {Method: Overwrite{}, VerifyShare: 2},
	} {
		if _, err := Run(ctx, m, target.Drive{}, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tiny, err := zone.NewMem(zone.MemOptions{Kind: zone.KindFile, ZoneSize: 1 << 20, NumZones: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, tiny, target.Drive{}, Config{Method: Overwrite{}}); err == nil || !strings.Contains(err.Error(), "no data area") {
		t.Errorf("2 MiB device (all label area): %v", err)
	}
}
