package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/stowage/stowage/hwmgr/discover"
	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/kmsg"
	"github.com/stowage/stowage/hwmgr/node"
	"github.com/stowage/stowage/hwmgr/smart"
)

// driveSource is node.DriveSource over hwmgr/discover.
type driveSource struct {
	scanner *discover.Scanner
}

func (s driveSource) Scan(ctx context.Context) ([]node.Identity, error) {
	ds, err := s.scanner.Scan(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]node.Identity, 0, len(ds))
	for i := range ds {
		out = append(out, identityOf(&ds[i]))
	}
	return out, nil
}

func identityOf(d *discover.Drive) node.Identity {
	id := node.Identity{
		Name: d.Name, DevPath: d.DevPath, WWN: d.WWN, Serial: d.Serial, Vendor: d.Vendor, Model: d.Model,
		Firmware: d.Firmware, SizeBytes: d.SizeBytes, LogicalSectorBytes: d.LogicalSectorSize,
		PhysicalSectorBytes: d.PhysicalSectorSize, Rotational: d.Rotational, Transport: string(d.Transport),
		Zoned: string(d.Zoned), ZoneSizeBytes: d.ZoneSizeBytes, ZoneCount: d.ZoneCount,
		MaxOpenZones: d.MaxOpenZones, MaxActiveZones: d.MaxActiveZones,
	}
	if len(d.ByIDPaths) > 0 {
		id.ByID = d.ByIDPaths[0]
	}
	if e := d.Enclosure; e != nil {
		id.Slot = &node.Slot{Enclosure: e.Enclosure, Slot: e.Bay, LocatePath: e.LocatePath}
		if e.Slot >= 0 {
			id.Slot.Bay = fmt.Sprint(e.Slot)
		}
	}
	return id
}

// smartSource is node.SMARTSource over hwmgr/smart's smartctl runner.
type smartSource struct {
	runner smart.Runner
	now    func() time.Time
}

func (s smartSource) Read(ctx context.Context, id node.Identity) (node.SMART, error) {
	start := s.now()
	out, err := s.runner.Run(ctx, id.DevPath, "")
	dur := s.now().Sub(start)
	if err != nil {
		return node.SMART{}, fmt.Errorf("smartctl %s: %w", id.DevPath, err)
	}
	sm := fromRecord(out.Record)
	sm.Time = start.UTC()
	sm.DurationSeconds = dur.Seconds()
	return sm, nil
}

// fromRecord maps a normalized smartctl record to the node's SMART view;
// the record itself rides along for the API and the health policy.
func fromRecord(r *smart.Record) node.SMART {
	s := node.SMART{
		ExitStatus:  int(r.ExitStatus),
		ExitFlags:   r.ExitStatus.Flags(),
		Asleep:      r.Status == smart.StatusAsleep,
		Unsupported: r.Status == smart.StatusUnsupported,
		Protocol:    string(r.Device.Protocol),
		Passed:      r.Passed,
		Record:      r,
	}
	if r.Time > 0 {
		s.Time = time.Unix(r.Time, 0).UTC()
	}
	if t := r.Temperature.Current; t != nil {
		v := float64(*t)
		s.TemperatureCelsius = &v
	}
	if h := r.PowerOnHours; h != nil {
		v := float64(*h) * 3600
		s.PowerOnSeconds = &v
	}
	if c := r.PowerCycles; c != nil {
		v := float64(*c)
		s.PowerCycles = &v
	}
	if r.ATA != nil {
		for _, a := range r.ATA.Attributes {
			s.ATA = append(s.ATA, node.ATAAttribute{ID: a.ID, Name: a.Name, Value: a.Value, Worst: a.Worst,
				Threshold: a.Thresh, Raw: int64(min(a.Raw, 1<<62))})
		}
	}
	if n := r.NVMe; n != nil {
		s.NVMe = &node.NVMeHealth{
			CriticalWarning: uint64(n.CriticalWarning), AvailableSpare: n.AvailableSpare,
			AvailableSpareThreshold: n.AvailableSpareThreshold, PercentageUsed: n.PercentageUsed,
			MediaErrors: n.MediaErrors, ErrorLogEntries: n.ErrorLogEntries,
			// A data unit is 1000 512-byte blocks (NVMe base spec).
			DataReadBytes: sat(n.DataUnitsRead, 512000), DataWrittenBytes: sat(n.DataUnitsWritten, 512000),
			UnsafeShutdowns: n.UnsafeShutdowns,
		}
	}
	if sc := r.SCSI; sc != nil {
		s.SCSI = &node.SCSIHealth{
			GrownDefects: u(sc.GrownDefects), ReadUncorrectedErrors: u(sc.ReadUncorrected),
			WriteUncorrectedErrors: u(sc.WriteUncorrected), VerifyUncorrectedErrors: u(sc.VerifyUncorrected),
			ReadCorrectedErrors: u(sc.ReadCorrected), WriteCorrectedErrors: u(sc.WriteCorrected),
			VerifyCorrectedErrors: u(sc.VerifyCorrected), StartStopCycles: u(sc.StartStopCycles),
			LoadUnloadCycles: u(sc.LoadUnloadCycles),
		}
	}
	if l := r.SelfTests; l != nil {
		st := &node.SelfTest{Failed: l.Failed, Total: len(l.Entries)}
		if e, ok := l.Latest(); ok {
			passed := !e.Failed
			st.LatestPassed, st.LatestStatus = &passed, e.Result
		}
		s.SelfTest = st
	}
	return s
}

func u(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// sat multiplies without overflowing.
func sat(a, b uint64) uint64 {
	if a != 0 && a > ^uint64(0)/b {
		return ^uint64(0)
	}
	return a * b
}

// ioErrorCounter counts the kernel's block I/O errors per disk from
// /dev/kmsg, for the health policy's kernel rule.
type ioErrorCounter struct {
	mu     sync.Mutex
	counts map[string]uint64
}

func newIOErrorCounter() *ioErrorCounter { return &ioErrorCounter{counts: map[string]uint64{}} }

func (c *ioErrorCounter) get(disk string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[disk]
}

// run reads the kernel log from its start (errors since boot count) until
// ctx ends.
func (c *ioErrorCounter) run(ctx context.Context, path string, log *slog.Logger) {
	r, err := kmsg.Open(path, false)
	if err != nil {
		log.Warn("kernel log unavailable; the kernel I/O error rule is off", "path", path, "err", err)
		return
	}
	defer r.Close()
	for {
		rec, err := r.Next(ctx)
		if errors.Is(err, kmsg.ErrMalformed) {
			log.Debug("skipping a malformed kernel log record", "err", err)
			continue
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, io.EOF) {
				log.Warn("kernel log read failed", "path", path, "err", err)
			}
			return
		}
		if e, ok := kmsg.ParseIOError(rec); ok {
			c.mu.Lock()
			c.counts[e.Device]++
			c.mu.Unlock()
		}
	}
}

// healthPolicy is node.HealthPolicy over hwmgr/health.
type healthPolicy struct {
	cfg    health.Config
	kernel *ioErrorCounter
}

func recordOf(s *node.SMART) *smart.Record {
	if s == nil {
		return nil
	}
	r, _ := s.Record.(*smart.Record)
	return r
}

func (p healthPolicy) Judge(d node.Drive, prev *node.SMART) node.Health {
	cur := health.Sample{SMART: recordOf(d.SMART)}
	if p.kernel != nil {
		cur.KernelIOErrors = p.kernel.get(d.Identity.Name)
	}
	var ps *health.Sample
	if r := recordOf(prev); r != nil {
		ps = &health.Sample{SMART: r}
	}
	if cur.SMART == nil && cur.KernelIOErrors == 0 {
		return node.Health{Verdict: node.VerdictUnknown}
	}
	return healthOf(p.cfg.Evaluate(cur, ps))
}

func healthOf(res health.Result) node.Health {
	h := node.Health{Verdict: node.Verdict(res.Verdict)}
	for _, r := range res.Sorted() {
		h.Reasons = append(h.Reasons, node.Reason{Rule: r.Rule, Severity: node.Verdict(r.Verdict), Detail: r.Message})
	}
	return h
}
