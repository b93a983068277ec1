package collector

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetState is the coordinator's view of one (target, module) at a
// scrape.
type TargetState struct {
	Target, Module string
	// State is one of States.
	State string
	// DownSince is the start of a confirmed outage still open; zero
	// otherwise.
	DownSince time.Time
	// Locations holds each location's latest verdict; a location whose
	// latest outcome is unknown is left out.
	Locations []LocationVerdict
	// Flapping: the target fails and succeeds in turn.
	Flapping bool
}

// LocationVerdict is what one location last saw of a target.
type LocationVerdict struct {
	Location string
	Success  bool
}

// LocationHealth is whether a location can be relied on.
type LocationHealth struct {
	Location string
	Healthy  bool
}

// Coordinator renders the coordinator's state as series at scrape time:
// one-hot target states, confirmed-down flags, per-location verdicts and
// location health.
type Coordinator struct {
	states    []string
	targets   func() []TargetState
	locations func() []LocationHealth

	state, confirmedDown, locationSuccess, downSince, flapping, healthy *prometheus.Desc
}

// NewCoordinator builds the collector. states lists every state, so each
// target renders one series per state; targets and locations are called
// once per scrape.
func NewCoordinator(states []string, targets func() []TargetState, locations func() []LocationHealth) *Coordinator {
	tm := []string{"target", "module"}
	return &Coordinator{
		states: states, targets: targets, locations: locations,
		state: prometheus.NewDesc("vantage_target_state",
			"State of each target at the coordinator, one-hot: up, seems_down (a location reported a failure; the others are being asked), down (confirmed by enough locations), unknown (too few locations could tell).",
			[]string{"target", "module", "state"}, nil),
		confirmedDown: prometheus.NewDesc("vantage_target_confirmed_down",
			"1 while enough locations agree the target is down.", tm, nil),
		locationSuccess: prometheus.NewDesc("vantage_target_location_success",
			"Latest verdict of each location about the target: 1 success, 0 failure; absent while the location cannot tell.",
			[]string{"target", "module", "location"}, nil),
		downSince: prometheus.NewDesc("vantage_target_down_since_timestamp_seconds",
			"Start of the target's confirmed outage (its first failed check), while it lasts.", tm, nil),
		flapping: prometheus.NewDesc("vantage_target_flapping",
			"1 while the target fails and succeeds in turn (its incident is held open until it is stable); absent otherwise.", tm, nil),
		healthy: prometheus.NewDesc("vantage_location_healthy",
			"Whether the location's exporter answers and its connectivity canary passes; while 0 its verdicts count as unknown.",
			[]string{"location"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Coordinator) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.confirmedDown, c.locationSuccess, c.downSince, c.flapping, c.healthy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Coordinator) Collect(ch chan<- prometheus.Metric) {
	for _, t := range c.targets() {
		for _, s := range c.states {
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, boolValue(s == t.State), t.Target, t.Module, s)
		}
		ch <- prometheus.MustNewConstMetric(c.confirmedDown, prometheus.GaugeValue, boolValue(!t.DownSince.IsZero()), t.Target, t.Module)
		if !t.DownSince.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.downSince, prometheus.GaugeValue, float64(t.DownSince.UnixNano())/1e9, t.Target, t.Module)
		}
		if t.Flapping {
			ch <- prometheus.MustNewConstMetric(c.flapping, prometheus.GaugeValue, 1, t.Target, t.Module)
		}
		for _, l := range t.Locations {
			ch <- prometheus.MustNewConstMetric(c.locationSuccess, prometheus.GaugeValue, boolValue(l.Success), t.Target, t.Module, l.Location)
		}
	}
	for _, l := range c.locations() {
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, boolValue(l.Healthy), l.Location)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
