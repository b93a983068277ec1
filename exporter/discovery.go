package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/exporter/scheduler"
)

// DefaultDiscoveryUpdateInterval is how often, at most, discovered changes
// reach the scheduler: Prometheus's own pace for its scrape targets.
const DefaultDiscoveryUpdateInterval = 5 * time.Second

// targetDiscovery runs Prometheus's discovery manager for the targets
// groups that have discovery blocks, and keeps, per group, the last good
// set of targets resolved from what it found. A group whose discovery
// fails, or whose discovered targets do not resolve, keeps its last good
// set, and vantage_exporter_discovery_last_update_successful says so.
type targetDiscovery struct {
	logger  *slog.Logger
	manager *discovery.Manager
	// stop ends the manager and its discoverers.
	stop context.CancelFunc
	runs sync.WaitGroup
	// updated gets a value when the resolved targets changed.
	updated chan struct{}

	mu      sync.Mutex
	started bool
	cfg     *config.Config
	// found is the latest discovered, resolved the last good targets, by
	// group; resolvedOK and refreshOK whether the latest resolution and
	// the latest refresh of the group's mechanisms went well.
	found      map[string][]*targetgroup.Group
	resolved   map[string][]scheduler.Target
	resolvedOK map[string]bool
	refreshOK  map[string]bool

	successful *prometheus.GaugeVec
}

// newTargetDiscovery builds the discovery manager with its metrics and
// those of the mechanisms registered on reg; start runs it.
func newTargetDiscovery(reg prometheus.Registerer, logger *slog.Logger, updateInterval time.Duration) (*targetDiscovery, error) {
	d := &targetDiscovery{
		logger:     logger,
		updated:    make(chan struct{}, 1),
		found:      map[string][]*targetgroup.Group{},
		resolved:   map[string][]scheduler.Target{},
		resolvedOK: map[string]bool{},
		refreshOK:  map[string]bool{},
		successful: promauto.With(reg).NewGaugeVec(prometheus.GaugeOpts{
			Name: "vantage_exporter_discovery_last_update_successful",
			Help: "Whether the targets group's discovery last refreshed and its discovered targets resolved (relabeling, module, interval, labels) without error; on failure the group keeps its last good targets.",
		}, []string{"group"}),
	}
	refresh := &refreshWatch{RefreshMetricsManager: discovery.NewRefreshMetrics(reg), observe: d.refreshed}
	mechanisms, err := discovery.RegisterSDMetrics(reg, refresh)
	if err != nil {
		return nil, err
	}
	if updateInterval <= 0 {
		updateInterval = DefaultDiscoveryUpdateInterval
	}
	ctx, stop := context.WithCancel(context.Background())
	d.manager = discovery.NewManager(ctx, logger, reg,
		&discovery.SDMetrics{MechanismMetrics: mechanisms, RefreshManager: refresh},
		discovery.Name("vantage"), discovery.Updatert(updateInterval))
	if d.manager == nil {
		stop()
		return nil, fmt.Errorf("creating the discovery manager failed (see the log)")
	}
	d.stop = stop
	return d, nil
}

// start runs the manager with the discovery blocks of cfg until shutdown.
func (d *targetDiscovery) start() {
	d.mu.Lock()
	d.started = true
	cfg := d.cfg
	d.mu.Unlock()
	d.apply(cfg)
	d.runs.Go(func() { _ = d.manager.Run() })
	d.runs.Go(d.receive)
}

// shutdown stops discovery and waits for it.
func (d *targetDiscovery) shutdown() {
	d.stop()
	d.runs.Wait()
}

// retarget takes a newly loaded configuration: the running discovery
// follows its discovery blocks, and the targets discovered so far are
// resolved again with its groups. It returns every discovered target.
func (d *targetDiscovery) retarget(cfg *config.Config) []scheduler.Target {
	d.mu.Lock()
	d.cfg = cfg
	groups := cfg.DiscoveryGroupNames()
	for name := range d.resolved {
		if !slices.Contains(groups, name) {
			delete(d.found, name)
			delete(d.resolved, name)
			delete(d.resolvedOK, name)
			delete(d.refreshOK, name)
			d.successful.DeleteLabelValues(name)
		}
	}
	for _, name := range groups {
		if tgs, ok := d.found[name]; ok {
			d.resolveLocked(name, tgs)
		} else {
			d.report(name)
		}
	}
	out, started := d.targetsLocked(), d.started
	d.mu.Unlock()
	if started {
		d.apply(cfg)
	}
	return out
}

// apply hands the discovery blocks of cfg to the manager. It runs without
// d.mu: the manager waits for the discoverers it stops, which may be
// reporting a refresh.
func (d *targetDiscovery) apply(cfg *config.Config) {
	if err := d.manager.ApplyConfig(cfg.DiscoveryConfigs()); err != nil {
		d.logger.Error("Applying the discovery configuration failed", "err", err)
	}
}

// targets returns every discovered target, group by group in file order.
func (d *targetDiscovery) targets() []scheduler.Target {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.targetsLocked()
}

func (d *targetDiscovery) targetsLocked() []scheduler.Target {
	var out []scheduler.Target
	for _, name := range d.cfg.DiscoveryGroupNames() {
		out = append(out, d.resolved[name]...)
	}
	return out
}

// receive resolves what the manager discovers until it stops.
func (d *targetDiscovery) receive() {
	for sets := range d.manager.SyncCh() {
		d.mu.Lock()
		changed := false
		for _, name := range slices.Sorted(maps.Keys(sets)) {
			if d.cfg.DiscoveryConfigs()[name] == nil {
				continue // from a group a reload removed
			}
			d.found[name] = sets[name]
			changed = d.resolveLocked(name, sets[name]) || changed
		}
		d.mu.Unlock()
		if changed {
			select {
			case d.updated <- struct{}{}:
			default: // a notice is already waiting
			}
		}
	}
}

// resolveLocked resolves the targets found for a group; on failure the
// group keeps its last good targets. It reports whether they changed.
func (d *targetDiscovery) resolveLocked(name string, tgs []*targetgroup.Group) bool {
	resolved, err := d.cfg.ResolveDiscovered(name, tgs)
	d.resolvedOK[name] = err == nil
	d.report(name)
	if err != nil {
		d.logger.Error("Discovered targets do not resolve; keeping the group's last good targets", "group", name, "err", err)
		return false
	}
	next := scheduledTargets(resolved)
	slices.SortFunc(next, func(a, b scheduler.Target) int { return strings.Compare(a.Key(), b.Key()) })
	if slices.EqualFunc(next, d.resolved[name], sameTarget) {
		return false
	}
	d.resolved[name] = next
	d.logger.Info("Discovered targets changed", "group", name, "targets", len(next))
	return true
}

// refreshed takes the outcome of a refresh of one of a group's
// mechanisms (those that poll: http_sd, dns_sd).
func (d *targetDiscovery) refreshed(group string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg == nil || d.cfg.DiscoveryConfigs()[group] == nil {
		return
	}
	d.refreshOK[group] = ok
	d.report(group)
}

// report sets the group's success gauge: its latest resolution and its
// latest refresh succeeded. Until the first resolution it is 0.
func (d *targetDiscovery) report(group string) {
	ok := d.resolvedOK[group]
	if r, seen := d.refreshOK[group]; seen && !r {
		ok = false
	}
	v := 0.0
	if ok {
		v = 1
	}
	d.successful.WithLabelValues(group).Set(v)
}

// sameTarget reports whether two scheduled targets are checked alike.
func sameTarget(a, b scheduler.Target) bool {
	return a.Key() == b.Key() && a.Interval == b.Interval && a.Timeout == b.Timeout && a.Hostname == b.Hostname && slices.Equal(a.Labels, b.Labels)
}

// refreshWatch passes the refresh metrics of the polling mechanisms on,
// and tells each refresh's outcome by group: a refresh that fails counts
// a failure before it observes its duration.
type refreshWatch struct {
	discovery.RefreshMetricsManager
	observe func(group string, ok bool)
}

// Instantiate returns the metrics of one mechanism of one group.
func (w *refreshWatch) Instantiate(mech, group string) *discovery.RefreshMetrics {
	m := w.RefreshMetricsManager.Instantiate(mech, group)
	r := &refreshOutcome{Counter: m.Failures, observe: func(ok bool) { w.observe(group, ok) }}
	return &discovery.RefreshMetrics{
		Failures:          r,
		Duration:          refreshDuration{Observer: m.Duration, outcome: r},
		DurationHistogram: m.DurationHistogram,
	}
}

// refreshOutcome counts the failures of one mechanism's refreshes and
// remembers whether the refresh under way failed.
type refreshOutcome struct {
	prometheus.Counter
	mu      sync.Mutex
	failed  bool
	observe func(ok bool)
}

func (r *refreshOutcome) Inc() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Counter.Inc()
}

// done ends a refresh: it failed if Inc was called since the last one.
func (r *refreshOutcome) done() {
	r.mu.Lock()
	failed := r.failed
	r.failed = false
	r.mu.Unlock()
	r.observe(!failed)
}

// refreshDuration observes the duration that ends each refresh.
type refreshDuration struct {
	prometheus.Observer
	outcome *refreshOutcome
}

func (o refreshDuration) Observe(v float64) {
	o.Observer.Observe(v)
	o.outcome.done()
}
