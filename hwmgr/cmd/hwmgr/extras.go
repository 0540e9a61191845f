package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/stowage/stowage/hwmgr/iostat"
	"github.com/stowage/stowage/hwmgr/node"
)

// wireExtras adds the I/O statistics source and the label store.
func wireExtras(cfg *node.Config, o options, log *slog.Logger) error {
	r, err := iostat.NewReader(iostat.Config{ProcRoot: o.ProcRoot, SysRoot: o.SysRoot})
	if err != nil {
		return fmt.Errorf("I/O statistics: %w", err)
	}
	cfg.Stats = &statsSource{reader: r}
	cfg.Labels = newLabelStore(o.SysRoot, foreignDetector{}, time.Now)
	return nil
}
