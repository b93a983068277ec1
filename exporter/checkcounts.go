package exporter

import (
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
)

// checkOutcome is how a finished scheduled check counts.
type checkOutcome uint8

const (
	outcomeSucceeded checkOutcome = iota
	outcomeFailed
	// outcomeUnknown: the check failed while the location could not
	// vouch for its failures (canary failing or not checked yet, the
	// exporter degraded).
	outcomeUnknown
)

const (
	// countBucket is the span of one bucket of check counts.
	countBucket = time.Hour
	// countBuckets covers api.MaxStatsRange back from any moment inside
	// the current bucket: the current one and 168 full hours before it.
	countBuckets = int(api.MaxStatsRange/countBucket) + 1
)

// checkCounts holds, for every scheduled target, rolling counts of its
// finished scheduled checks by outcome in hourly buckets (UTC hours),
// covering api.MaxStatsRange. A target's buckets are allocated with its
// first check; one whose checks all succeed needs a single ring of uint16
// (a bucket counts at most 65535 checks: an interval is at least 1s, so
// at most 3600 checks an hour end in one). Failures and unknowns take a
// second ring, allocated with the first of them and freed once the
// window holds none.
//
// Counts follow targets by (module, target): retain keeps those of the
// targets still configured, whatever else of them changed, and drops the
// others'.
type checkCounts struct {
	mu sync.Mutex
	// targets holds every target kept, nil until its first check.
	targets map[api.TargetKey]*targetCounts
}

// targetCounts are the buckets of one target. Bucket of hour h (hours
// since the Unix epoch) is at index h % countBuckets; newest is the latest
// hour written, the buckets of the countBuckets hours up to it are valid.
type targetCounts struct {
	bad    *[countBuckets][2]uint16 // failed, unknown; nil while none
	newest int32
	ok     [countBuckets]uint16
}

func newCheckCounts() *checkCounts {
	return &checkCounts{targets: map[api.TargetKey]*targetCounts{}}
}

// hourOf is the bucket of t: hours since the Unix epoch.
func hourOf(t time.Time) int32 { return int32(t.Unix() / int64(countBucket/time.Second)) }

// retain keeps the counts of the given targets (the canary left out),
// starting empty for new ones, and drops those of every other target.
func (cc *checkCounts) retain(targets []scheduler.Target) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	next := make(map[api.TargetKey]*targetCounts, len(targets))
	for i := range targets {
		t := &targets[i]
		if t.Canary {
			continue
		}
		k := api.TargetKey{Target: t.Target, Module: t.Module}
		next[k] = cc.targets[k]
	}
	cc.targets = next
}

// record counts a check of k that finished at now with outcome o; a
// target not kept (no longer scheduled) is not counted.
func (cc *checkCounts) record(k api.TargetKey, o checkOutcome, now time.Time) {
	h := hourOf(now)
	cc.mu.Lock()
	defer cc.mu.Unlock()
	c, ok := cc.targets[k]
	if !ok {
		return
	}
	if c == nil {
		c = &targetCounts{newest: h}
		cc.targets[k] = c
	}
	c.add(o, h)
}

// stats are the counts of each key over rng up to now, in order: from the
// start of the bucket holding now-rng.
func (cc *checkCounts) stats(keys []api.TargetKey, rng time.Duration, now time.Time) []api.TargetStats {
	to, from := hourOf(now), hourOf(now.Add(-rng))
	start := time.Unix(int64(from)*int64(countBucket/time.Second), 0).UTC()
	out := make([]api.TargetStats, len(keys))
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for i, k := range keys {
		c, known := cc.targets[k]
		ts := api.TargetStats{TargetKey: k, Known: known, From: start}
		if c != nil {
			ts.Succeeded, ts.Failed, ts.Unknown = c.sum(from, to)
		}
		out[i] = ts
	}
	return out
}

// add counts one check with outcome o in hour h; an hour older than the
// window is not counted.
func (c *targetCounts) add(o checkOutcome, h int32) {
	if h > c.newest {
		c.advance(h)
	}
	if c.newest-h >= int32(countBuckets) {
		return
	}
	i := bucketIndex(h)
	switch o {
	case outcomeSucceeded:
		saturatingInc(&c.ok[i])
	case outcomeFailed, outcomeUnknown:
		if c.bad == nil {
			c.bad = new([countBuckets][2]uint16)
		}
		saturatingInc(&c.bad[i][o-outcomeFailed])
	}
}

// advance makes h the newest hour, emptying the buckets of the hours
// after the previous newest, and frees the ring of failures once the
// window holds none.
func (c *targetCounts) advance(h int32) {
	first := max(c.newest+1, h-int32(countBuckets)+1)
	for x := first; x <= h; x++ {
		i := bucketIndex(x)
		c.ok[i] = 0
		if c.bad != nil {
			c.bad[i] = [2]uint16{}
		}
	}
	c.newest = h
	if c.bad != nil && *c.bad == ([countBuckets][2]uint16{}) {
		c.bad = nil
	}
}

// sum adds the buckets of the hours from through to that the ring holds.
func (c *targetCounts) sum(from, to int32) (succeeded, failed, unknown uint64) {
	from = max(from, c.newest-int32(countBuckets)+1)
	to = min(to, c.newest)
	for h := from; h <= to; h++ {
		i := bucketIndex(h)
		succeeded += uint64(c.ok[i])
		if c.bad != nil {
			failed += uint64(c.bad[i][0])
			unknown += uint64(c.bad[i][1])
		}
	}
	return succeeded, failed, unknown
}

func bucketIndex(h int32) int { return int(h) % countBuckets }

func saturatingInc(n *uint16) {
	if *n < ^uint16(0) {
		*n++
	}
}
