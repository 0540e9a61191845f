package main

import (
	"log/slog"

	"github.com/stowage/stowage/hwmgr/node"
)

// wireExtras adds the sources whose packages land separately: the label
// store (hwmgr/label, lifecycle, foreign) and I/O statistics (hwmgr/iostat).
func wireExtras(cfg *node.Config, o options, log *slog.Logger) error {
	return nil
}
