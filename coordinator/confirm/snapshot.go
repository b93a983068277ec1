package confirm

import (
	"time"

	"github.com/vantageprobe/vantage/api"
)

// applySnapshot brings a location's view of every target in line with its
// snapshot: a target not up there fails since its streak's start (or
// cannot be told); one the coordinator thought failing there and that is
// not listed succeeded by the snapshot's time. It returns the targets
// whose intervals changed, and whether the coordinator's list of the
// location's up targets differs from the snapshot's digest.
func (m *Machine) applySnapshot(location string, snap *api.Snapshot, received, now time.Time, late bool) (changed []*target, wantTargets bool) {
	notUp := make(map[Key]bool, len(snap.NotUp))
	for i := range snap.NotUp {
		r := &snap.NotUp[i]
		k := Key{Target: r.Target, Module: r.Module}
		notUp[k] = true
		t := m.target(k, now)
		ls := t.loc(location)
		ls.scheduled = true
		stale := late || received.Sub(r.Time) > m.conf.ReportFreshness
		switch {
		case r.State == api.StateFailing && stale:
			// History: the streak ends just after the check it tells.
			start := streakStart(r)
			ls.history().failStale(start, r.Time)
			ls.hist.close(r.Time, false)
		case r.State == api.StateFailing:
			start := streakStart(r)
			ls.history().fail(start, r.Time)
			ls.seeOutcome(OutcomeFailure, r.Time)
		default:
			if ls.hist != nil {
				ls.hist.close(r.Time, false)
			}
			ls.seeOutcome(OutcomeUnknown, r.Time)
		}
		changed = append(changed, t)
	}
	// The list of up targets, when sent, replaces the known one.
	var up map[Key]bool
	if snap.UpTargets != nil || snap.Up == 0 {
		up = make(map[Key]bool, len(snap.UpTargets))
		for _, k := range snap.UpTargets {
			key := Key{Target: k.Target, Module: k.Module}
			up[key] = true
			m.target(key, now).loc(location)
		}
	}
	var digest api.Digest
	for k, t := range m.targets {
		if notUp[k] {
			continue
		}
		ls := t.find(location)
		if ls == nil {
			continue
		}
		if up != nil {
			ls.scheduled = up[k]
		}
		if ls.hist.open() || ls.hist.unresolved() {
			// Up there now: that ends its failure, also one that ended
			// only because the location could no longer tell.
			ls.hist.close(snap.Time, true)
			ls.seeOutcome(OutcomeSuccess, snap.Time)
			changed = append(changed, t)
		}
		if ls.scheduled {
			ls.seeOutcome(OutcomeSuccess, snap.Time)
			digest.Add(api.TargetKey{Target: k.Target, Module: k.Module})
		}
	}
	return changed, snap.UpDigest != "" && digest.String() != snap.UpDigest
}
