package main

import (
	"context"
	"strings"
	"sync"

	"github.com/stowage/stowage/hwmgr/iostat"
	"github.com/stowage/stowage/hwmgr/node"
)

// statsSource is node.StatsSource over hwmgr/iostat: rates between two
// consecutive diskstats samples, outliers against drives of the same
// vendor and model (iostat.Rule, documented in hwmgr/iostat).
type statsSource struct {
	reader *iostat.Reader
	rule   iostat.Rule

	mu   sync.Mutex
	prev *iostat.Sample
}

func (s *statsSource) Sample(ctx context.Context, ids []node.Identity) (map[string]node.Stats, error) {
	cur, err := s.reader.Sample(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	prev := s.prev
	s.prev = &cur
	s.mu.Unlock()
	var rates map[string]iostat.Rate
	if prev != nil {
		if rates, err = iostat.Rates(*prev, cur); err != nil {
			return nil, err
		}
	}
	modelOf := map[string]string{}
	for _, id := range ids {
		if id.Model != "" {
			modelOf[id.Name] = strings.TrimSpace(id.Vendor + " " + id.Model)
		}
	}
	why := map[string][]string{}
	for _, o := range iostat.Outliers(rates, modelOf, s.rule) {
		why[o.Drive] = append(why[o.Drive], o.String())
	}
	out := make(map[string]node.Stats, len(ids))
	for _, id := range ids {
		c, ok := cur.Devices[id.Name]
		if !ok {
			continue
		}
		st := node.Stats{
			ReadCompletedTotal: c.ReadIOs, WriteCompletedTotal: c.WriteIOs,
			ReadBytesTotal: c.ReadSectors * iostat.SectorSize, WriteBytesTotal: c.WriteSectors * iostat.SectorSize,
			IOTimeSecondsTotal: float64(c.IOTicks) / 1000, ReadTimeSecondsTotal: float64(c.ReadTicks) / 1000,
			WriteTimeSecondsTotal: float64(c.WriteTicks) / 1000, InFlight: float64(c.InFlight),
		}
		if r, ok := rates[id.Name]; ok && !r.Reset {
			st.IntervalSeconds = r.Interval.Seconds()
			st.ReadIOPS, st.WriteIOPS = r.ReadIOPS, r.WriteIOPS
			st.ReadBytesPerSecond, st.WriteBytesPerSecond = r.ReadBytesPerSec, r.WriteBytesPerSec
			st.ReadLatencySeconds, st.WriteLatencySeconds = r.ReadLatencyMs/1000, r.WriteLatencyMs/1000
			st.Utilisation = r.Utilization
		}
		if w := why[id.Name]; len(w) > 0 {
			st.Outlier, st.OutlierReasons = true, w
		}
		out[id.Name] = st
	}
	return out, nil
}
