package exporter

import (
	"github.com/vantageprobe/vantage/exporter/cluster"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"maps"
	"slices"
)

// In a cluster, a target's failing streak moves with its ownership: the
// owner gossips each reported streak (and its end) to the other members,
// which keep it as remote. The member that takes the target over adopts
// the streak with its first check: a success reports the recovery of the
// streak the coordinators know, a failure continues it without a second
// failing report. A member's snapshot includes the remote streaks, so
// every member tells the coordinators the same state of the location.

// remoteStreak is a streak another member reported.
type remoteStreak struct {
	owner  string
	streak cluster.Streak
}

// adopt turns the remote streak of key, if any, into this member's;
// called with mu held, before the first outcome of a target taken over.
func (tr *transitions) adopt(key string) *streak {
	r, ok := tr.remote[key]
	if !ok {
		return nil
	}
	delete(tr.remote, key)
	s := &streak{target: r.streak.Target, module: r.streak.Module, first: r.streak.First, last: r.streak.Last, state: r.streak.State}
	tr.failing[key] = s
	tr.changed(s) // the others learn the new owner
	return s
}

// remoteStreak returns the remote streak of key as a streak; mu held.
func (tr *transitions) remoteStreak(key string) (*streak, bool) {
	r, ok := tr.remote[key]
	if !ok {
		return nil, false
	}
	return &streak{target: r.streak.Target, module: r.streak.Module, first: r.streak.First, last: r.streak.Last, state: r.streak.State}, true
}

// changed gossips a reported streak; ended its end. mu held.
func (tr *transitions) changed(s *streak) {
	if tr.announce != nil {
		tr.announce(s, false)
	}
}

func (tr *transitions) ended(s *streak) {
	if tr.announce != nil {
		tr.announce(s, true)
	}
}

func (s *streak) gossiped(ended bool) cluster.Streak {
	return cluster.Streak{Module: s.module, Target: s.target, First: s.first, Last: s.last, State: s.state, Ended: ended}
}

// release hands over the streaks of the targets this member no longer
// checks: they become remote until their new owner adopts them (or
// gossips their end).
func (tr *transitions) release(owned []scheduler.Target) {
	tr.mu.Lock()
	held := slices.Collect(maps.Keys(tr.failing))
	tr.mu.Unlock()
	keep := keysAmong(owned, held)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, key := range held {
		s, ok := tr.failing[key]
		if !ok || keep[key] {
			continue
		}
		delete(tr.failing, key)
		if s.state != "" {
			tr.remote[key] = remoteStreak{streak: s.gossiped(false)}
		}
	}
}

// Local implements cluster.StreakStore: this member's reported streaks.
func (tr *transitions) Local() []cluster.Streak {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]cluster.Streak, 0, len(tr.failing))
	for _, s := range tr.failing {
		if s.state != "" {
			out = append(out, s.gossiped(false))
		}
	}
	return out
}

// Remote implements cluster.StreakStore. A streak of a target this
// member checks itself (both sides of a partition check it) stays its own.
func (tr *transitions) Remote(owner string, s cluster.Streak) {
	key := scheduler.Key(s.Module, s.Target)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch {
	case s.Ended:
		delete(tr.remote, key)
	case tr.failing[key] == nil:
		tr.remote[key] = remoteStreak{owner: owner, streak: s}
	}
}

// RemoteAll implements cluster.StreakStore: owner's streaks missing from
// ss have ended.
func (tr *transitions) RemoteAll(owner string, ss []cluster.Streak) {
	tr.mu.Lock()
	for key, r := range tr.remote {
		if r.owner == owner {
			delete(tr.remote, key)
		}
	}
	tr.mu.Unlock()
	for _, s := range ss {
		tr.Remote(owner, s)
	}
}
