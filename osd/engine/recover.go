package engine

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/stowage/stowage/osd/index"
	"github.com/stowage/stowage/osd/record"
	"github.com/stowage/stowage/osd/zone"
)

// removal is a record that a later one (a tombstone, or a compaction copy)
// takes out of the index during recovery.
type removal struct {
	loc  uint64
	fp   uint32
	size int64
}

// recover rebuilds the engine's state from the device:
//
//  1. Each slot's extent header says whether the slot holds an extent and
//     of which incarnation; zoned devices skip empty zones without reading.
//  2. A closed extent's trailer leads to its footer. An extent without a
//     trailer is scanned record by record from its start: each record must
//     carry the incarnation and a higher seq than the one before and have
//     good checksums; the scan stops at the first that does not, or at the
//     write pointer on a zoned device.
//  3. At most one scanned extent stays open (the newest). It continues at
//     the end of its last good record, except on a zoned device when the
//     write pointer is past that end (a torn write the device keeps): the
//     extent is then finished and kept as closed-without-footer, like any
//     other extra open one and one whose scan found a footer.
//  4. Every block record is a candidate; tombstones and compaction copies
//     remove the exact record they name, if its extent incarnation still
//     exists. The index is built in one pass from what remains.
//
// It returns the extents that a compaction had copied from but not yet
// reset: Open finishes those compactions before serving.
func (e *Engine) recover(ctx context.Context) ([]*extent, error) {
	info, z := e.info, e.opts.ZonesPerExtent
	nslots := (info.NumZones - e.opts.FirstZone) / z
	zs, err := e.dev.ReportZones(ctx, e.opts.FirstZone, nslots*z)
	if err != nil {
		return nil, fmt.Errorf("engine: %s: report zones: %w", info.Path, err)
	}
	e.exts = make([]*extent, nslots)
	trailers := make([]*record.Trailer, nslots)
	var maxSeq uint64
	var scanned []*extent
	hb := zone.AlignedBlock(record.BlockSize)
	for s := range e.exts {
		x := &extent{slot: s}
		e.exts[s] = x
		xz := zs[s*z : (s+1)*z]
		for _, zn := range xz {
			c := zn.Capacity
			if c <= 0 || c > info.ZoneSize {
				c = info.ZoneSize
			}
			x.zones = append(x.zones, zn.Index)
			x.caps = append(x.caps, c)
			x.start = append(x.start, x.total)
			x.total += c
		}
		if e.zoned && xz[0].Cond == zone.CondEmpty {
			continue
		}
		if err := x.read(e.dev, hb, 0); err != nil {
			return nil, fmt.Errorf("engine: %s: extent %d header: %w", info.Path, s, err)
		}
		h, err := record.DecodeExtentHeader(hb)
		if err != nil {
			if allZero(hb) {
				continue // free: reset, or never written
			}
			sh, ok, err := e.salvageHeader(x, xz)
			if err != nil {
				return nil, err
			}
			if !ok {
				e.log.Debug("no extent: bad header and nothing to salvage", "extent", s, "err", err)
				continue
			}
			e.log.Warn("extent header damaged; salvaged from its trailer or first record", "extent", s, "offset", info.ZoneStart(x.zones[0]), "incarnation", sh.Incarnation)
			h = sh
		}
		if !e.headerMatches(x, &h) {
			return nil, fmt.Errorf("engine: %s: extent header at zone %d says extent %d, zones %v, zone size %d: the drive was written with another geometry than first zone %d, %d zones per extent",
				info.Path, x.zones[0], h.Extent, h.Zones, h.ZoneSize, e.opts.FirstZone, z)
		}
		x.inc, x.firstSeq = h.Incarnation, h.FirstSeq
		x.state = stateClosed
		maxSeq = max(maxSeq, h.FirstSeq)
		var rz []zone.Zone
		if e.zoned {
			rz = xz
		}
		tr, err := e.findTrailer(x, x.inc, rz)
		if err != nil {
			return nil, err
		}
		if tr != nil {
			trailers[s] = tr
			x.footer = true
			maxSeq = max(maxSeq, tr.LastSeq)
			continue
		}
		scanned = append(scanned, x)
	}

	// Scan the extents without a trailer; keep the newest clean one open.
	slices.SortFunc(scanned, func(a, b *extent) int { return cmp.Compare(b.firstSeq, a.firstSeq) })
	for i, x := range scanned {
		xz := zs[x.slot*z : (x.slot+1)*z]
		res, err := e.scan(x, xz)
		if err != nil {
			return nil, err
		}
		x.entries = res.entries
		x.used = res.end
		if n := len(res.entries); n > 0 {
			maxSeq = max(maxSeq, res.entries[n-1].Seq)
		}
		maxSeq = max(maxSeq, res.footerSeq)
		if i == 0 && !res.footer && !(e.zoned && res.torn) {
			x.state = stateOpen
			e.open = x
			continue
		}
		e.log.Info("extent kept closed without a footer", "extent", x.slot, "footer_found", res.footer, "torn", res.torn, "records", len(res.entries))
		if e.zoned {
			for k, zn := range xz {
				if zn.Cond != zone.CondFull && zn.Cond != zone.CondEmpty {
					if err := e.dev.Finish(ctx, x.zones[k]); err != nil {
						return nil, fmt.Errorf("engine: %s: finishing zone %d: %w", info.Path, x.zones[k], err)
					}
				}
			}
		}
	}

	// Footers, then the index.
	var pairs []uint64
	var removes []removal
	interrupted := map[*extent]bool{}
	for s, x := range e.exts {
		if x.state == stateFree {
			continue
		}
		entries := x.entries
		if trailers[s] != nil {
			if entries, err = e.decodeFooterAt(x, x.inc, trailers[s]); err != nil {
				// A bad footer: fall back to a scan of the whole extent.
				e.log.Warn("bad footer, scanning the extent", "extent", s, "err", err)
				res, serr := e.scan(x, zs[s*z:(s+1)*z])
				if serr != nil {
					return nil, serr
				}
				entries = res.entries
				x.entries, x.footer = entries, false
			}
		}
		for i := range entries {
			en := &entries[i]
			maxSeq = max(maxSeq, en.Seq)
			loc := x.loc(info, int64(en.Off)*record.BlockSize)
			size := en.Size()
			fp := index.Fingerprint(&en.Key, en.Frag)
			ref := e.extentOf(en.Ref)
			refLive := ref != nil && ref.state != stateFree && ref.inc == en.RefInc && en.Ref != 0
			switch en.Type {
			case record.TypeBlock:
				v, err := index.Pack(fp, loc)
				if err != nil {
					return nil, fmt.Errorf("engine: %s: %w", info.Path, err)
				}
				pairs = append(pairs, v)
				x.live += size
				if en.Flags&record.FlagCopy != 0 && refLive && ref != x {
					removes = append(removes, removal{loc: en.Ref, fp: fp, size: size})
					interrupted[ref] = true
				}
			case record.TypeTombstone:
				if refLive {
					removes = append(removes, removal{loc: en.Ref, fp: fp, size: int64(en.Meta) * record.BlockSize})
					x.addTomb(ref.slot, size)
				}
			}
		}
	}
	e.idx = index.Build(pairs)
	slices.SortFunc(removes, func(a, b removal) int { return cmp.Compare(a.loc, b.loc) })
	for i, r := range removes {
		if i > 0 && r.loc == removes[i-1].loc {
			continue
		}
		if e.idx.Remove(r.fp, r.loc) {
			e.extentOf(r.loc).live -= r.size
		}
	}
	e.nextSeq = maxSeq + seqGap
	var out []*extent
	for _, x := range e.exts {
		if interrupted[x] && x.state == stateClosed {
			x.interrupted = true
			out = append(out, x)
		}
	}
	e.log.Info("recovered", "blocks", e.idx.Len(), "extents", len(e.exts), "open", e.open != nil, "interrupted_compactions", len(out))
	return out, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// salvageHeader rebuilds the extent header of x from what else is on
// disk, when the header block holds bytes that do not decode (media
// damage or a torn header write). A trailer of any incarnation whose
// footer checks out makes x a closed extent of that incarnation; else a
// valid record in the first record slot gives an open one. Stale trailers
// and first records cannot mislead it: every reset and every extent open
// zeroes them first (resetZones, openExtent), and a finished reset leaves
// an all-zero header block, which never gets here.
func (e *Engine) salvageHeader(x *extent, zs []zone.Zone) (record.ExtentHeader, bool, error) {
	h := record.ExtentHeader{Extent: uint32(x.slot), ZoneSize: uint64(e.info.ZoneSize)}
	for _, z := range x.zones {
		h.Zones = append(h.Zones, uint32(z))
	}
	b := zone.AlignedBlock(record.BlockSize)
	for k := len(x.zones) - 1; k >= 0; k-- {
		if e.zoned && zs[k].Cond != zone.CondFull {
			continue
		}
		if err := x.read(e.dev, b, x.start[k]+x.caps[k]-record.BlockSize); err != nil {
			return h, false, fmt.Errorf("engine: %s: extent %d: %w", e.info.Path, x.slot, err)
		}
		tr, err := record.DecodeTrailer(b)
		if err != nil || tr.Extent != uint32(x.slot) || tr.Incarnation == 0 {
			continue
		}
		es, err := e.decodeFooterAt(x, tr.Incarnation, &tr)
		if err != nil {
			continue
		}
		h.Incarnation, h.FirstSeq = tr.Incarnation, tr.LastSeq
		if len(es) > 0 {
			h.FirstSeq = es[0].Seq
		}
		return h, true, nil
	}
	if e.zoned && zs[0].Cond != zone.CondFull && zs[0].WP-zs[0].Start < 2*record.BlockSize {
		return h, false, nil
	}
	if err := x.read(e.dev, b, record.BlockSize); err != nil {
		return h, false, fmt.Errorf("engine: %s: extent %d: %w", e.info.Path, x.slot, err)
	}
	rh, err := record.DecodeHeader(b)
	if err != nil || rh.Extent != uint32(x.slot) || rh.Incarnation == 0 || rh.Type == record.TypeFooter {
		return h, false, nil
	}
	h.Incarnation, h.FirstSeq = rh.Incarnation, rh.Seq
	return h, true, nil
}

func (e *Engine) headerMatches(x *extent, h *record.ExtentHeader) bool {
	if h.Extent != uint32(x.slot) || h.ZoneSize != uint64(e.info.ZoneSize) || len(h.Zones) != len(x.zones) {
		return false
	}
	for i, z := range h.Zones {
		if int(z) != x.zones[i] {
			return false
		}
	}
	return true
}

type scanResult struct {
	entries   []record.Entry
	end       int64 // logical end of the last good record
	footer    bool  // a footer record ended the scan
	footerSeq uint64
	torn      bool // zoned: the write pointer is past end
}

// scan reads x's records from its start. On a zoned device it stops at
// the write pointer the device reports.
func (e *Engine) scan(x *extent, zs []zone.Zone) (scanResult, error) {
	limit := x.total
	if e.zoned {
		limit = 0
		for k, zn := range zs {
			if zn.Cond == zone.CondFull {
				limit += x.caps[k]
				continue
			}
			if zn.Cond != zone.CondEmpty {
				limit += zn.WP - zn.Start
			}
			break
		}
	}
	res := scanResult{end: record.BlockSize}
	// Read ahead in large chunks: one read per 8 MiB, not one per record.
	readable := limit &^ (record.BlockSize - 1)
	win := zone.AlignedBlock(8 << 20)
	var winStart, winLen int64
	get := func(pos, n int64) ([]byte, error) {
		if pos >= winStart && pos+n <= winStart+winLen {
			return win[pos-winStart : pos-winStart+n], nil
		}
		if n > int64(len(win)) {
			win = zone.AlignedBlock(int(n))
		}
		m := min(int64(len(win)), readable-pos)
		if err := x.read(e.dev, win[:m], pos); err != nil {
			winLen = 0
			return nil, err
		}
		winStart, winLen = pos, m
		return win[:n], nil
	}
	var prev uint64
	for pos := int64(record.BlockSize); pos+record.BlockSize <= readable; {
		b, err := get(pos, record.BlockSize)
		if err != nil {
			e.log.Warn("scan stopped at a read error", "extent", x.slot, "offset", x.device(e.info, pos), "err", err)
			break
		}
		h, err := record.DecodeHeader(b)
		if err != nil || h.Incarnation != x.inc || h.Extent != uint32(x.slot) || h.Seq < x.firstSeq || (len(res.entries) > 0 && h.Seq <= prev) {
			break
		}
		size := h.Size()
		if pos+size > readable {
			break
		}
		rec, err := get(pos, size)
		if err != nil {
			break
		}
		if h.CheckPayload(rec[record.HeaderSize:record.HeaderSize+int(h.Length)]) != nil {
			break
		}
		if h.Type == record.TypeFooter {
			res.footer, res.footerSeq = true, h.Seq
			res.end = pos + size
			break
		}
		res.entries = append(res.entries, entryOf(&h, pos))
		prev = h.Seq
		pos += size
		res.end = pos
	}
	res.torn = e.zoned && res.end != limit && !res.footer
	return res, nil
}
