package exporter

import (
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober/result"
)

// transitions turns scheduled outcomes into state-change reports: a target
// whose check failed (after its local retries) starts failing, or is
// unknown while the location's canary fails; an unknown target still
// failing once the canary is back is failing; a failing or unknown target
// whose check succeeds has recovered. Only changes are reported.
type transitions struct {
	mu      sync.Mutex
	failing map[string]streak // targets whose checks fail
	send    func(api.Report)
}

// streak is a run of failed checks of one target.
type streak struct {
	first time.Time // planned time of the first failed check
	state string    // the state last reported: failing or unknown
}

func newTransitions(send func(api.Report)) *transitions {
	return &transitions{failing: map[string]streak{}, send: send}
}

func (tr *transitions) record(o scheduler.Outcome, canaryOK bool) {
	key := o.Target.Key()
	tr.mu.Lock()
	s, wasFailing := tr.failing[key]
	var state string
	switch {
	case o.Result.Success && wasFailing:
		delete(tr.failing, key)
		state = api.StateRecovered
	case o.Result.Success:
	case !wasFailing:
		s = streak{first: o.Planned, state: api.StateFailing}
		if !canaryOK {
			s.state = api.StateUnknown
		}
		tr.failing[key] = s
		state = s.state
	case s.state == api.StateUnknown && canaryOK:
		s.state = api.StateFailing
		tr.failing[key] = s
		state = s.state
	}
	tr.mu.Unlock()
	if state == "" {
		return
	}
	first := s.first
	tr.send(api.Report{
		Target: o.Target.Target, Module: o.Target.Module, State: state,
		Time: o.Planned, FirstFailure: first, Attempts: o.Attempts, Result: o.Result,
	})
}

// checked applies a check the coordinator asked for (POST /api/v1/check):
// a success ends the target's failing streak, as a scheduled success
// would. Otherwise a target that was up only between two scheduled
// checks, long enough for the coordinator to resolve its outage, would
// never be reported failing again. A failed check changes nothing:
// scheduled checks start streaks.
func (tr *transitions) checked(module, target string, r *result.Result) {
	if !r.Success {
		return
	}
	key := scheduler.Key(module, target)
	tr.mu.Lock()
	_, wasFailing := tr.failing[key]
	delete(tr.failing, key)
	tr.mu.Unlock()
	if wasFailing {
		tr.send(api.Report{Target: target, Module: module, State: api.StateRecovered, Time: r.Start, Attempts: 1, Result: r})
	}
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
