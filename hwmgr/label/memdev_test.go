package label

import (
	"context"
	"errors"
	"fmt"

	"github.com/stowage/stowage/osd/zone"
)

// memDev is a small test device: a byte slice, conventional or with
// sequential zones that take writes only at their write pointers, and a
// power cut that can be armed to tear the k-th operation from now after s
// sectors (everything later fails, as after a crash). Writes are durable
// at once; the tear is what models the crash. osd/zone's Mem covers the
// harsher volatile-cache model in zonemem_test.go.
type memDev struct {
	data     []byte
	zoneSize int64
	zoneCap  int64
	seq      bool
	wp       []int64

	ops     int // operations (writes, resets, finishes) since arming
	cutOp   int // operation index to tear; -1: not armed
	cutSec  int // sectors of that write that land
	cut     bool
	nWrites int
	nResets int
}

var errCut = errors.New("memdev: power cut")

const sector = 512

func newMemDev(size, zoneSize int64, seq bool) *memDev {
	d := &memDev{data: make([]byte, size), zoneSize: zoneSize, zoneCap: zoneSize, seq: seq, cutOp: -1}
	if seq {
		d.wp = make([]int64, size/zoneSize)
		for i := range d.wp {
			d.wp[i] = int64(i) * zoneSize
		}
	}
	return d
}

// clone is the device as it would be after the crash: its bytes and zone
// state, with nothing armed.
func (d *memDev) clone() *memDev {
	c := *d
	c.data = append([]byte(nil), d.data...)
	c.wp = append([]int64(nil), d.wp...)
	c.cutOp, c.ops, c.cut = -1, 0, false
	return &c
}

// arm tears operation k (0 = the next one) after s sectors.
func (d *memDev) arm(k, s int) { d.ops, d.cutOp, d.cutSec, d.cut = 0, k, s, false }

// step counts an operation and says how many bytes of it land: -1 all,
// otherwise the torn length; err once the power is off.
func (d *memDev) step(n int) (int, error) {
	if d.cut {
		return 0, errCut
	}
	k := d.ops
	d.ops++
	if d.cutOp >= 0 && k == d.cutOp {
		d.cut = true
		return min(d.cutSec*sector, n), errCut
	}
	return -1, nil
}

func (d *memDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) {
		return 0, fmt.Errorf("memdev: read %d at %d: out of range", len(p), off)
	}
	return copy(p, d.data[off:]), nil
}

func (d *memDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d.data)) || off%BlockSize != 0 || len(p)%BlockSize != 0 {
		return 0, fmt.Errorf("memdev: write %d at %d: bad range", len(p), off)
	}
	if d.seq {
		z := off / d.zoneSize
		if off != d.wp[z] || off+int64(len(p)) > z*d.zoneSize+d.zoneCap {
			return 0, fmt.Errorf("memdev: write %d at %d: zone %d write pointer is %d", len(p), off, z, d.wp[z])
		}
	}
	d.nWrites++
	land, err := d.step(len(p))
	if land < 0 {
		land = len(p)
	}
	copy(d.data[off:], p[:land])
	if d.seq {
		d.wp[off/d.zoneSize] += int64(land)
	}
	return land, err
}

func (d *memDev) Flush(context.Context) error {
	if d.cut {
		return errCut
	}
	return nil
}

func (d *memDev) ReportZones(_ context.Context, first, n int) ([]zone.Zone, error) {
	var zs []zone.Zone
	for i := first; i < first+n && int64(i)*d.zoneSize < int64(len(d.data)); i++ {
		z := zone.Zone{Index: i, Start: int64(i) * d.zoneSize, Len: d.zoneSize, Capacity: d.zoneCap,
			Type: zone.TypeConventional, Cond: zone.CondNotWP}
		if d.seq {
			z.Type, z.WP, z.Cond = zone.TypeSeqWriteRequired, d.wp[i], zone.CondClosed
		}
		zs = append(zs, z)
	}
	return zs, nil
}

func (d *memDev) Reset(_ context.Context, i int) error {
	if !d.seq {
		return errors.New("memdev: reset of a conventional zone")
	}
	if _, err := d.step(0); err != nil {
		return err
	}
	d.nResets++
	start := int64(i) * d.zoneSize
	clear(d.data[start : start+d.zoneSize])
	d.wp[i] = start
	return nil
}

func (d *memDev) Finish(_ context.Context, i int) error {
	if !d.seq {
		return errors.New("memdev: finish of a conventional zone")
	}
	if _, err := d.step(0); err != nil {
		return err
	}
	d.wp[i] = int64(i)*d.zoneSize + d.zoneSize
	return nil
}
