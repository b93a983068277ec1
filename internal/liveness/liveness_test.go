package liveness

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func fixed(d time.Duration) func() time.Duration { return func() time.Duration { return d } }

// stalledNames names the clocks of s stalled at now.
func stalledNames(s *Set, now time.Time) string {
	var names []string
	for _, st := range s.Stalled(now) {
		names = append(names, st.Clock)
	}
	return strings.Join(names, ",")
}

func TestAnIdleClockNeverStalls(t *testing.T) {
	s := NewSet("test")
	c := s.Add("commit", fixed(time.Second), nil)
	c.Advance(t0)
	if got := stalledNames(s, t0.Add(time.Hour)); got != "" {
		t.Errorf("an hour without work: stalled %q, want none", got)
	}
	c.Begin(t0.Add(time.Hour))
	c.Finish(t0.Add(time.Hour + time.Millisecond))
	if got := stalledNames(s, t0.Add(2*time.Hour)); got != "" {
		t.Errorf("work finished, then idle: stalled %q, want none", got)
	}
}

func TestWorkDueStallsPastTheBoundUntilTheClockAdvances(t *testing.T) {
	s := NewSet("test")
	c := s.Add("commit", fixed(time.Second), nil)
	c.Advance(t0)
	c.Begin(t0.Add(10 * time.Second))
	// The wait counts from when the work began, not from the latest
	// advance long before it.
	if got := stalledNames(s, t0.Add(10*time.Second+900*time.Millisecond)); got != "" {
		t.Errorf("due for 0.9s of a 1s bound: stalled %q", got)
	}
	st := s.Stalled(t0.Add(11*time.Second + 500*time.Millisecond))
	if len(st) != 1 || st[0].Clock != "commit" || st[0].Waited != 1500*time.Millisecond || st[0].Bound != time.Second || !st[0].Last.Equal(t0) {
		t.Fatalf("due for 1.5s: %+v, want commit stalled for 1.5s", st)
	}
	if msg := st[0].String(); !strings.HasPrefix(msg, "commit: no progress for 1.5s while work is due (bound 1s; last advanced 2026-12-03T12:00:00Z)") {
		t.Errorf("description %q", msg)
	}
	// Progress on other work of the clock counts: a second unit began,
	// the first finished.
	c.Begin(t0.Add(12 * time.Second))
	c.Finish(t0.Add(12 * time.Second))
	if got := stalledNames(s, t0.Add(12*time.Second+900*time.Millisecond)); got != "" {
		t.Errorf("advanced 0.9s ago with work still due: stalled %q", got)
	}
	if got := stalledNames(s, t0.Add(13*time.Second+100*time.Millisecond)); got != "commit" {
		t.Errorf("still due 1.1s after the latest advance: stalled %q, want commit", got)
	}
	c.Finish(t0.Add(14 * time.Second))
	if got := stalledNames(s, t0.Add(time.Minute)); got != "" {
		t.Errorf("all work done: stalled %q", got)
	}
}

func TestAFailureKeepsWorkDueUntilTheClockAdvances(t *testing.T) {
	s := NewSet("test")
	c := s.Add("commit", fixed(time.Second), nil)
	c.Advance(t0)
	c.Begin(t0.Add(time.Second))
	c.Fail(t0.Add(1100 * time.Millisecond))
	if got := stalledNames(s, t0.Add(5*time.Second)); got != "commit" {
		t.Errorf("a failed commit and none since: stalled %q, want commit", got)
	}
	c.Begin(t0.Add(6 * time.Second))
	c.Finish(t0.Add(6 * time.Second))
	if got := stalledNames(s, t0.Add(time.Minute)); got != "" {
		t.Errorf("a commit after the failure: stalled %q, want none", got)
	}
}

func TestWaitingSaysWhenWorkIsDue(t *testing.T) {
	s := NewSet("test")
	var since time.Time // zero: nothing due
	bound := time.Second
	c := s.Add("tick", func() time.Duration { return bound }, func(time.Time) (time.Time, bool) { return since, !since.IsZero() })
	if got := stalledNames(s, t0); got != "" {
		t.Errorf("never advanced and nothing due: stalled %q", got)
	}
	since = t0
	if got := stalledNames(s, t0.Add(2*time.Second)); got != "tick" {
		t.Errorf("due for 2s, never advanced: stalled %q, want tick", got)
	}
	c.Advance(t0.Add(1500 * time.Millisecond))
	if got := stalledNames(s, t0.Add(2*time.Second)); got != "" {
		t.Errorf("advanced 0.5s ago: stalled %q", got)
	}
	if got := stalledNames(s, t0.Add(3*time.Second)); got != "tick" {
		t.Errorf("still due, advanced 1.5s ago: stalled %q, want tick", got)
	}
	// The bound is read at each judgement: a new configuration applies.
	bound = 2 * time.Second
	if got := stalledNames(s, t0.Add(3*time.Second)); got != "" {
		t.Errorf("advanced 1.5s ago, bound now 2s: stalled %q", got)
	}
}

func TestSeries(t *testing.T) {
	s := NewSet("coordinator")
	received := s.Add("report_received", fixed(time.Second), nil)
	commit := s.Add("store_commit", fixed(time.Second), nil)
	received.Advance(time.Unix(1700000000, 500000000))
	commit.Begin(time.Now().Add(-time.Minute))
	// The receive clock moves while the write clock does not: stalled.
	want := `
# HELP vantage_coordinator_clock_stalled Whether the clock is stalled (1): work has been due for it for longer than its bound and it has not advanced; /-/healthy then answers 503 naming it.
# TYPE vantage_coordinator_clock_stalled gauge
vantage_coordinator_clock_stalled{clock="report_received"} 0
vantage_coordinator_clock_stalled{clock="store_commit"} 1
# HELP vantage_coordinator_last_report_received_timestamp_seconds When the program last made this kind of progress (Unix time; 0 before the first).
# TYPE vantage_coordinator_last_report_received_timestamp_seconds gauge
vantage_coordinator_last_report_received_timestamp_seconds 1.7000000005e+09
# HELP vantage_coordinator_last_store_commit_timestamp_seconds When the program last made this kind of progress (Unix time; 0 before the first).
# TYPE vantage_coordinator_last_store_commit_timestamp_seconds gauge
vantage_coordinator_last_store_commit_timestamp_seconds 0
`
	if err := testutil.CollectAndCompare(s, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if got := s.Unhealthy(); len(got) != 1 || !strings.HasPrefix(got[0], "store_commit: no progress for 1m") || !strings.HasSuffix(got[0], "never advanced)") {
		t.Errorf("Unhealthy() = %q, want store_commit stalled, never advanced", got)
	}
}

func TestANilClockIgnoresEverything(t *testing.T) {
	var c *Clock
	c.Advance(t0)
	c.Begin(t0)
	c.Finish(t0)
	c.Fail(t0)
	if !c.Last().IsZero() {
		t.Error("a nil clock has a time")
	}
}
