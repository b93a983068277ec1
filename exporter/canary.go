package exporter

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// canaryState is the latest result of the location's connectivity canary.
type canaryState struct {
	// state: one of the canary* constants.
	state atomic.Int32
	desc  *prometheus.Desc
}

const (
	canaryNone    = iota // no canary configured
	canaryOK             // the latest check succeeded
	canaryFailing        // the latest check failed
	canaryPending        // configured, not checked yet
)

func newCanaryState() *canaryState {
	return &canaryState{desc: prometheus.NewDesc("vantage_exporter_canary_success",
		"Whether the latest check of the connectivity canary succeeded; while it fails, failures of this location are reported as unknown. Absent without a canary or before its first check.", nil, nil)}
}

func (c *canaryState) set(success bool) {
	if success {
		c.state.Store(canaryOK)
	} else {
		c.state.Store(canaryFailing)
	}
}

// ok reports whether this location can vouch for its own failures: it has
// no canary, or the canary's latest check succeeded. A canary not checked
// yet leaves the location's health unknown.
func (c *canaryState) ok() bool {
	st := c.state.Load()
	return st == canaryNone || st == canaryOK
}

// known returns the canary's verdict for API answers: nil without one or
// before its first check.
func (c *canaryState) known() *bool {
	switch c.state.Load() {
	case canaryOK:
		return new(true)
	case canaryFailing:
		return new(false)
	}
	return nil
}

// configure follows the configuration: a newly configured canary is
// pending until its first check; without one, the state is forgotten.
func (c *canaryState) configure(present bool) {
	if !present {
		c.state.Store(canaryNone)
		return
	}
	c.state.CompareAndSwap(canaryNone, canaryPending)
}

func (c *canaryState) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *canaryState) Collect(ch chan<- prometheus.Metric) {
	switch c.state.Load() {
	case canaryOK:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	case canaryFailing:
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 0)
	}
}
