package exporter

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober/result"
)

// transitions turns scheduled outcomes into state-change reports: a target
// whose check failed (after its local retries) starts failing, or is
// unknown when the location's canary fails or the exporter is degraded
// (its scheduler lags, misses checks or holds stale results), with that
// reason; an unknown target still failing once the location can tell
// again is failing; a failing or unknown target whose check succeeds has
// recovered. Only changes (of state, or of an unknown's reason) are
// reported.
//
// Canary before blame: a failure that would be reported failing (a new
// streak, or one reported unknown so far) is held as pending until a
// canary check that began after it has a verdict (record returns the
// wait, resolve applies the verdict). A later outcome of the target
// supersedes the pending one; a success ends it, unreported if nothing
// of the streak was.
//
// It also holds what a snapshot tells: every failing streak.
type transitions struct {
	mu      sync.Mutex
	failing map[string]*streak // targets whose checks fail
	// remote holds the failing streaks of targets other members of the
	// location's cluster check (see handover.go); announce, when set,
	// gossips a change of one of this member's streaks to them.
	remote   map[string]remoteStreak
	announce func(s *streak, ended bool)
	// send queues a report; it is called with mu held, so a snapshot
	// (taken with mu held) includes every report numbered up to its Seq.
	send func(api.Report)
	// degraded, when set, returns why the exporter cannot vouch for its
	// results now (an api.Reason*), "" while it can.
	degraded func() string
}

// streak is a run of failed checks of one target.
type streak struct {
	target, module string
	labels         map[string]string // the target's configured labels, for its reports
	first          time.Time         // planned time of the first failed check
	last           time.Time         // planned time of the latest failed check
	state          string            // the state last reported: failing, unknown, or "" before the first report
	reason         string            // why the state last reported is unknown
	// pending is the latest failed outcome waiting for the canary's
	// verdict; waiting says a verdict is being awaited for it.
	pending      *scheduler.Outcome
	pendingSince time.Time // when pending was taken
	waiting      bool
}

// failingSince is the FirstFailure of the recovery that ends s: the
// streak's start once it was reported failing; zero when it was only ever
// unknown, which says nothing about the target and must not read as a
// failure interval.
func (s *streak) failingSince() time.Time {
	if s.state != api.StateFailing {
		return time.Time{}
	}
	return s.first
}

// blame is a failure waiting for the canary's verdict: a canary check
// that began at or after since decides it.
type blame struct {
	key   string
	s     *streak
	since time.Time
}

func newTransitions(send func(api.Report)) *transitions {
	return &transitions{failing: map[string]*streak{}, remote: map[string]remoteStreak{}, send: send}
}

// record applies a scheduled outcome. It returns a blame to resolve with
// the verdict of a canary check that began at or after since, when the
// failure would make the target failing and no verdict is awaited yet;
// since is when the outcome was taken.
func (tr *transitions) record(o scheduler.Outcome, since time.Time) *blame {
	key := o.Target.Key()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := tr.failing[key]
	if s == nil {
		s = tr.adopt(key) // the streak of another member, continued
	}
	switch {
	case o.Result.Success && s != nil:
		delete(tr.failing, key)
		if s.state != "" {
			tr.ended(s)
			tr.send(api.Report{
				Target: o.Target.Target, Module: o.Target.Module, State: api.StateRecovered,
				Time: o.Planned, FirstFailure: s.failingSince(), Attempts: o.Attempts, Result: o.Result,
				Labels: s.labels,
			})
		}
		return nil
	case o.Result.Success:
		return nil
	case s == nil:
		s = &streak{target: o.Target.Target, module: o.Target.Module, labels: reportLabels(o.Target.Labels), first: o.Planned}
		tr.failing[key] = s
	}
	s.last = o.Planned
	if s.state == api.StateFailing {
		return nil // failing stays failing
	}
	s.pending, s.pendingSince = &o, since
	if s.waiting {
		return nil // the verdict awaited takes the newer outcome
	}
	s.waiting = true
	return &blame{key: key, s: s, since: since}
}

// resolve applies the canary's verdict to b's streak, with its latest
// pending outcome: failing when the canary passed (a canary check that
// began after a failure of the streak passed), unknown when it failed. It
// returns the next blame when that outcome was taken after the failed
// canary check began, so the verdict does not tell about it; nil
// otherwise.
func (tr *transitions) resolve(b *blame, v canaryVerdict) *blame {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := b.s
	if tr.failing[b.key] != s || s.pending == nil {
		// A success ended the streak, or the target was removed.
		s.waiting = false
		return nil
	}
	o := s.pending
	state, reason := api.StateFailing, ""
	switch {
	case !v.ok:
		state, reason = api.StateUnknown, api.ReasonCanaryFailing
	case tr.degraded != nil:
		if why := tr.degraded(); why != "" {
			state, reason = api.StateUnknown, why
		}
	}
	if s.state != state || s.reason != reason {
		s.state, s.reason = state, reason
		tr.changed(s)
		tr.send(api.Report{
			Target: o.Target.Target, Module: o.Target.Module, State: state,
			Time: o.Planned, FirstFailure: s.first, Attempts: o.Attempts, Result: o.Result, Reason: reason,
			Labels: s.labels,
		})
	}
	if !v.ok && s.pendingSince.After(v.began) {
		return &blame{key: b.key, s: s, since: s.pendingSince}
	}
	s.pending, s.waiting = nil, false
	return nil
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
	defer tr.mu.Unlock()
	s, wasFailing := tr.failing[key]
	delete(tr.failing, key)
	if wasFailing && s.state != "" {
		tr.ended(s)
		tr.send(api.Report{Target: target, Module: module, State: api.StateRecovered, Time: r.Start, FirstFailure: s.failingSince(), Attempts: 1, Result: r, Labels: s.labels})
	}
}

// retain forgets targets no longer scheduled.
func (tr *transitions) retain(targets []scheduler.Target) {
	tr.mu.Lock()
	held := slices.AppendSeq(slices.Collect(maps.Keys(tr.failing)), maps.Keys(tr.remote))
	tr.mu.Unlock()
	keep := keysAmong(targets, held)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, key := range held {
		if !keep[key] {
			delete(tr.failing, key)
			delete(tr.remote, key)
		}
	}
}

// keysAmong returns which of the held keys are keys of targets. It builds
// the key only of a target whose name ends as a held key does, so a reload
// of a million targets with a few of them failing does not build a million
// keys.
func keysAmong(targets []scheduler.Target, held []string) map[string]bool {
	keep := make(map[string]bool, len(held))
	if len(held) == 0 {
		return keep
	}
	want := make(map[string]bool, len(held))
	tails := make(map[string]bool, len(held))
	for _, key := range held {
		want[key] = true
		tails[keyTail(key)] = true
	}
	for i := range targets {
		t := &targets[i]
		if !tails[keyTail(t.Target)] {
			continue
		}
		if key := t.Key(); want[key] {
			keep[key] = true
		}
	}
	return keep
}

// keyTail is what follows the last NUL byte of s: the same for a target
// and for its key, which ends with the target.
func keyTail(s string) string { return s[strings.LastIndexByte(s, 0)+1:] }

// snapshot is the state of the scheduled targets (the canary left out):
// each target in a failing streak with its state (unknown while its
// first verdict is awaited, with reason verdict_pending), the others counted as up. seq returns the
// number of the latest report sent; it is read with the lock held, so
// the state includes every report up to it.
func (tr *transitions) snapshot(targets []scheduler.Target, withTargets bool, seq func() uint64, now time.Time) *api.Snapshot {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	snap := &api.Snapshot{Seq: seq(), Time: now, NotUp: []api.Report{}}
	var up api.Digest
	for i := range targets {
		t := &targets[i]
		if t.Canary {
			continue
		}
		s, ok := tr.failing[t.Key()]
		if !ok {
			// A streak another member of the cluster reported.
			s, ok = tr.remoteStreak(t.Key())
		}
		if ok {
			state, reason := s.state, s.reason
			if state == "" {
				state, reason = api.StateUnknown, api.ReasonVerdictPending
			}
			snap.NotUp = append(snap.NotUp, api.Report{Target: s.target, Module: s.module, State: state, Time: s.last, FirstFailure: s.first, Reason: reason, Labels: s.labels})
			continue
		}
		k := api.TargetKey{Target: t.Target, Module: t.Module}
		up.Add(k)
		snap.Up++
		if withTargets {
			snap.UpTargets = append(snap.UpTargets, k)
		}
	}
	slices.SortFunc(snap.NotUp, func(a, b api.Report) int {
		return cmp.Or(cmp.Compare(a.Module, b.Module), cmp.Compare(a.Target, b.Target))
	})
	snap.UpDigest = up.String()
	return snap
}

// reportLabels are a target's configured labels as reports carry them;
// nil for none.
func reportLabels(labels []scheduler.Label) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		m[l.Name] = l.Value
	}
	return m
}
