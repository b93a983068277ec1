package scheduler

import (
	"slices"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
)

// DegradedReasons lists why a scheduler may not vouch for its results,
// in the order Degraded names them: a check started more than MaxLag after
// its planned time; more than MaxMissedRatio of the planned checks did not
// run for want of capacity (late: no concurrency slot in time, or the loop
// fell behind; a busy target, whose previous check still runs, is its own
// doing); a target's latest result is older than StaleAfter of its
// intervals.
var DegradedReasons = []string{api.ReasonSchedulerLag, api.ReasonMissedChecks, api.ReasonStaleResults}

// Bounds say when the scheduler judges itself degraded. Lag and missed
// checks are judged over the checks of the last Window; a zero bound
// turns its judgement off.
type Bounds struct {
	// MaxLag is the longest a check may start after its planned time.
	MaxLag time.Duration
	// MaxMissedRatio is the share of planned checks that may be missed
	// late.
	MaxMissedRatio float64
	// StaleAfter is how many intervals may pass without a completed
	// check of a target.
	StaleAfter int
	// Window is how far back lag and missed checks are judged.
	Window time.Duration
}

// DefaultBounds are the flags' defaults.
func DefaultBounds() Bounds {
	return Bounds{MaxLag: 10 * time.Second, MaxMissedRatio: 0.1, StaleAfter: 3, Window: time.Minute}
}

// judgeBuckets is how many parts the window is kept in: it slides by a
// tenth of itself.
const judgeBuckets = 10

// judge keeps what the scheduler needs to judge itself, in buckets of
// the last window. Time is passed in; it does no I/O.
type judge struct {
	mu      sync.Mutex
	bounds  Bounds
	buckets [judgeBuckets]bucket
	// stale counts the targets whose latest result is stale.
	stale int
	// last is the latest judgement.
	last []string
}

type bucket struct {
	start           time.Time
	planned, missed int
	maxLag          time.Duration
}

func newJudge(b Bounds) *judge {
	if b.Window <= 0 {
		b.Window = DefaultBounds().Window
	}
	return &judge{bounds: b}
}

// at returns the bucket for t, reset when it held an older part of the
// window. j.mu is held.
func (j *judge) at(t time.Time) *bucket {
	width := j.bounds.Window / judgeBuckets
	start := t.Truncate(width)
	b := &j.buckets[(start.UnixNano()/int64(width))%judgeBuckets]
	if !b.start.Equal(start) {
		*b = bucket{start: start}
	}
	return b
}

// planned counts n checks planned at t.
func (j *judge) planned(t time.Time, n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.at(t).planned += n
}

// missed counts n planned checks given up at t.
func (j *judge) missed(t time.Time, n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.at(t).missed += n
}

// started records a check that started at t, lag after its planned time.
func (j *judge) started(t time.Time, lag time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	b := j.at(t)
	b.maxLag = max(b.maxLag, lag)
}

// staleChanged adds d to the count of targets with a stale result.
func (j *judge) staleChanged(d int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.stale += d
}

// degraded returns the reasons that hold at now, in DegradedReasons
// order, and whether they differ from the previous judgement's.
func (j *judge) degraded(now time.Time) (reasons []string, changed bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var planned, missed int
	var lag time.Duration
	from := now.Add(-j.bounds.Window)
	for i := range j.buckets {
		b := &j.buckets[i]
		if b.start.IsZero() || !b.start.After(from) || b.start.After(now) {
			continue
		}
		planned += b.planned
		missed += b.missed
		lag = max(lag, b.maxLag)
	}
	var out []string
	if j.bounds.MaxLag > 0 && lag > j.bounds.MaxLag {
		out = append(out, api.ReasonSchedulerLag)
	}
	if j.bounds.MaxMissedRatio > 0 && missed > 0 && float64(missed) > j.bounds.MaxMissedRatio*float64(max(planned, missed)) {
		out = append(out, api.ReasonMissedChecks)
	}
	if j.bounds.StaleAfter > 0 && j.stale > 0 {
		out = append(out, api.ReasonStaleResults)
	}
	changed = !slices.Equal(out, j.last)
	j.last = out
	return out, changed
}
