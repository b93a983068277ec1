package exporter

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
)

// countsAt is the stats of k over rng at now, checked to be one answer.
func countsAt(t *testing.T, cc *checkCounts, k api.TargetKey, rng time.Duration, now time.Time) api.TargetStats {
	t.Helper()
	out := cc.stats([]api.TargetKey{k}, rng, now)
	if len(out) != 1 || out[0].TargetKey != k {
		t.Fatalf("stats of %v: %+v", k, out)
	}
	return out[0]
}

func wantCounts(t *testing.T, what string, got api.TargetStats, succeeded, failed, unknown uint64) {
	t.Helper()
	if !got.Known || got.Succeeded != succeeded || got.Failed != failed || got.Unknown != unknown {
		t.Errorf("%s: known %v, %d/%d/%d succeeded/failed/unknown, want known, %d/%d/%d",
			what, got.Known, got.Succeeded, got.Failed, got.Unknown, succeeded, failed, unknown)
	}
}

func TestCheckCountsBuckets(t *testing.T) {
	a := scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	ka := api.TargetKey{Target: a.Target, Module: a.Module}
	cc := newCheckCounts()
	cc.retain([]scheduler.Target{a})
	// 10:30 UTC: three successes, a failure and an unknown.
	t0 := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	for range 3 {
		cc.record(ka, outcomeSucceeded, t0)
	}
	cc.record(ka, outcomeFailed, t0)
	cc.record(ka, outcomeUnknown, t0)
	// 11:10: two successes and two failures in the next bucket.
	t1 := t0.Add(40 * time.Minute)
	for range 2 {
		cc.record(ka, outcomeSucceeded, t1)
		cc.record(ka, outcomeFailed, t1)
	}

	got := countsAt(t, cc, ka, 5*time.Minute, t1)
	wantCounts(t, "range 5m at 11:10", got, 2, 2, 0)
	if want := time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC); !got.From.Equal(want) {
		t.Errorf("From of range 5m at 11:10 = %s, want %s", got.From, want)
	}
	got = countsAt(t, cc, ka, time.Hour, t1)
	wantCounts(t, "range 1h at 11:10", got, 5, 3, 1)
	if want := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC); !got.From.Equal(want) {
		t.Errorf("From of range 1h at 11:10 = %s, want %s", got.From, want)
	}
	// A day later the 24h range no longer reaches 10:00 of the day before.
	wantCounts(t, "range 24h a day later", countsAt(t, cc, ka, 24*time.Hour, t1.Add(24*time.Hour)), 2, 2, 0)
	// The full range keeps the first bucket for 168 hours after its hour.
	end := time.Date(2026, 3, 9, 10, 59, 0, 0, time.UTC)
	wantCounts(t, "range 7d at the end of the first bucket's last hour", countsAt(t, cc, ka, api.MaxStatsRange, end), 5, 3, 1)
	wantCounts(t, "range 7d an hour later", countsAt(t, cc, ka, api.MaxStatsRange, end.Add(time.Hour)), 2, 2, 0)

	// A check recorded much later rolls the ring over: the old buckets go,
	// and with them the ring of failures.
	t2 := t1.Add(200 * time.Hour)
	cc.record(ka, outcomeSucceeded, t2)
	wantCounts(t, "range 7d after the rollover", countsAt(t, cc, ka, api.MaxStatsRange, t2), 1, 0, 0)
	if c := cc.targets[ka]; c.bad != nil {
		t.Error("the ring of failures is still allocated with none in the window")
	}
	// A bucket reused after a partial rollover starts empty.
	t3 := t2.Add(time.Duration(countBuckets) * time.Hour)
	cc.record(ka, outcomeFailed, t3)
	wantCounts(t, "a reused bucket", countsAt(t, cc, ka, time.Minute, t3), 0, 1, 0)
	// A check older than the window is not counted; one within it is.
	cc.record(ka, outcomeUnknown, t3.Add(-api.MaxStatsRange-2*time.Hour))
	cc.record(ka, outcomeUnknown, t3.Add(-3*time.Hour))
	wantCounts(t, "late checks", countsAt(t, cc, ka, api.MaxStatsRange, t3), 0, 1, 1)
}

func TestCheckCountsFollowTargets(t *testing.T) {
	a := scheduler.Target{Module: "http_2xx", Target: "https://a.example", Interval: time.Minute}
	b := scheduler.Target{Module: "http_2xx", Target: "https://b.example", Interval: time.Minute}
	canary := scheduler.Target{Module: "http_2xx", Target: "https://canary.example", Canary: true}
	ka := api.TargetKey{Target: a.Target, Module: a.Module}
	kb := api.TargetKey{Target: b.Target, Module: b.Module}
	kc := api.TargetKey{Target: canary.Target, Module: canary.Module}
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	cc := newCheckCounts()
	cc.retain([]scheduler.Target{a, b, canary})
	cc.record(ka, outcomeFailed, now)
	cc.record(kb, outcomeSucceeded, now)
	cc.record(kc, outcomeSucceeded, now)

	// A reload that changes a's interval and labels and removes b.
	a.Interval, a.Labels = 30*time.Second, []scheduler.Label{{Name: "team", Value: "web"}}
	cc.retain([]scheduler.Target{a, canary})
	out := cc.stats([]api.TargetKey{ka, kb, kc}, time.Hour, now)
	wantCounts(t, "a changed target", out[0], 0, 1, 0)
	if out[1].Known || out[1].Succeeded != 0 || out[2].Known || out[2].Succeeded != 0 {
		t.Errorf("a removed target and the canary: %+v %+v, want unknown and zero", out[1], out[2])
	}
	// b returns with empty counts; a check of a target not kept is dropped.
	cc.record(kb, outcomeSucceeded, now)
	cc.retain([]scheduler.Target{a, b})
	if got := countsAt(t, cc, kb, time.Hour, now); !got.Known || got.Succeeded != 0 {
		t.Errorf("a target scheduled again: %+v, want known with no checks", got)
	}
}

func TestCheckCountsSaturate(t *testing.T) {
	a := scheduler.Target{Module: "m", Target: "t"}
	k := api.TargetKey{Target: "t", Module: "m"}
	cc := newCheckCounts()
	cc.retain([]scheduler.Target{a})
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	for range 1 << 16 {
		cc.record(k, outcomeSucceeded, now)
	}
	if got := countsAt(t, cc, k, time.Minute, now); got.Succeeded != 1<<16-1 {
		t.Errorf("a full bucket counts %d, want it to stay at %d", got.Succeeded, 1<<16-1)
	}
}

// BenchmarkCheckCountsMemory measures the memory the counts of 100,000
// targets take: kept but not checked yet (a cluster member's targets
// owned by others), after a success of each, then after a failure of
// each too; and the time counting a check takes.
func BenchmarkCheckCountsMemory(b *testing.B) {
	const n = 100_000
	targets := make([]scheduler.Target, n)
	keys := make([]api.TargetKey, n)
	for i := range targets {
		targets[i] = scheduler.Target{Module: "http_2xx", Target: "https://host-" + strconv.Itoa(i) + ".example/health"}
		keys[i] = api.TargetKey{Target: targets[i].Target, Module: targets[i].Module}
	}
	now := time.Date(2026, 3, 2, 10, 30, 0, 0, time.UTC)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var cc *checkCounts
	before := heap()
	cc = newCheckCounts()
	cc.retain(targets)
	kept := heap()
	for _, k := range keys {
		cc.record(k, outcomeSucceeded, now)
	}
	succeeded := heap()
	for _, k := range keys {
		cc.record(k, outcomeFailed, now)
	}
	failed := heap()

	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		cc.record(keys[i%n], outcomeSucceeded, now)
	}
	b.StopTimer()
	// After ResetTimer, which forgets metrics reported before it.
	b.ReportMetric(float64(kept-before)/n, "bytes/unchecked-target")
	b.ReportMetric(float64(succeeded-before)/n, "bytes/target")
	b.ReportMetric(float64(failed-before)/n, "bytes/failing-target")
	runtime.KeepAlive(cc)
	runtime.KeepAlive(targets) // live until measured: not the counts' memory
}
