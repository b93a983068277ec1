package exporter

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// canaryState is the latest result of the location's connectivity canary.
type canaryState struct {
	// state: 0 no result (or no canary), 1 succeeding, 2 failing.
	state atomic.Int32
	desc  *prometheus.Desc
}

func newCanaryState() *canaryState {
	return &canaryState{desc: prometheus.NewDesc("vantage_exporter_canary_success",
		"Whether the latest check of the connectivity canary succeeded; while it fails, failures of this location are reported as unknown. Absent without a canary or before its first check.", nil, nil)}
}

func (c *canaryState) set(success bool) {
	if success {
		c.state.Store(1)
	} else {
		c.state.Store(2)
	}
}

// ok reports whether the location looks healthy: no canary, no result yet,
// or a succeeding canary.
func (c *canaryState) ok() bool { return c.state.Load() != 2 }

// known returns the canary's verdict for API answers: nil without one.
func (c *canaryState) known() *bool {
	switch c.state.Load() {
	case 1:
		return new(true)
	case 2:
		return new(false)
	}
	return nil
}

// reset forgets the canary's result, when the configuration no longer has one.
func (c *canaryState) reset() { c.state.Store(0) }

func (c *canaryState) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *canaryState) Collect(ch chan<- prometheus.Metric) {
	switch c.state.Load() {
	case 1:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	case 2:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0)
	}
}
