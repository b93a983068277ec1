package confirm

import (
	"cmp"
	"slices"
	"time"
)

// A location's failure intervals of a target are derived from what it
// said, never from the order in which it was heard: failing streaks (from
// failing reports and snapshots: the streak's start and its latest failed
// check), failure points (a failed check the coordinator asked for), and
// closings (a success, or an unknown, at a time). A streak's interval runs
// from its start to the first closing at or after its latest failure: a
// success ends it there, an unknown (the location can no longer tell)
// ends it just after its latest failure, and so does the start of a later
// streak. Without a closing it is open. Two coordinators that heard the
// same things, in any order, derive the same intervals.
//
// Intervals are half-open, [start, end): a location that succeeds at the
// instant another starts failing does not overlap it. A failure observed
// at t covers [t, t+epsilon).
const epsilon = time.Nanosecond

// Bounds of a location's history of one target. Closed intervals that
// ended more than intervalRetention ago are forgotten, and at most
// maxStreaks streaks, maxPoints points and maxClosings closings are kept
// (the oldest closed ones go first): enough to judge late reports of the
// last hour, and constant memory per target.
const (
	intervalRetention = time.Hour
	maxStreaks        = 16
	maxPoints         = 16
	maxClosings       = 32
)

// history is one location's failure observations of one target.
type history struct {
	streaks  []streak    // sorted by start, starts unique
	points   []time.Time // sorted
	closings []closing   // sorted by time
}

type streak struct {
	start, last time.Time
	// stale: known only from reports delivered after report_freshness;
	// such a streak is history, and opens no incident on its own.
	stale bool
}

type closing struct {
	at      time.Time
	success bool // false: the location could not tell (unknown)
}

// fail records a failing streak that began at start and was still failing
// at last.
func (h *history) fail(start, last time.Time) { h.record(start, last, false) }

// failStale records a streak known only from a late report.
func (h *history) failStale(start, last time.Time) { h.record(start, last, true) }

func (h *history) record(start, last time.Time, stale bool) {
	if last.Before(start) {
		start = last
	}
	i, found := slices.BinarySearchFunc(h.streaks, start, func(s streak, t time.Time) int { return s.start.Compare(t) })
	if found {
		if last.After(h.streaks[i].last) {
			h.streaks[i].last = last
		}
		h.streaks[i].stale = h.streaks[i].stale && stale
		return
	}
	h.streaks = slices.Insert(h.streaks, i, streak{start: start, last: last, stale: stale})
}

// point records a failed check at t.
func (h *history) point(t time.Time) {
	i, found := slices.BinarySearchFunc(h.points, t, time.Time.Compare)
	if !found {
		h.points = slices.Insert(h.points, i, t)
	}
}

// close records a success (or, with success false, an unknown) at t.
func (h *history) close(t time.Time, success bool) {
	i, found := slices.BinarySearchFunc(h.closings, t, func(c closing, t time.Time) int { return c.at.Compare(t) })
	switch {
	case found && success:
		h.closings[i].success = true // a success says more than an unknown
	case !found:
		h.closings = slices.Insert(h.closings, i, closing{at: t, success: success})
	}
}

func (h *history) empty() bool {
	return h == nil || len(h.streaks)+len(h.points)+len(h.closings) == 0
}

// span is one derived failure interval [start, end), or [start, ∞) when
// open.
type span struct {
	start, end time.Time
	open       bool
	// streak indexes history.streaks; -1 for a point.
	streak int
	// stale: a streak known only from late reports.
	stale bool
	// unresolved: a closed span that holds the location's latest failure
	// with no success after it: nothing says the target recovered there
	// (the location could no longer tell, the span is one failed check the
	// coordinator asked for, or it is history).
	unresolved bool
}

// streakEnd derives where streak i ends: at the first closing at or
// after its last failure, unless a later streak began before that
// closing (then just after its last failure).
func (h *history) streakEnd(i int) (end time.Time, open bool) {
	s := h.streaks[i]
	j, _ := slices.BinarySearchFunc(h.closings, s.last, func(c closing, t time.Time) int { return c.at.Compare(t) })
	next := i+1 < len(h.streaks) && h.streaks[i+1].start.After(s.last)
	if j < len(h.closings) && (!next || !h.streaks[i+1].start.Before(h.closings[j].at)) {
		if c := h.closings[j]; c.success && c.at.After(s.last) {
			return c.at, false
		}
		return s.last.Add(epsilon), false
	}
	if next {
		return s.last.Add(epsilon), false
	}
	return time.Time{}, true
}

// spans derives the location's failure intervals.
func (h *history) spans() []span {
	if h == nil {
		return nil
	}
	out := make([]span, 0, len(h.streaks)+len(h.points))
	latest := h.lastFailure()
	for i, s := range h.streaks {
		end, open := h.streakEnd(i)
		unresolved := !open && !s.last.Before(latest) && !h.succeededAfter(s.last)
		out = append(out, span{start: s.start, end: end, open: open, streak: i, stale: s.stale, unresolved: unresolved})
	}
	for _, p := range h.points {
		unresolved := !p.Before(latest) && !h.succeededAfter(p)
		out = append(out, span{start: p, end: p.Add(epsilon), streak: -1, unresolved: unresolved})
	}
	return out
}

// unresolved reports whether the location's latest failure has no
// success after it.
func (h *history) unresolved() bool {
	if h == nil {
		return false
	}
	last := h.lastFailure()
	return !last.IsZero() && !h.succeededAfter(last)
}

// succeededAfter reports whether the location saw the target succeed
// after t.
func (h *history) succeededAfter(t time.Time) bool {
	for i := len(h.closings) - 1; i >= 0 && h.closings[i].at.After(t); i-- {
		if h.closings[i].success {
			return true
		}
	}
	return false
}

// open reports whether the location has an open interval.
func (h *history) open() bool {
	if h == nil {
		return false
	}
	for i := range h.streaks {
		if _, open := h.streakEnd(i); open {
			return true
		}
	}
	return false
}

// prune forgets intervals that ended before cutoff, and keeps the history
// within its bounds.
func (h *history) prune(cutoff time.Time) {
	keep := h.streaks[:0]
	for i, s := range h.streaks {
		end, open := h.streakEnd(i)
		if open || !end.Before(cutoff) {
			keep = append(keep, s)
		}
	}
	clear(h.streaks[len(keep):])
	h.streaks = keep
	if n := len(h.streaks) - maxStreaks; n > 0 {
		h.streaks = slices.Delete(h.streaks, 0, n)
	}
	// A closing before every remaining streak's last failure ends none.
	oldest := cutoff
	if len(h.streaks) > 0 {
		oldest = h.streaks[0].last
		for _, s := range h.streaks {
			if s.last.Before(oldest) {
				oldest = s.last
			}
		}
		if cutoff.Before(oldest) {
			oldest = cutoff
		}
	}
	h.closings = slices.DeleteFunc(h.closings, func(c closing) bool { return c.at.Before(oldest) })
	if n := len(h.closings) - maxClosings; n > 0 {
		h.closings = slices.Delete(h.closings, 0, n)
	}
	h.points = slices.DeleteFunc(h.points, func(p time.Time) bool { return p.Before(cutoff) })
	if n := len(h.points) - maxPoints; n > 0 {
		h.points = slices.Delete(h.points, 0, n)
	}
}

// locSpan is a span of one location.
type locSpan struct {
	span
	loc int // index in target.locs
}

// episode is a stretch of time during which at least one location's
// failure interval was open, without a gap: the unit that becomes one
// incident.
type episode struct {
	start, end time.Time // end is zero while open
	open       bool
	spans      []locSpan
	// streaks tells whether any span is a reported streak that is not
	// stale (points alone, the coordinator's own checks, and late
	// reports alone open no incident, unless they confirm an outage).
	streaks bool
	// confirmed: at some instant, at least need locations' intervals
	// overlapped, from overlapStart; the overlap ended at overlapEnd
	// (its last instant), or is ongoing. A confirmed overlap goes on
	// while need locations may still be failing: an interval still open,
	// or a live one that ended with nothing to say the target recovered
	// there (span.unresolved), counts as failing still; only successes
	// end an outage. settled: it is over, and not only because late
	// reports (history) say no more than that a location failed.
	confirmed                bool
	overlapStart, overlapEnd time.Time
	ongoing, settled         bool
	// lingers: a location's latest failure here is live, closed, and
	// unresolved (span.unresolved): the episode is not known to be over.
	lingers bool
}

// episodes derives a target's episodes from its locations' histories,
// oldest first; need is min_failing_locations, counted among the
// locations counts says to count.
func episodes(locs []locState, counts func(name string) bool, need int) []episode {
	var all []locSpan
	for i := range locs {
		if locs[i].hist == nil || !counts(locs[i].name) {
			continue
		}
		for _, s := range locs[i].hist.spans() {
			all = append(all, locSpan{span: s, loc: i})
		}
	}
	slices.SortFunc(all, func(a, b locSpan) int { return cmp.Or(a.start.Compare(b.start), cmp.Compare(a.loc, b.loc)) })
	var out []episode
	for _, s := range all {
		if n := len(out); n > 0 && (out[n-1].open || s.start.Before(out[n-1].end)) {
			e := &out[n-1]
			e.spans = append(e.spans, s)
			switch {
			case s.open:
				e.open, e.end = true, time.Time{}
			case !e.open && s.end.After(e.end):
				e.end = s.end
			}
			e.streaks = e.streaks || (s.streak >= 0 && !s.stale)
			continue
		}
		e := episode{start: s.start, open: s.open, spans: []locSpan{s}, streaks: s.streak >= 0 && !s.stale}
		if !s.open {
			e.end = s.end
		}
		out = append(out, e)
	}
	for i := range out {
		out[i].overlap(need)
	}
	return out
}

// overlap finds when at least need distinct locations failed at once.
func (e *episode) overlap(need int) {
	// Merge each location's spans, so a location counts once.
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	byLoc := map[int][]span{}
	for _, s := range e.spans {
		byLoc[s.loc] = append(byLoc[s.loc], s.span)
	}
	// Locations whose latest failure here is open, live and unresolved,
	// or history and unresolved.
	openAtEnd, lingering, untold := 0, 0, 0
	for _, spans := range byLoc {
		cur := spans[0]
		flush := func() {
			edges = append(edges, edge{cur.start, +1})
			if cur.open {
				openAtEnd++
			} else {
				edges = append(edges, edge{cur.end, -1})
			}
		}
		switch {
		case slices.ContainsFunc(spans, func(s span) bool { return s.open }):
		case slices.ContainsFunc(spans, func(s span) bool { return s.unresolved && !s.stale }):
			lingering++
		case slices.ContainsFunc(spans, func(s span) bool { return s.unresolved }):
			untold++
		}
		for _, s := range spans[1:] {
			if cur.open || !s.start.After(cur.end) {
				if s.open {
					cur.open = true
				} else if s.end.After(cur.end) {
					cur.end = s.end
				}
				continue
			}
			flush()
			cur = s
		}
		flush()
	}
	// Half-open: at equal times, ends come before starts.
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.delta, b.delta)) })
	n := 0
	for _, ed := range edges {
		before := n
		n += ed.delta
		switch {
		case before < need && n >= need:
			if !e.confirmed {
				e.confirmed, e.overlapStart = true, ed.at
			}
		case before >= need && n < need:
			e.overlapEnd = ed.at
		}
	}
	e.ongoing = openAtEnd >= need || (e.confirmed && openAtEnd+lingering >= need)
	e.settled = e.confirmed && openAtEnd+lingering+untold < need
	e.lingers = lingering > 0
	if e.ongoing {
		e.overlapEnd = time.Time{}
	}
}

// lastFailure is the latest failure the history holds, zero when none.
func (h *history) lastFailure() time.Time {
	var last time.Time
	if h == nil {
		return last
	}
	for _, s := range h.streaks {
		last = later(last, s.last)
	}
	for _, p := range h.points {
		last = later(last, p)
	}
	return last
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
