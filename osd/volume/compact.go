package volume

import (
	"context"
	"errors"
	"fmt"
)

// CompactResult says what Compact did.
type CompactResult struct {
	// Extents is how many extents were compacted (over every slot).
	Extents int
}

// Compact runs engine compaction on every slot's drive: each engine
// compacts its closed extents, most reclaimable first, while the best
// one has at least minShare of its bytes dead (0 < minShare ≤ 1),
// at most maxPerSlot extents per slot (0: no limit). The engine keeps
// every live block and every needed tombstone across a crash at any
// point (engine/compact.go); Puts, reads and deletes go on meanwhile.
// Lost slots are skipped; a failing slot does not stop the others.
func (v *Volume) Compact(ctx context.Context, minShare float64, maxPerSlot int) (CompactResult, error) {
	if !(minShare > 0 && minShare <= 1) {
		return CompactResult{}, fmt.Errorf("volume: compact: dead share %v, want in (0, 1]", minShare)
	}
	slots, err := v.snapshot()
	if err != nil {
		return CompactResult{}, err
	}
	var res CompactResult
	var errs []error
	for i, s := range slots {
		if s == nil {
			continue
		}
		st := s.eng.Stats()
		if st.Extents == 0 {
			continue
		}
		minGarbage := int64(minShare * float64(st.Capacity/int64(st.Extents)))
		for n := 0; maxPerSlot <= 0 || n < maxPerSlot; n++ {
			did, err := s.eng.Compact(ctx, minGarbage)
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				errs = append(errs, fmt.Errorf("volume: compact slot %d: %w", i, err))
				break
			}
			if !did {
				break
			}
			res.Extents++
		}
	}
	return res, errors.Join(errs...)
}
