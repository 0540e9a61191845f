package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/stowage/stowage/hwmgr/foreign"
	"github.com/stowage/stowage/hwmgr/node"
)

// foreignDetector is signatureDetector over hwmgr/foreign: it reads the
// head and tail of the device (buffered, read-only) and, on a zoned drive,
// zone 1 where the second label region lives.
type foreignDetector struct{}

func (foreignDetector) Detect(ctx context.Context, id node.Identity) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(id.DevPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("size of %s: %w", id.DevPath, err)
	}
	var opts foreign.Options
	if id.Zoned == "host-managed" || id.Zoned == "host-aware" {
		if id.ZoneSizeBytes > 0 {
			opts.LabelOffsets = []int64{int64(id.ZoneSizeBytes)}
		}
	}
	rep, err := foreign.Detect(f, size, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id.DevPath, err)
	}
	if !rep.Foreign() {
		return nil, nil
	}
	return rep.Kinds(), nil
}
