package exporter

import (
	"sync"
	"time"

	"github.com/vantageprobe/vantage/exporter/report"
	"github.com/vantageprobe/vantage/exporter/scheduler"
)

// transitions turns scheduled outcomes into state-change reports: a target
// whose check failed (after its local retries) starts failing; a failing
// target whose check succeeds has recovered. Only changes are reported.
type transitions struct {
	mu      sync.Mutex
	failing map[string]time.Time // key → planned time of the streak's first failed check
	send    func(report.Report)
}

func newTransitions(send func(report.Report)) *transitions {
	return &transitions{failing: map[string]time.Time{}, send: send}
}

func (tr *transitions) record(o scheduler.Outcome) {
	key := o.Target.Key()
	tr.mu.Lock()
	first, wasFailing := tr.failing[key]
	switch {
	case !o.Result.Success && !wasFailing:
		first = o.Planned
		tr.failing[key] = first
	case o.Result.Success && wasFailing:
		delete(tr.failing, key)
	default:
		tr.mu.Unlock()
		return
	}
	tr.mu.Unlock()
	state := report.StateFailing
	if o.Result.Success {
		state = report.StateRecovered
	}
	tr.send(report.Report{
		Target: o.Target.Target, Module: o.Target.Module, State: state,
		Time: o.Planned, FirstFailure: first, Attempts: o.Attempts, Result: o.Result,
	})
}

// retain forgets targets no longer scheduled.
func (tr *transitions) retain(targets []scheduler.Target) {
	keep := make(map[string]bool, len(targets))
	for i := range targets {
		keep[targets[i].Key()] = true
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for key := range tr.failing {
		if !keep[key] {
			delete(tr.failing, key)
		}
	}
}
