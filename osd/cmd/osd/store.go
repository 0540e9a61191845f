package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
)

// volumeStore serves the API from one volume over the first k+m drives
// (the node layer, osd/node, replaces it with several volumes, spares
// and drains). It counts damage, queues repairs found by reads and runs
// the paced scrub loop.
type volumeStore struct {
	v    *volume.Volume
	o    storeOptions
	devs []zone.Device

	repairs chan volume.Key
	kick    chan struct{}

	mu       sync.Mutex
	blocks   int64
	bytes    int64
	found    server.DamageMap
	repaired server.DamageMap
	scrub    server.ScrubStatus
}

type storeOptions struct {
	k, m      int
	scrubRate int64
	log       *slog.Logger
}

func openStore(ctx context.Context, devs []zone.Device, o storeOptions) (*volumeStore, error) {
	s := &volumeStore{o: o, devs: devs, repairs: make(chan volume.Key, 1024), kick: make(chan struct{}, 1),
		found: server.DamageMap{}, repaired: server.DamageMap{}}
	s.scrub.BytesPerSecond = o.scrubRate
	vo := volume.Options{K: o.k, M: o.m, Logger: o.log, OnDamage: s.onDamage}
	var members, free []zone.Device
	for _, d := range devs {
		if _, err := volume.ReadLayout(ctx, d); err == nil {
			members = append(members, d)
		} else {
			free = append(free, d)
		}
	}
	var err error
	if len(members) > 0 {
		s.v, err = volume.Open(ctx, members, vo)
	} else {
		if len(free) < o.k+o.m {
			return nil, fmt.Errorf("%d drives, a %d+%d volume needs %d", len(free), o.k, o.m, o.k+o.m)
		}
		o.log.Info("creating a volume", "code", fmt.Sprintf("%d+%d", o.k, o.m), "drives", o.k+o.m)
		s.v, err = volume.Create(ctx, free[:o.k+o.m], vo)
	}
	if err != nil {
		return nil, err
	}
	if err := s.count(ctx); err != nil {
		s.v.Close()
		return nil, err
	}
	return s, nil
}

// count sets blocks and bytes from the stored keys.
func (s *volumeStore) count(ctx context.Context) error {
	var after volume.Key
	for {
		keys, err := s.v.List(ctx, after, 10000)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if bi, err := s.v.Stat(ctx, k); err == nil {
				s.blocks++
				s.bytes += int64(bi.Size)
			}
		}
		if len(keys) < 10000 {
			return nil
		}
		after = keys[len(keys)-1]
	}
}

func (s *volumeStore) onDamage(d volume.Damage) {
	s.mu.Lock()
	s.found[d.Kind.String()]++
	s.mu.Unlock()
	select {
	case s.repairs <- d.Key:
	default: // the queue is full: the next scrub repairs it
	}
}

func (s *volumeStore) Put(ctx context.Context, key volume.Key, data []byte) (bool, error) {
	stored, err := s.v.Put(ctx, key, data)
	if err == nil && stored {
		s.mu.Lock()
		s.blocks++
		s.bytes += int64(len(data))
		s.mu.Unlock()
	}
	return stored, err
}

func (s *volumeStore) Get(ctx context.Context, key volume.Key) ([]byte, error) {
	return s.v.Get(ctx, key)
}

func (s *volumeStore) Stat(ctx context.Context, key volume.Key) (volume.BlockInfo, error) {
	return s.v.Stat(ctx, key)
}

func (s *volumeStore) Delete(ctx context.Context, key volume.Key) error {
	bi, serr := s.v.Stat(ctx, key)
	if err := s.v.Delete(ctx, key); err != nil {
		return err
	}
	if serr == nil {
		s.mu.Lock()
		s.blocks--
		s.bytes -= int64(bi.Size)
		s.mu.Unlock()
	}
	return nil
}

func (s *volumeStore) List(ctx context.Context, after volume.Key, limit int) ([]volume.Key, error) {
	return s.v.List(ctx, after, limit)
}

// Admin actions: one volume has no spares or drains.
func (s *volumeStore) AddDrive(context.Context, string) error {
	return fmt.Errorf("%w: adding drives needs the node layer", server.ErrConflict)
}

func (s *volumeStore) RemoveDrive(ctx context.Context, path string) error {
	st := s.v.Status()
	for _, sl := range st.Slots {
		if sl.Device == path {
			return s.v.MarkLost(sl.Slot)
		}
	}
	return fmt.Errorf("%w: %s", server.ErrNoSuchDrive, path)
}

func (s *volumeStore) Drain(context.Context, string) error {
	return fmt.Errorf("%w: draining needs the node layer", server.ErrConflict)
}

func (s *volumeStore) Scrub(context.Context) error {
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// Run repairs what reads found and scrubs, until ctx ends.
func (s *volumeStore) Run(ctx context.Context) {
	go s.repairLoop(ctx)
	if s.o.scrubRate <= 0 {
		return
	}
	const pause = time.Minute // between passes, so that an empty store does not spin
	for {
		s.scrubPass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-time.After(pause):
		}
	}
}

func (s *volumeStore) repairLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-s.repairs:
			res, err := s.v.Repair(ctx, k)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, volume.ErrNotFound) {
					s.o.log.Warn("repair failed", "key", server.FormatKey(k), "err", err)
				}
				continue
			}
			s.mu.Lock()
			for _, slot := range res.Repaired {
				kind := "missing"
				for _, d := range res.Damage {
					if d.Slot == slot {
						kind = d.Kind.String()
					}
				}
				s.repaired[kind]++
			}
			s.mu.Unlock()
		}
	}
}

func (s *volumeStore) scrubPass(ctx context.Context) {
	start := time.Now()
	s.mu.Lock()
	s.scrub.Running = true
	s.scrub.Progress = server.Progress{}
	s.mu.Unlock()
	var last int64
	// NoRepair: what the scrub finds goes to the repair queue through
	// onDamage, which counts repairs by kind, as for reads.
	rep, err := s.v.Scrub(ctx, volume.ScrubOptions{BytesPerSecond: s.o.scrubRate, NoRepair: true, Progress: func(p volume.Progress) {
		s.mu.Lock()
		s.scrub.BytesRead += p.Bytes - last
		last = p.Bytes
		s.scrub.Progress = progress(int64(p.Done), int64(p.Total), time.Since(start))
		s.mu.Unlock()
	}})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scrub.Running = false
	if s.scrub.Findings == nil {
		s.scrub.Findings = server.DamageMap{}
	}
	// The damage itself was counted (and queued for repair) by onDamage.
	for kind, n := range map[string]int{"missing": rep.Missing, "corrupt": rep.Corrupt, "io-error": rep.IOErrors, "lost": rep.Lost, "mismatch": rep.Mismatched} {
		if n > 0 {
			s.scrub.Findings[kind] += int64(n)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			s.scrub.LastError = err.Error()
			s.o.log.Warn("scrub failed", "err", err)
		}
		return
	}
	s.scrub.LastError = ""
	s.scrub.Passes++
	s.scrub.LastPassSeconds = time.Since(start).Seconds()
	if rep.Damaged > 0 || rep.Unrecoverable > 0 {
		s.o.log.Warn("scrub found damage (queued for repair)", "blocks", rep.Keys, "damaged", rep.Damaged, "unrecoverable", rep.Unrecoverable)
	}
}

func progress(done, total int64, elapsed time.Duration) server.Progress {
	p := server.Progress{Done: done, Total: total}
	if total > 0 {
		p.Ratio = float64(done) / float64(total)
		if done > 0 && done < total {
			p.ETASeconds = elapsed.Seconds() * float64(total-done) / float64(done)
		}
	}
	return p
}

// Status describes the store for /v1/status and /metrics.
func (s *volumeStore) Status() server.Status {
	vs := s.v.Status()
	st := server.Status{Code: fmt.Sprintf("%d+%d", vs.K, vs.M)}
	vol := server.VolumeStatus{ID: vs.ID.String(), K: vs.K, M: vs.M, Generation: vs.Generation, State: server.VolumeHealthy, Writable: true}
	for _, sl := range vs.Slots {
		vol.Slots = append(vol.Slots, server.SlotStatus{Slot: sl.Slot, State: sl.State, Device: sl.Device, Serial: sl.Serial})
		switch sl.State {
		case "lost":
			vol.Writable = false
			if vol.State == server.VolumeHealthy {
				vol.State = server.VolumeDegraded
			}
		case "rebuilding":
			vol.Writable = false
			vol.State = server.VolumeRebuilding
		}
		if sl.Device != "" {
			state := "in-service"
			if sl.State == "rebuilding" {
				state = "rebuilding"
			}
			st.Drives = append(st.Drives, server.DriveStatus{Path: sl.Device, Serial: sl.Serial, WWN: sl.WWN, State: state, Volume: vol.ID, Slot: sl.Slot, ReadErrors: sl.ReadErrors})
		}
	}
	st.Volumes = []server.VolumeStatus{vol}
	for _, d := range s.devs {
		member := false
		for _, dr := range st.Drives {
			member = member || dr.Path == d.Info().Path
		}
		if !member {
			st.Drives = append(st.Drives, server.DriveStatus{Path: d.Info().Path, State: "free", Slot: -1})
		}
	}
	for _, d := range s.devs {
		st.CapacityBytes += d.Info().Size
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Blocks, st.Bytes = s.blocks, s.bytes
	st.Scrub = s.scrub
	st.Damage = server.DamageCounters{Found: clone(s.found), Repaired: clone(s.repaired)}
	return st
}

func clone(m server.DamageMap) server.DamageMap {
	out := make(server.DamageMap, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (s *volumeStore) Close() error { return s.v.Close() }
