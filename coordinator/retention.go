package coordinator

import (
	"context"
	"time"

	"github.com/prometheus/common/model"
)

// pruneIncidents deletes the incidents resolved longer than
// --storage.retention ago at once and then every PruneInterval, until ctx
// ends. Open incidents are kept however old.
func (c *Coordinator) pruneIncidents(ctx context.Context) {
	ticker := time.NewTicker(c.opts.PruneInterval)
	defer ticker.Stop()
	for {
		c.pruneOnce(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// pruneOnce deletes the incidents resolved before now minus the retention.
func (c *Coordinator) pruneOnce(now time.Time) {
	cutoff := now.Add(-c.opts.Retention)
	n, err := c.store.Prune(cutoff)
	if err != nil {
		c.metrics.storeErrors.Inc()
		c.logger.Error("Pruning old incidents failed", "err", err)
		return
	}
	c.metrics.pruned.Add(float64(n))
	if _, err := c.pruneMaintenances(cutoff, now); err != nil {
		c.metrics.storeErrors.Inc()
		c.logger.Error("Pruning old maintenance windows failed", "err", err)
	}
	// Tombstones of the replicated state are kept as long as incidents:
	// a peer away for longer than the retention would bring back what
	// was deleted while it was away.
	if _, err := c.replica.Prune(cutoff); err != nil {
		c.metrics.storeErrors.Inc()
		c.logger.Error("Pruning the replicated state's tombstones failed", "err", err)
	}
	if n > 0 {
		c.logger.Info("Pruned resolved incidents older than the retention", "incidents", n, "retention", model.Duration(c.opts.Retention), "resolved_before", cutoff)
	}
}
