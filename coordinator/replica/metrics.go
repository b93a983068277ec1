package replica

import "github.com/prometheus/client_golang/prometheus"

var entriesDesc = prometheus.NewDesc("vantage_coordinator_replicated_entries",
	"Entries of the state replicated between coordinator peers, by kind (event, maintenance, monitor, …) and state (live, or tombstone: a deletion kept so that a peer that missed it does not bring the entry back).",
	[]string{"kind", "state"}, nil)

// Collector renders the number of entries by kind and state.
func (s *State) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *State }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- entriesDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.RLock()
	defer c.s.mu.RUnlock()
	for kind, byKey := range c.s.entries {
		live, dead := 0, 0
		for _, e := range byKey {
			if e.Deleted {
				dead++
			} else {
				live++
			}
		}
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(live), kind, "live")
		ch <- prometheus.MustNewConstMetric(entriesDesc, prometheus.GaugeValue, float64(dead), kind, "tombstone")
	}
}
