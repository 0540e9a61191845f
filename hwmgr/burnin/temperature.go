package burnin

import (
	"cmp"
	"context"
	"fmt"

	"github.com/stowage/stowage/hwmgr/health"
	"github.com/stowage/stowage/hwmgr/smart"
)

// tempCeiling is the burn-in's temperature ceiling for a drive whose SMART
// record is rec, and where it comes from; ok is false without a ceiling.
func (c *Config) tempCeiling(rec *smart.Record) (ceil int64, source string, ok bool) {
	switch {
	case c.MaxTempC < 0:
		return 0, "", false
	case c.MaxTempC > 0:
		return c.MaxTempC, "configured", true
	}
	if lim := rec.Temperature.Limit(); lim != nil {
		return *lim, "the drive's own limit", true
	}
	d := health.Defaults()
	if r := rec.Identity.RotationRate; r != nil && *r > 0 {
		return cmp.Or(c.Health.HDDTempWarn, d.HDDTempWarn), "default for a spinning drive", true
	}
	return cmp.Or(c.Health.SSDTempWarn, d.SSDTempWarn), "default for solid state and NVMe", true
}

// baseline takes the SMART baseline (or adopts the one a resumed run
// kept) and hands a fresh one to Config.KeepBaseline.
func (w *worker) baseline(ctx context.Context) error {
	if w.cfg.SMART == nil {
		return nil
	}
	if b := w.cfg.Baseline; b != nil {
		w.before = b.Record()
		w.sampled = w.cfg.Now()
		w.observe(w.before, false)
		w.cfg.Logger.Info("burn-in keeps the SMART baseline of the run it resumes", "path", w.info.Path)
		return nil
	}
	w.before = w.smartSample(ctx)
	w.observe(w.before, true)
	if b, ok := BaselineOf(w.before); ok && w.cfg.KeepBaseline != nil {
		e, err := BaselineEntry(b, w.started)
		if err != nil {
			w.cfg.Logger.Warn("SMART baseline not kept: a resumed run will take a new one", "path", w.info.Path, "err", err)
			return nil
		}
		if err := w.cfg.KeepBaseline(ctx, e); err != nil {
			return fmt.Errorf("burnin: %s: keep the SMART baseline: %w", w.info.Path, err)
		}
	}
	return nil
}

// sampleDue reports whether a SMART sample is due at a region boundary.
func (w *worker) sampleDue() bool {
	return w.cfg.SMART != nil && w.cfg.SMARTInterval > 0 && w.cfg.Now().Sub(w.sampled) >= w.cfg.SMARTInterval
}

// sampleTemp takes one SMART sample during the passes for the temperature
// peak. An unreadable sample is logged, not judged.
func (w *worker) sampleTemp(ctx context.Context) {
	devName, rec, err := w.smartRead(ctx)
	if err != nil {
		w.cfg.Logger.Debug("SMART sample during burn-in unreadable", "path", w.info.Path, "device", devName, "err", err)
		return
	}
	w.observe(rec, true)
}

// observe adds rec's temperature to the run's peak. A drive found asleep
// (smartctl -n standby left it alone) is noted once and not counted; fresh
// records (not a kept baseline) also set the ceiling.
func (w *worker) observe(rec *smart.Record, fresh bool) {
	if rec == nil {
		return
	}
	if rec.Status == smart.StatusAsleep && !w.asleep {
		w.asleep = true
		w.rep.note(RuleTemperature, "%s: drive in %s at a SMART sample: not woken, not counted", w.info.Path, cmp.Or(rec.Asleep, "standby"))
	}
	if rec.Status != smart.StatusOK || rec.Temperature.Current == nil {
		return
	}
	r := w.rep
	t := *rec.Temperature.Current
	r.TempSamples++
	if r.PeakTempC == nil || t > *r.PeakTempC {
		r.PeakTempC = &t
	}
	if fresh {
		if c, src, ok := w.cfg.tempCeiling(rec); ok {
			r.TempCeilingC, w.ceilSrc = &c, src
		}
	}
	if r.TempCeilingC != nil && *r.PeakTempC >= *r.TempCeilingC {
		w.hot = true
	}
}

// judgeTemp fails the drive whose peak temperature reached the ceiling.
func (w *worker) judgeTemp() {
	r := w.rep
	if r.PeakTempC == nil || r.TempCeilingC == nil || *r.PeakTempC < *r.TempCeilingC {
		return
	}
	r.fail(RuleTemperature, "%s: peak temperature %d°C over %d SMART samples reached the burn-in ceiling %d°C (%s)",
		r.Path, *r.PeakTempC, r.TempSamples, *r.TempCeilingC, w.ceilSrc)
}
