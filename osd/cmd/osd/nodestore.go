package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/stowage/stowage/osd/node"
	"github.com/stowage/stowage/osd/server"
	"github.com/stowage/stowage/osd/volume"
	"github.com/stowage/stowage/osd/zone"
)

// nodeStore serves the API from an osd/node: several volumes, spares,
// rebuilds, drains, the repair queue and the paced scrub. It adds the
// user-byte count the node does not keep (counted at open, then kept up
// to date by Put and Delete).
type nodeStore struct {
	*node.Node
	log     *slog.Logger
	sysRoot string
	zone    int64

	mu            sync.Mutex
	blocks, bytes int64
	added         []zone.Device // devices opened by AddDrive
}

func openNodeStore(ctx context.Context, devs []zone.Device, o storeOptions, sysRoot string, zoneSize int64) (*nodeStore, error) {
	var ds []node.Drive
	for _, d := range devs {
		ds = append(ds, node.Drive{Dev: d})
	}
	no := node.Options{K: o.k, M: o.m, ScrubBytesPerSecond: o.scrubRate, Logger: o.log}
	if o.scrubRate == 0 { // no scrub loop; a scrub started over the API still runs, unpaced
		no.ScrubBytesPerSecond, no.ScrubDelay = -1, 100*365*24*time.Hour
	}
	n, err := node.Open(ctx, ds, no)
	if err != nil {
		return nil, err
	}
	s := &nodeStore{Node: n, log: o.log, sysRoot: sysRoot, zone: zoneSize}
	var after volume.Key
	for {
		keys, err := n.List(ctx, after, 10000)
		if err != nil {
			n.Close()
			return nil, err
		}
		for _, k := range keys {
			if bi, err := n.Stat(ctx, k); err == nil {
				s.blocks++
				s.bytes += int64(bi.Size)
			}
		}
		if len(keys) < 10000 {
			return s, nil
		}
		after = keys[len(keys)-1]
	}
}

func (s *nodeStore) Put(ctx context.Context, key volume.Key, data []byte) (bool, error) {
	stored, err := s.Node.Put(ctx, key, data)
	if err == nil && stored {
		s.mu.Lock()
		s.blocks++
		s.bytes += int64(len(data))
		s.mu.Unlock()
	}
	return stored, mapNodeErr(err)
}

func (s *nodeStore) Get(ctx context.Context, key volume.Key) ([]byte, error) {
	b, err := s.Node.Get(ctx, key)
	return b, mapNodeErr(err)
}

// GetBlock is Get without copying the block (server.BlockGetter).
func (s *nodeStore) GetBlock(ctx context.Context, key volume.Key) (*volume.Block, error) {
	b, err := s.Node.GetBlock(ctx, key)
	return b, mapNodeErr(err)
}

func (s *nodeStore) Delete(ctx context.Context, key volume.Key) error {
	bi, serr := s.Node.Stat(ctx, key)
	if err := s.Node.Delete(ctx, key); err != nil {
		return mapNodeErr(err)
	}
	if serr == nil {
		s.mu.Lock()
		s.blocks--
		s.bytes -= int64(bi.Size)
		s.mu.Unlock()
	}
	return nil
}

// mapNodeErr marks the node's "try later" errors for the server (503)
// and its drive errors for the admin routes (404, 409).
func mapNodeErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrFull), errors.Is(err, node.ErrClosed):
		return fmt.Errorf("%w: %w", server.ErrUnavailable, err)
	case errors.Is(err, node.ErrUnknownDrive):
		return fmt.Errorf("%w: %w", server.ErrNoSuchDrive, err)
	case errors.Is(err, node.ErrBusy):
		return fmt.Errorf("%w: %w", server.ErrConflict, err)
	}
	return err
}

// AddDrive opens the device at path and gives it to the node.
func (s *nodeStore) AddDrive(ctx context.Context, path string) error {
	devs, err := openDevices([]string{path}, s.sysRoot, s.zone, s.log)
	if err != nil {
		return fmt.Errorf("%w: %w", server.ErrNoSuchDrive, err)
	}
	if err := s.Node.AddDrive(ctx, node.Drive{Dev: devs[0]}); err != nil {
		devs[0].Close()
		return mapNodeErr(err)
	}
	s.mu.Lock()
	s.added = append(s.added, devs[0])
	s.mu.Unlock()
	return nil
}

func (s *nodeStore) RemoveDrive(ctx context.Context, path string) error {
	return mapNodeErr(s.Node.RemoveDrive(ctx, path))
}

func (s *nodeStore) Drain(ctx context.Context, path string) error {
	return mapNodeErr(s.Node.Drain(ctx, path))
}

func (s *nodeStore) Scrub(context.Context) error {
	s.Node.StartScrub()
	return nil
}

// Run runs the node's background work until ctx ends.
func (s *nodeStore) Run(ctx context.Context) { _ = s.Node.Run(ctx) }

func (s *nodeStore) Close() error {
	err := s.Node.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range s.added {
		d.Close()
	}
	return err
}

// Status maps the node's status onto the API's.
func (s *nodeStore) Status() server.Status {
	ns := s.Node.Status()
	st := server.Status{Code: fmt.Sprintf("%d+%d", ns.K, ns.M), CapacityBytes: ns.Space.Capacity, FreeBytes: ns.Space.Free}
	for _, d := range ns.Drives {
		state := d.Role
		if state == node.RoleMember {
			state = "in-service"
		}
		st.Drives = append(st.Drives, server.DriveStatus{Path: d.Path, Serial: d.Serial, WWN: d.WWN, Model: d.Model, State: state, Volume: d.Volume, Slot: d.Slot})
	}
	for _, v := range ns.Volumes {
		vs := server.VolumeStatus{ID: v.ID.String(), K: v.K, M: v.M, State: v.State, Writable: v.Writable, Generation: v.Generation}
		if vs.State != server.VolumeHealthy && vs.State != server.VolumeRebuilding {
			vs.State = server.VolumeDegraded // "degraded", or "draining" (redundancy kept, but moving)
			if v.State == "draining" && !v.Degraded {
				vs.State = server.VolumeHealthy
			}
		}
		for _, sl := range v.Slots {
			vs.Slots = append(vs.Slots, server.SlotStatus{Slot: sl.Slot, State: sl.State, Device: sl.Device, Serial: sl.Serial})
			for i := range st.Drives {
				if st.Drives[i].Path == sl.Device && sl.Device != "" {
					st.Drives[i].ReadErrors = sl.ReadErrors
				}
			}
		}
		for _, j := range ns.Jobs {
			if j.Kind == "rebuild" && j.Running && j.Volume == vs.ID {
				p := progress(int64(j.Progress.Done), int64(j.Progress.Total), 0)
				p.ETASeconds = j.Progress.ETA.Seconds()
				vs.Rebuild = &p
			}
		}
		st.Volumes = append(st.Volumes, vs)
	}
	sc := ns.Scrub
	st.Scrub = server.ScrubStatus{Running: sc.Running, BytesPerSecond: max(sc.BytesPerSecond, 0),
		Passes: ns.Counter.ScrubPasses, BytesRead: ns.Counter.ScrubBytes, Findings: server.DamageMap(ns.Counter.ScrubFindings),
		LastPassFindings: server.DamageMap{}}
	st.Scrub.Progress = progress(int64(sc.Progress.Done), int64(sc.Progress.Total), 0)
	st.Scrub.Progress.ETASeconds = sc.PassETA.Seconds()
	lp := sc.LastPass
	for kind, n := range map[string]int{"missing": lp.Missing, "corrupt": lp.Corrupt, "io-error": lp.IOErrors, "lost": lp.Lost, "mismatch": lp.Mismatched} {
		if n > 0 {
			st.Scrub.LastPassFindings[kind] = int64(n)
		}
	}
	st.Damage = server.DamageCounters{Found: server.DamageMap(ns.Counter.DamageFound), Repaired: server.DamageMap(ns.Counter.RepairedByKind)}
	st.DrivesFailed = ns.Counter.DrivesFailed
	s.mu.Lock()
	st.Blocks, st.Bytes = s.blocks, s.bytes
	s.mu.Unlock()
	return st
}

type storeOptions struct {
	k, m      int
	scrubRate int64
	log       *slog.Logger
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
