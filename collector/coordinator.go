package collector

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TargetState is the coordinator's view of one (target, module) at a
// scrape.
type TargetState struct {
	Target, Module string
	// Labels are the target's configured labels (team, …), sorted by
	// name; every series of the target carries them.
	Labels []Label
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
// location health. A target's series carry its configured labels, so
// alerts on them route by those labels (team, …) as the exporters' do.
//
// Targets differ in their label names, so the collector is unchecked (it
// describes no series) and builds one descriptor per set of label names
// at each scrape.
type Coordinator struct {
	states    []string
	targets   func() []TargetState
	locations func() []LocationHealth

	healthy *prometheus.Desc
}

// Target series: name, help, and the labels after target and module
// (before the configured ones).
var (
	stateFamily = targetFamily{"vantage_target_state",
		"State of each target at the coordinator, one-hot: up, seems_down (a location reported a failure; the others are being asked), down (confirmed by enough locations), unknown (too few locations could tell).",
		[]string{"state"}}
	confirmedDownFamily = targetFamily{"vantage_target_confirmed_down",
		"1 while enough locations agree the target is down.", nil}
	locationSuccessFamily = targetFamily{"vantage_target_location_success",
		"Latest verdict of each location about the target: 1 success, 0 failure; absent while the location cannot tell.",
		[]string{"location"}}
	downSinceFamily = targetFamily{"vantage_target_down_since_timestamp_seconds",
		"Start of the target's confirmed outage (its first failed check), while it lasts.", nil}
	flappingFamily = targetFamily{"vantage_target_flapping",
		"1 while the target fails and succeeds in turn (its incident is held open until it is stable); absent otherwise.", nil}
)

type targetFamily struct {
	name, help string
	own        []string
}

// NewCoordinator builds the collector. states lists every state, so each
// target renders one series per state; targets and locations are called
// once per scrape.
func NewCoordinator(states []string, targets func() []TargetState, locations func() []LocationHealth) *Coordinator {
	return &Coordinator{
		states: states, targets: targets, locations: locations,
		healthy: prometheus.NewDesc("vantage_location_healthy",
			"Whether the location's exporter answers and its connectivity canary passes; while 0 its verdicts count as unknown.",
			[]string{"location"}, nil),
	}
}

// Describe implements prometheus.Collector. It describes nothing: the
// collector is unchecked, since targets differ in their label names.
func (c *Coordinator) Describe(chan<- *prometheus.Desc) {}

// descs caches one scrape's descriptors by family and label names.
type descs map[string]*prometheus.Desc

func (d descs) get(f targetFamily, labels []Label) *prometheus.Desc {
	names := make([]string, 0, 2+len(f.own)+len(labels))
	names = append(append(names, "target", "module"), f.own...)
	for _, l := range labels {
		names = append(names, l.Name)
	}
	key := f.name + "\xff" + strings.Join(names, "\xff")
	desc, ok := d[key]
	if !ok {
		desc = prometheus.NewDesc(f.name, f.help, names, nil)
		d[key] = desc
	}
	return desc
}

// Collect implements prometheus.Collector.
func (c *Coordinator) Collect(ch chan<- prometheus.Metric) {
	d := descs{}
	for _, t := range c.targets() {
		values := func(own ...string) []string {
			v := make([]string, 0, 2+len(own)+len(t.Labels))
			v = append(append(v, t.Target, t.Module), own...)
			for _, l := range t.Labels {
				v = append(v, l.Value)
			}
			return v
		}
		emit := func(f targetFamily, value float64, own ...string) {
			ch <- prometheus.MustNewConstMetric(d.get(f, t.Labels), prometheus.GaugeValue, value, values(own...)...)
		}
		for _, s := range c.states {
			emit(stateFamily, boolValue(s == t.State), s)
		}
		emit(confirmedDownFamily, boolValue(!t.DownSince.IsZero()))
		if !t.DownSince.IsZero() {
			emit(downSinceFamily, float64(t.DownSince.UnixNano())/1e9)
		}
		if t.Flapping {
			emit(flappingFamily, 1)
		}
		for _, l := range t.Locations {
			emit(locationSuccessFamily, boolValue(l.Success), l.Location)
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
