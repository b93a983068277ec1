package exporter

import (
	"time"

	"github.com/vantageprobe/vantage/exporter/cluster"
	"github.com/vantageprobe/vantage/exporter/scheduler"
)

// clusterLeaveGrace bounds the announcement that this member leaves.
const clusterLeaveGrace = 5 * time.Second

// startCluster makes the exporter a member of its location's cluster,
// when --cluster.listen-address is set.
func (e *Exporter) startCluster() error {
	if e.opts.Cluster.ListenAddress == "" {
		return nil
	}
	co := e.opts.Cluster
	co.Location, co.Registerer, co.Logger = e.opts.Location, e.reg, e.logger.With("component", "cluster")
	if e.trans != nil {
		co.Streaks = e.trans
	}
	st := e.config.get()
	hashes, set := targetSet(st.targets)
	c, err := cluster.New(co, set, st.config.Cluster.Replicas)
	if err != nil {
		return err
	}
	c.SetTargets(set, st.config.Cluster.Replicas, st.config.Cluster.ExpectedMembers)
	e.cluster = c
	e.clusterSet = &clusterSet{st: st, hashes: hashes, set: set}
	if e.trans != nil {
		e.trans.announce = func(s *streak, ended bool) { c.Announce(s.gossiped(ended)) }
	}
	return nil
}

// clusterSet is the target set gossiped for a loaded state.
type clusterSet struct {
	st     *state
	hashes []uint64 // per target of st, the canary's unused
	set    *cluster.Set
}

// targetSet hashes the scheduled targets (the canary left out: every
// member checks its own).
func targetSet(targets []scheduler.Target) ([]uint64, *cluster.Set) {
	hashes := make([]uint64, len(targets))
	keys := make([]uint64, 0, len(targets))
	for i := range targets {
		if targets[i].Canary {
			continue
		}
		hashes[i] = cluster.KeyHash(targets[i].Key())
		keys = append(keys, hashes[i])
	}
	return hashes, cluster.NewSet(keys)
}

// ownedTargets returns the targets of st this member checks: all of them
// without a cluster; in one, those it owns, and the canary.
func (e *Exporter) ownedTargets(st *state) []scheduler.Target {
	if e.cluster == nil {
		return st.targets
	}
	if e.clusterSet.st != st {
		hashes, set := targetSet(st.targets)
		e.clusterSet = &clusterSet{st: st, hashes: hashes, set: set}
		e.cluster.SetTargets(set, st.config.Cluster.Replicas, st.config.Cluster.ExpectedMembers)
	}
	owns := e.cluster.Owns(e.clusterSet.hashes)
	out := make([]scheduler.Target, 0, len(st.targets)/max(len(e.cluster.Members()), 1)+1)
	for i := range st.targets {
		if st.targets[i].Canary || owns[i] {
			out = append(out, st.targets[i])
		}
	}
	return out
}

// clusterChanged receives when ownership must be computed again; nil
// (never) without a cluster.
func (e *Exporter) clusterChanged() <-chan struct{} {
	if e.cluster == nil {
		return nil
	}
	return e.cluster.Changed()
}

// clusterMembers returns the live members' names; nil without a cluster.
func (e *Exporter) clusterMembers() (self string, members []string) {
	if e.cluster == nil {
		return "", nil
	}
	return e.cluster.Name(), e.cluster.Members()
}
