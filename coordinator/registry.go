package coordinator

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/prober/endpoint"
)

// monitorKind is the replicated state's kind of the registry's monitors,
// keyed by id.
const monitorKind = "monitor"

// Labels the http_sd document gives every monitor besides its own.
const (
	// MonitorIDLabel carries the monitor's id.
	MonitorIDLabel = "monitor_id"
	// FailureThresholdLabel carries the monitor's failure_threshold: the
	// exporters expose it as vantage_probe_failure_threshold, which the
	// mixin's TargetFailureRatioHigh reads.
	FailureThresholdLabel = "failure_threshold"
)

// MonitorSpec is what a client registers: the body of POST and PUT
// /api/v1/monitors.
type MonitorSpec struct {
	Target string `json:"target"`
	Module string `json:"module"`
	// Interval between checks; 0: registry.default_interval.
	Interval model.Duration `json:"interval,omitempty"`
	// Labels label the target's series.
	Labels map[string]string `json:"labels,omitempty"`
	// FailureThreshold, when set, is how many failed checks in the
	// failure alert's window the monitor tolerates.
	FailureThreshold *uint64 `json:"failure_threshold,omitempty"`
	// Locations check the monitor; empty: every location with its module.
	Locations []string `json:"locations,omitempty"`
	// Owner confines the monitor to the tokens of that owner. A token with
	// an owner always creates its own; others may name one.
	Owner string `json:"owner,omitempty"`
}

// Monitor is a registered target.
type Monitor struct {
	ID string `json:"id"`
	MonitorSpec
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Key is the target and module the exporters check the monitor as.
func (m *Monitor) Key() api.TargetKey { return api.TargetKey{Target: m.Target, Module: m.Module} }

// fieldError is an invalid field of a monitor.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }

func invalid(field, format string, args ...any) error {
	return &fieldError{field: field, err: fmt.Errorf(format, args...)}
}

// check validates the spec against the configuration and fills in the
// default interval: the module is a registry module every location of the
// monitor has, the target parses for its prober, the interval is at
// least 1s and the module's timeout, label names are valid.
func (s *MonitorSpec) check(conf *config.CoordinatorConfig) error {
	if s.Module == "" {
		return invalid("module", "module must be set (known: %s)", strings.Join(conf.Registry.ModuleNames(), ", "))
	}
	mod, ok := conf.Registry.Modules[s.Module]
	if !ok {
		return invalid("module", "unknown module %q (known: %s)", s.Module, strings.Join(conf.Registry.ModuleNames(), ", "))
	}
	if err := endpoint.Check(mod.Prober, s.Target); err != nil {
		return &fieldError{field: "target", err: fmt.Errorf("module %q (prober %s): %w", s.Module, mod.Prober, err)}
	}
	if err := s.checkLocations(conf); err != nil {
		return err
	}
	if s.Interval == 0 {
		s.Interval = model.Duration(conf.Registry.DefaultInterval)
	}
	switch iv := time.Duration(s.Interval); {
	case iv < time.Second:
		return invalid("interval", "interval must be at least 1s, got %s", s.Interval)
	case mod.Timeout > 0 && iv < mod.Timeout:
		return invalid("interval", "interval %s is shorter than module %q's timeout %s", s.Interval, s.Module, mod.Timeout)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Labels)) {
		if name == MonitorIDLabel || name == FailureThresholdLabel {
			return invalid("labels", "label name %q is set by the registry (use the failure_threshold field)", name)
		}
		if err := api.CheckLabelName(name); err != nil {
			return &fieldError{field: "labels", err: err}
		}
	}
	if s.Owner != "" && !config.EventNameRE.MatchString(s.Owner) {
		return invalid("owner", "invalid owner %q: %s", s.Owner, config.NameRule)
	}
	return nil
}

func (s *MonitorSpec) checkLocations(conf *config.CoordinatorConfig) error {
	if len(s.Locations) == 0 {
		for _, l := range conf.Locations {
			if conf.HasModule(l.Name, s.Module) {
				return nil
			}
		}
		return invalid("module", "no location has module %q", s.Module)
	}
	names := make([]string, len(conf.Locations))
	for i, l := range conf.Locations {
		names[i] = l.Name
	}
	for i, l := range s.Locations {
		switch {
		case !slices.Contains(names, l):
			return invalid("locations", "unknown location %q (known: %s)", l, strings.Join(names, ", "))
		case slices.Contains(s.Locations[:i], l):
			return invalid("locations", "location %q is listed twice", l)
		case !conf.HasModule(l, s.Module):
			return invalid("locations", "location %q does not have module %q", l, s.Module)
		}
	}
	return nil
}

// checkedAt reports whether the location checks the monitor: it is one of
// its locations (all when none are listed) and has its module.
func (m *Monitor) checkedAt(conf *config.CoordinatorConfig, location string) bool {
	return (len(m.Locations) == 0 || slices.Contains(m.Locations, location)) && conf.HasModule(location, m.Module)
}

// visibleTo reports whether the caller may see and change the monitor: a
// caller without an owner sees every monitor.
func (m *Monitor) visibleTo(who caller) bool { return who.owner == "" || m.Owner == who.owner }

// Errors of registry writes.
var (
	errMonitorNotFound = errors.New("no such monitor")
	errMonitorExists   = errors.New("a monitor of this target and module exists")
	errTooManyMonitors = errors.New("too many monitors")
)

// registry is the monitors, kept in the replicated state.
type registry struct {
	state *replica.State
	// mu orders writes, so that two cannot register the same target.
	mu sync.Mutex
}

// list returns every monitor, by id. A value that does not decode (from a
// newer peer) is left out.
func (g *registry) list() []Monitor {
	entries := g.state.List(monitorKind)
	out := make([]Monitor, 0, len(entries))
	for _, e := range entries {
		var m Monitor
		if e.Decode(&m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (g *registry) get(id string) (Monitor, bool) {
	e, ok := g.state.Get(monitorKind, id)
	if !ok {
		return Monitor{}, false
	}
	var m Monitor
	return m, e.Decode(&m) == nil
}

// create registers a new monitor under a random id: peers that register
// at the same time never pick the same one.
func (g *registry) create(spec MonitorSpec, limit int, now time.Time) (Monitor, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	all := g.list()
	if len(all) >= limit {
		return Monitor{}, fmt.Errorf("%w: the registry holds registry.max_monitors (%d)", errTooManyMonitors, limit)
	}
	m := Monitor{ID: strings.ToLower(rand.Text()), MonitorSpec: spec, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	if err := conflict(all, m); err != nil {
		return Monitor{}, err
	}
	_, err := g.state.Put(monitorKind, m.ID, m, now)
	return m, err
}

// update replaces the spec of the monitor id, when may allows.
func (g *registry) update(id string, spec MonitorSpec, may func(Monitor) bool, now time.Time) (Monitor, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.get(id)
	if !ok || !may(m) {
		return Monitor{}, fmt.Errorf("%w: %q", errMonitorNotFound, id)
	}
	m.MonitorSpec, m.UpdatedAt = spec, now.UTC()
	if err := conflict(g.list(), m); err != nil {
		return Monitor{}, err
	}
	_, err := g.state.Put(monitorKind, m.ID, m, now)
	return m, err
}

// remove deletes the monitor id, when may allows.
func (g *registry) remove(id string, may func(Monitor) bool, now time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.get(id)
	if !ok || !may(m) {
		return fmt.Errorf("%w: %q", errMonitorNotFound, id)
	}
	_, err := g.state.Delete(monitorKind, id, now)
	return err
}

// conflict refuses a second monitor of one target and module: the
// exporters would check it once, with one of the two label sets.
func conflict(all []Monitor, m Monitor) error {
	for _, o := range all {
		if o.ID != m.ID && o.Key() == m.Key() {
			return fmt.Errorf("%w: target %q, module %q", errMonitorExists, m.Target, m.Module)
		}
	}
	return nil
}
