package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"
)

// inFlightResult is (d).
type inFlightResult struct {
	sysResult
	Targets       int
	Demand        float64 // targets × delay / interval
	Peak, Mean    float64
	Samples       int
	MaxInFlight   int
	Delay         time.Duration
	IntervalUsed  time.Duration
	FarmPeakConns int64
	// The runtime's figures at the sample with the most checks in flight.
	AtPeak schedMetrics
}

// phaseInFlight is (d): many slow targets, so that max_in_flight checks
// are running at once.
func phaseInFlight(ctx context.Context, env *env) (inFlightResult, error) {
	o := env.opts
	r := inFlightResult{Targets: o.ifTargets, Delay: o.ifDelay, IntervalUsed: o.ifInterval, MaxInFlight: o.ifMaxInFlight}
	r.System = "vantage-exporter (slow targets)"
	r.Errors = -1
	r.Demand = float64(o.ifTargets) * o.ifDelay.Seconds() / o.ifInterval.Seconds()
	r.TargetRate = float64(o.ifTargets) / o.ifInterval.Seconds()
	progress("d: vantage-exporter, %d targets answering after %s every %s (%.0f in flight expected)",
		o.ifTargets, o.ifDelay, o.ifInterval, r.Demand)
	spec := vantageSpec{Targets: o.ifTargets, Interval: o.ifInterval, Timeout: o.ifTimeout, MaxInFlight: o.ifMaxInFlight,
		Query: "?d=" + o.ifDelay.String()}
	ex, err := startVantage(ctx, env, "vantage-d", spec)
	if err != nil {
		return r, err
	}
	defer ex.stop()
	m0, w0, err := warmUp(ctx, env, ex, o.ifWarmup)
	if err != nil {
		return r, err
	}
	var sum float64
	for end := time.Now().Add(o.ifWindow); time.Now().Before(end); {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return r, err
		}
		m, err := scrapeScheduler(ctx, ex.base)
		if err != nil {
			return r, err
		}
		fs, _ := getFarmStats(env.farm)
		if m.InFlight > r.Peak {
			r.AtPeak = m
		}
		r.Peak = max(r.Peak, m.InFlight)
		r.FarmPeakConns = max(r.FarmPeakConns, fs.InFlight)
		sum += m.InFlight
		r.Samples++
	}
	w1, err := takeWindow(env, ex.pid())
	if err != nil {
		return r, err
	}
	m1, err := scrapeScheduler(ctx, ex.base)
	if err != nil {
		return r, err
	}
	saveProfile(ctx, env, ex, "heap", "d-heap")
	saveProfile(ctx, env, ex, "goroutine", "d-goroutine")
	r.Mean = sum / float64(r.Samples)
	r.U = between(w0, w1)
	r.fillScheduler(m0, m1)
	r.HWM = w1.proc.HWMBytes
	return r, nil
}

// scrapeResult is (e).
type scrapeResult struct {
	Series      string // scheduler.series
	Targets     int
	Interval    time.Duration
	Startup     time.Duration
	WaitedFor   time.Duration
	Rows        int64
	Plain, Gzip []fullScrape
	HWM         int64
}

// phaseScrape is (e): GET /metrics over a large table of results.
func phaseScrape(ctx context.Context, env *env, series string) (scrapeResult, error) {
	o := env.opts
	r := scrapeResult{Series: series, Targets: o.scrapeTargets, Interval: o.scrapeInterval}
	progress("e: vantage-exporter, %d targets every %s, series: %s; waiting for every target's first result", o.scrapeTargets, o.scrapeInterval, series)
	spec := vantageSpec{Targets: o.scrapeTargets, Interval: o.scrapeInterval, Timeout: 5 * time.Second, MaxInFlight: o.maxInFlight, Series: series}
	ex, err := startVantage(ctx, env, "vantage-e-"+series, spec)
	if err != nil {
		return r, err
	}
	defer ex.stop()
	r.Startup = ex.startup
	start := time.Now()
	// Every target has run once an interval after the start; a check
	// finishes within the module timeout (5s) after that.
	for {
		m, err := scrapeScheduler(ctx, ex.base)
		if err != nil {
			return r, err
		}
		if m.Checks >= float64(o.scrapeTargets) || time.Since(start) > o.scrapeInterval+30*time.Second {
			break
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return r, err
	}
	r.WaitedFor = time.Since(start)
	// The plain scrapes read into one buffer, as a Prometheus server
	// scraping the exporter again and again reads each scrape into a
	// buffer sized by the previous one; a first, untimed scrape sizes it.
	var body bytes.Buffer
	if _, err := scrapeInto(ctx, ex.base, false, &body); err != nil {
		return r, err
	}
	for i := range o.scrapeRuns {
		for _, gz := range []bool{false, true} {
			var s fullScrape
			err := profileWhile(ctx, env, ex, 3, fmt.Sprintf("e-%s-cpu-%d-gzip-%t", series, i, gz), func() (err error) {
				s, err = scrapeTimed(ctx, ex, gz, &body)
				return err
			})
			if err != nil {
				return r, err
			}
			if gz {
				r.Gzip = append(r.Gzip, s)
			} else {
				r.Plain = append(r.Plain, s)
				r.Rows = max(r.Rows, s.Rows)
			}
		}
	}
	p, err := readProc(ex.pid())
	if err != nil {
		return r, err
	}
	r.HWM = p.HWMBytes
	return r, nil
}

// durations returns the min, median and max duration of scrapes.
func durations(ss []fullScrape) (lo, med, hi time.Duration) {
	if len(ss) == 0 {
		return
	}
	d := make([]time.Duration, len(ss))
	for i, s := range ss {
		d[i] = s.Duration
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[0], d[len(d)/2], d[len(d)-1]
}
