package discover_test

import (
	"context"
	"log/slog"
	"time"

	"github.com/stowage/stowage/hwmgr/discover"
	"github.com/stowage/stowage/hwmgr/iostat"
)

// Example wires discovery and I/O statistics the way the daemon does: the
// watcher keeps the inventory, a ticker turns diskstats into rates, and
// the outlier rule compares drives of the same model.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	inventory := make(chan []discover.Drive, 1)
	s := discover.NewScanner(discover.Config{})
	go func() {
		_ = s.Watch(ctx, discover.WatchConfig{}, func(u discover.Update) {
			for _, d := range u.Diff.Added {
				slog.Info("drive added", "name", d.Name, "serial", d.Serial, "transport", d.Transport)
			}
			for _, d := range u.Diff.Removed {
				slog.Info("drive removed", "name", d.Name, "serial", d.Serial)
			}
			select {
			case <-inventory:
			default:
			}
			inventory <- u.Drives
		})
	}()

	r, err := iostat.NewReader(iostat.Config{})
	if err != nil {
		return
	}
	tr := iostat.NewTracker(r)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var drives []discover.Drive
	for {
		select {
		case <-ctx.Done():
			return
		case drives = <-inventory:
		case <-tick.C:
			rates, _, err := tr.Next(ctx)
			if err != nil || rates == nil {
				continue
			}
			models := map[string]string{}
			for _, d := range drives {
				models[d.Name] = d.Vendor + " " + d.Model
			}
			for _, o := range iostat.Outliers(rates, models, iostat.Rule{}) {
				slog.Warn("slow drive", "outlier", o.String())
			}
		}
	}
}
