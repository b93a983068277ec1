package exporter

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/exporter/report"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/liveness"
)

// Clocks of the exporter's progress.
const (
	clockSchedulerTick   = "scheduler_tick"
	clockCheckCompleted  = "check_completed"
	clockReportDelivered = "report_delivered"
)

// live holds the exporter's clocks of its own progress and the bounds
// derived from the scheduled targets that judge them.
type live struct {
	clocks    *liveness.Set
	tick      *liveness.Clock
	checks    *liveness.Clock
	delivered *liveness.Clock // nil without coordinators
	// minInterval and maxTimeout are of the scheduled targets.
	minInterval, maxTimeout atomic.Int64
}

// newLive makes the clocks: the scheduler's loop must pass whenever a
// planned check is due (bound: the shortest interval of the scheduled
// targets); a check attempt running must end (bound: twice the longest
// attempt timeout, at least 1s); with coordinators, queued reports must be
// delivered (bound: two heartbeat intervals plus the delivery's request
// timeout). overdue and waiting are read at each judgement.
func newLive(reporting bool, heartbeat time.Duration, overdue, waiting liveness.Waiting) *live {
	l := &live{clocks: liveness.NewSet("exporter")}
	l.minInterval.Store(int64(time.Second))
	l.maxTimeout.Store(int64(time.Second))
	l.tick = l.clocks.Add(clockSchedulerTick, func() time.Duration {
		return time.Duration(l.minInterval.Load())
	}, overdue)
	l.checks = l.clocks.Add(clockCheckCompleted, func() time.Duration {
		return max(2*time.Duration(l.maxTimeout.Load()), time.Second)
	}, nil)
	if reporting {
		if heartbeat <= 0 {
			heartbeat = report.DefaultOptions().HeartbeatInterval
		}
		bound := 2*heartbeat + report.DefaultOptions().Client.Timeout
		l.delivered = l.clocks.Add(clockReportDelivered, func() time.Duration { return bound }, waiting)
	}
	return l
}

// configure derives the clocks' bounds from the scheduled targets.
func (l *live) configure(targets []scheduler.Target) {
	var minInterval, maxTimeout time.Duration
	for i := range targets {
		t := &targets[i]
		if minInterval == 0 || t.Interval < minInterval {
			minInterval = t.Interval
		}
		maxTimeout = max(maxTimeout, t.Timeout)
	}
	l.minInterval.Store(int64(max(minInterval, time.Second)))
	l.maxTimeout.Store(int64(maxTimeout))
}

// registerDegraded exposes vantage_exporter_degraded{reason}.
func registerDegraded(reg prometheus.Registerer, degraded func(time.Time) []string) {
	for _, reason := range scheduler.DegradedReasons {
		promauto.With(reg).NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vantage_exporter_degraded",
			Help:        "Whether the exporter judges itself unfit to vouch for its results, by reason (scheduler_lag, missed_checks, stale_results); its failures are then reported unknown with that reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 {
			for _, r := range degraded(time.Now()) {
				if r == reason {
					return 1
				}
			}
			return 0
		})
	}
}

// degraded is the first reason the exporter cannot vouch for its results
// now, "" while it can: what an unknown report names.
func (e *Exporter) degraded() string {
	if reasons := e.sched.Degraded(time.Now()); len(reasons) > 0 {
		return reasons[0]
	}
	return ""
}

// degradedReasons are all of them, for batches and the status.
func (e *Exporter) degradedReasons() []string { return e.sched.Degraded(time.Now()) }
