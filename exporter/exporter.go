package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/exporter/cluster"
	"github.com/vantageprobe/vantage/exporter/report"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// Exporter is one running vantage-exporter.
type Exporter struct {
	opts   Options
	logger *slog.Logger
	// reg gathers /metrics; registerer is what the exporter's parts
	// register with (labelling their series with the location).
	reg        *prometheus.Registry
	registerer prometheus.Registerer
	metrics    *metrics
	config     *configHolder
	history    *history
	reloads    chan chan error
	// token, when set, is what check API requests must carry.
	token *webserver.TokenFile
	table *collector.Table
	// counts are the rolling counts of the scheduled checks by outcome,
	// served on api.StatsPath.
	counts *checkCounts
	// canary is the location's connectivity canary: its latest verdict
	// and its checks on demand.
	canary *canary
	// run identifies this process to the coordinators (batches, status).
	run string
	// tracing is the OpenTelemetry set-up, no-op when tracing is off;
	// tracer makes the check spans with it.
	tracing *tracing.Provider
	tracer  *checkTracer
	// reporter and trans exist when coordinators are configured.
	reporter *report.Reporter
	trans    *transitions
	sched    *scheduler.Scheduler
	// live holds the clocks of the exporter's progress.
	live *live
	// cluster is this exporter's membership in its location's cluster,
	// nil without one; clusterSet the target set it gossips.
	cluster    *cluster.Cluster
	clusterSet *clusterSet
	// discovery finds the targets of the groups with discovery blocks.
	discovery *targetDiscovery
	// ctx is Serve's: failures waiting for the canary's verdict (blames)
	// end with it.
	ctx    context.Context
	blames sync.WaitGroup
}

// New loads the configuration and builds an exporter. A configuration that
// does not load is an error here; later reloads keep the last good one.
//
// The steps that can fail come first. Tracing, whose export runs in a
// goroutine until shut down, starts after them, so a New that fails leaves
// nothing running.
func New(opts Options) (*Exporter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	gatherer, reg := newRegistry(opts.Location)
	e := &Exporter{
		opts:       opts,
		logger:     opts.Logger,
		reg:        gatherer,
		registerer: reg,
		metrics:    newMetrics(reg),
		config:     newConfigHolder(opts.ConfigFile, reg, opts.Logger),
		history:    newHistory(opts.HistoryLimit),
		reloads:    make(chan chan error),
		table:      collector.NewTable(reg),
		counts:     newCheckCounts(),
		run:        report.NewRunID(),
	}
	e.canary = newCanary(newCanaryState(), e.canaryTarget, e.probeCanary)
	reg.MustRegister(e.canary.state)
	if opts.APITokenFile != "" {
		token, err := webserver.NewTokenFile(opts.APITokenFile)
		if err != nil {
			return nil, fmt.Errorf("--api.token-file: %w", err)
		}
		e.token = token
	}
	disc, err := newTargetDiscovery(reg, e.logger.With("component", "discovery"), opts.DiscoveryUpdateInterval)
	if err != nil {
		return nil, err
	}
	e.discovery, e.config.discover = disc, disc.retarget
	if err := e.config.reload(); err != nil {
		return nil, err
	}
	reportClient, err := e.reportClient()
	if err != nil {
		return nil, err
	}

	if len(opts.CoordinatorURLs) > 0 {
		e.trans = newTransitions(func(r api.Report) { e.reporter.Send(r) })
		e.trans.degraded = e.degraded
	}
	if err := e.startCluster(); err != nil {
		return nil, err
	}

	// Tracing starts last of the steps that can fail: nothing after it does.
	tp, err := tracing.New(context.Background(), e.tracingConfig(), reg, e.logger.With("component", "tracing"))
	if err != nil {
		if e.cluster != nil {
			e.cluster.Close(0)
		}
		return nil, err
	}
	e.tracing, e.tracer = tp, newCheckTracer(tp, opts.Location)
	e.live = newLive(len(opts.CoordinatorURLs) > 0, opts.CoordinatorHeartbeatInterval,
		func(now time.Time) (time.Time, bool) { return e.sched.Overdue(now) },
		func(now time.Time) (time.Time, bool) { return e.reporter.Waiting(now) })
	reg.MustRegister(e.live.clocks)
	if len(opts.CoordinatorURLs) > 0 {
		e.reporter = report.New(e.reportOptions(reportClient))
	}
	e.sched = scheduler.New(e.schedulerOptions())
	registerDegraded(reg, e.sched.Degraded)
	return e, nil
}

// tracingConfig is --tracing.* with the exporter's service name and
// location as defaults.
func (e *Exporter) tracingConfig() tracing.Config {
	tc := e.opts.Tracing
	if tc.ServiceName == "" {
		tc.ServiceName = "vantage-exporter"
	}
	if tc.Location == "" {
		tc.Location = e.opts.Location
	}
	return tc
}

// reportOptions configure the delivery of state-change reports to the
// coordinators; client nil means the default client. Every batch carries
// the canary's verdict; snapshots tell the state of every scheduled target.
func (e *Exporter) reportOptions(client *http.Client) report.Options {
	ro := report.DefaultOptions()
	ro.URLs, ro.Location, ro.Run = e.opts.CoordinatorURLs, e.opts.Location, e.run
	if e.cluster != nil {
		ro.Member = e.cluster.Name()
	}
	ro.Canary = e.canary.state.known
	ro.Degraded, ro.Delivered = e.degradedReasons, e.live.delivered
	ro.Snapshot = e.snapshot
	ro.HeartbeatInterval = e.opts.CoordinatorHeartbeatInterval
	ro.SnapshotInterval = e.opts.CoordinatorSnapshotInterval
	ro.BufferSize = e.opts.CoordinatorQueueCapacity
	ro.Registerer, ro.Logger = e.registerer, e.logger.With("component", "reporter")
	if client != nil {
		ro.Client = client
	}
	return ro
}

// schedulerOptions configure the scheduler of the configured targets; with
// tracing on, each check is traced.
func (e *Exporter) schedulerOptions() scheduler.Options {
	so := scheduler.Options{
		Settings:   schedulerSettings(e.config.get()),
		Check:      e.check,
		Start:      e.start,
		OnOutcome:  e.onOutcome,
		Bounds:     e.opts.SchedulerBounds,
		Tick:       e.live.tick,
		Checks:     e.live.checks,
		Registerer: e.registerer,
		Logger:     e.logger.With("component", "scheduler"),
	}
	if e.tracer.enabled() {
		so.Observe = e.observeCheck
	}
	return so
}

// reportClient builds the reporter's client from the prometheus/common HTTP
// client configuration file of --coordinator.http-config.file; nil, for
// the default client, without one or without coordinators to report to.
func (e *Exporter) reportClient() (*http.Client, error) {
	path := e.opts.CoordinatorHTTPConfigFile
	if path == "" || len(e.opts.CoordinatorURLs) == 0 {
		return nil, nil
	}
	cfg, _, err := promconfig.LoadHTTPConfigFile(path)
	if err != nil {
		return nil, fmt.Errorf("--coordinator.http-config.file: %w", err)
	}
	client, err := promconfig.NewClientFromConfig(*cfg, "vantage-exporter")
	if err != nil {
		return nil, fmt.Errorf("--coordinator.http-config.file %s: %w", path, err)
	}
	client.Timeout = report.DefaultOptions().Client.Timeout
	return client, nil
}

// reportFlushGrace bounds the last delivery of queued reports at shutdown.
const reportFlushGrace = 5 * time.Second

// tracingFlushGrace bounds the export of the kept traces at shutdown.
const tracingFlushGrace = 5 * time.Second

func schedulerSettings(st *state) scheduler.Settings {
	c := st.config.Scheduler
	return scheduler.Settings{MaxInFlight: c.MaxInFlight, Retries: c.Retries, RetryInterval: c.RetryInterval}
}

// check runs one attempt of a scheduled check with the module as currently
// configured.
func (e *Exporter) check(ctx context.Context, t *scheduler.Target) *result.Result {
	mod, failed := e.module(t.Module)
	if mod == nil {
		return failed
	}
	p := prober.Params{Hostname: t.Hostname}
	if e.logger.Enabled(ctx, slog.LevelDebug) {
		p.Logger = e.logger.With("component", "check", "module", t.Module, "target", t.Target)
	}
	if !e.tracer.enabled() {
		return mod.Probe(ctx, t.Target, p)
	}
	p.Tracing, p.Propagator = true, e.tracing.Propagator()
	r := mod.Probe(ctx, t.Target, p)
	checkSpanFrom(ctx).attempt(r)
	return r
}

// start begins one attempt of a scheduled check: a probe that waits for
// its target's answer does it without holding the scheduler's worker
// (prober.Module.ProbeAsync). A check that is traced or logged runs as
// check runs it.
func (e *Exporter) start(ctx context.Context, t *scheduler.Target, resume func(func()), done func(*result.Result)) {
	if e.tracer.enabled() || e.logger.Enabled(ctx, slog.LevelDebug) {
		done(e.check(ctx, t))
		return
	}
	mod, failed := e.module(t.Module)
	if mod == nil {
		done(failed)
		return
	}
	mod.ProbeAsync(ctx, t.Target, prober.Params{Hostname: t.Hostname}, resume, done)
}

// onOutcome takes the outcome of every scheduled check. The canary's
// judges the location; a target's becomes its series in the results table
// and, when reporting, a state-change report if its state changed. A
// failure that would blame the target waits for a canary check that
// begins after it (blame), without holding up the scheduler.
func (e *Exporter) onOutcome(o scheduler.Outcome) {
	if o.Target.Canary {
		began := o.Result.Start
		if began.IsZero() {
			began = o.Planned
		}
		e.canary.observe(canaryVerdict{ok: o.Result.Success, began: began})
		return
	}
	e.table.Record(tableCheck(o))
	e.counts.record(api.TargetKey{Target: o.Target.Target, Module: o.Target.Module}, e.judgeOutcome(o.Result), time.Now())
	if e.trans != nil {
		if b := e.trans.record(o, time.Now()); b != nil {
			e.blame(b)
		}
	}
}

// blame resolves a failure with the verdict of a canary check that began
// after it; without a canary, at once: the location vouches for itself.
// While the target keeps failing after a failed canary check, it waits
// again for its newer failure.
func (e *Exporter) blame(b *blame) {
	if !e.canary.configured() {
		e.trans.resolve(b, canaryVerdict{ok: true, began: b.since})
		return
	}
	e.blames.Go(func() {
		for b != nil {
			v, err := e.canary.after(e.ctx, b.since)
			if err != nil {
				return // shutting down: the failure stays unreported
			}
			b = e.trans.resolve(b, v)
		}
	})
}

// canaryTarget is the configured canary, nil without one.
func (e *Exporter) canaryTarget() *scheduler.Target {
	targets := e.config.get().targets
	// The canary, when configured, is the last scheduled target.
	if n := len(targets); n > 0 && targets[n-1].Canary {
		return &targets[n-1]
	}
	return nil
}

// probeCanary runs one on-demand check of the canary.
func (e *Exporter) probeCanary(ctx context.Context, t *scheduler.Target) *result.Result {
	mod, failed := e.module(t.Module)
	if mod == nil {
		return failed
	}
	return mod.Probe(ctx, t.Target, prober.Params{})
}

// module returns the named module as currently configured or, when a
// reload removed it, nil and the failed result of a check that cannot run.
func (e *Exporter) module(name string) (*prober.Module, *result.Result) {
	if mod := e.config.get().modules[name]; mod != nil {
		return mod, nil
	}
	r := &result.Result{Start: time.Now()}
	r.Fail(result.ReasonConfigError, "module %q is no longer configured", name)
	return nil, r
}

// snapshot is the state of every scheduled target for the coordinators,
// numbered with the latest report it includes.
func (e *Exporter) snapshot(withTargets bool) *api.Snapshot {
	return e.trans.snapshot(e.config.get().targets, withTargets, e.reporter.Seq, time.Now())
}

// tableRows describes the scheduled targets to the results table; the
// canary has no series of its own. With a location (--location), every
// target's series carry it as the label location, among its configured
// labels in name order (configurations cannot use the name).
func tableRows(targets []scheduler.Target, location string) []collector.Row {
	rows := make([]collector.Row, 0, len(targets))
	for i := range targets {
		t := &targets[i]
		if t.Canary {
			continue
		}
		rw := collector.Row{Module: t.Module, Target: t.Target, Interval: t.Interval, Labels: make([]collector.Label, 0, len(t.Labels)+1)}
		if location != "" {
			rw.Labels = append(rw.Labels, collector.Label{Name: "location", Value: location})
		}
		for _, l := range t.Labels {
			rw.Labels = append(rw.Labels, collector.Label{Name: l.Name, Value: l.Value})
			if l.Name != config.FailureThresholdLabel {
				continue
			}
			if v, err := config.ParseFailureThreshold(l.Value); err == nil {
				rw.FailureThreshold = &v
			}
		}
		slices.SortFunc(rw.Labels, func(a, b collector.Label) int { return strings.Compare(a.Name, b.Name) })
		rows = append(rows, rw)
	}
	return rows
}

// tableCheck is a scheduled check's outcome for the results table.
func tableCheck(o scheduler.Outcome) collector.Check {
	return collector.Check{
		Module: o.Target.Module, Target: o.Target.Target, Result: o.Result,
		Attempts: o.Attempts, Planned: o.Planned, TraceID: o.TraceID,
	}
}

// applySchedule hands the scheduled targets this exporter checks (in a
// cluster: those it owns) and the settings to the results table and the
// scheduler.
func (e *Exporter) applySchedule(ctx context.Context) {
	st := e.config.get()
	owned := e.ownedTargets(st)
	e.table.SetMinimal(st.config.Scheduler.Series == config.SeriesMinimal)
	e.table.Sync(tableRows(owned, e.opts.Location))
	// Counts are kept for every target of the location, owned or not: a
	// member answers for the checks it made before ownership moved.
	e.counts.retain(st.targets)
	e.live.configure(owned)
	if e.trans != nil {
		e.trans.retain(st.targets)
		e.trans.release(owned)
	}
	e.canary.state.configure(st.config.Canary != nil)
	e.sched.SetSettings(schedulerSettings(st))
	if err := e.sched.Update(ctx, owned); err != nil && ctx.Err() == nil {
		e.logger.Error("Scheduler did not take the targets", "err", err)
	}
}

// Run starts an exporter with opts and serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	e, err := New(opts)
	if err != nil {
		return err
	}
	return e.Serve(ctx)
}

// Handler returns the exporter's HTTP routes, without web config protection.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.handleLanding)
	mux.HandleFunc("GET /probe", e.handleProbe)
	mux.HandleFunc("GET /history/{id}", e.handleHistory)
	mux.HandleFunc("GET /logs", e.handleLogs)
	mux.HandleFunc("GET /metrics", e.handleMetrics)
	mux.HandleFunc("GET /config", e.handleConfig)
	mux.Handle("POST "+api.CheckPath, e.checkAPI(e.handleCheck))
	mux.Handle("POST "+api.CheckBatchPath, e.checkAPI(e.handleCheckBatch))
	mux.Handle("GET "+api.StatusPath, e.checkAPI(e.handleStatus))
	mux.Handle("POST "+api.StatsPath, e.checkAPI(e.handleStats))
	webserver.HandleOperational(mux, e.reloads, e.live.clocks.Unhealthy)
	if e.opts.EnablePprof {
		webserver.HandlePprof(mux)
	}
	return e.underPrefix(mux)
}

// checkAPI is a route of the check API: with --api.token-file, only
// requests that carry the token reach h.
func (e *Exporter) checkAPI(h http.HandlerFunc) http.Handler {
	if e.token == nil {
		return h
	}
	return webserver.RequireToken(h, e.token, e.metrics.unauthorized, e.logger)
}

// underPrefix serves h under --web.route-prefix and, as blackbox_exporter
// does, redirects "/" there (to --web.external-url when set).
func (e *Exporter) underPrefix(h http.Handler) http.Handler {
	prefix, _ := e.opts.routePrefix() // validated by New
	if prefix == "/" {
		return h
	}
	root := prefix
	if e.opts.ExternalURL != "" {
		root = e.opts.ExternalURL
	}
	outer := http.NewServeMux()
	// "/vantage/" also answers "/vantage" with a redirect to "/vantage/".
	outer.Handle(prefix, http.StripPrefix(strings.TrimSuffix(prefix, "/"), h))
	outer.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, root, http.StatusFound)
	})
	return outer
}

// Serve runs the exporter until ctx ends or its server fails. It starts,
// in order, the delivery of reports, the scheduler with the configured
// targets, the reloader and the HTTP server, and stops them the other way
// round: the server, then the reloader and the scheduler, whose checks end,
// the canary's checks on demand and the failures waiting for them; then
// the delivery, which makes a last attempt for the reports those checks
// left queued; tracing last, once every check's trace is decided.
func (e *Exporter) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.ctx = ctx
	e.canary.start(ctx)
	// Reports outlive ctx: their delivery stops only after the checks.
	reportCtx, stopReports := context.WithCancel(context.Background())
	var delivery sync.WaitGroup
	if e.reporter != nil {
		delivery.Go(func() { e.reporter.Run(reportCtx, reportFlushGrace) })
	}
	var checks sync.WaitGroup
	checks.Go(func() { _ = e.sched.Run(ctx) })
	e.discovery.start()
	e.applySchedule(ctx)
	checks.Go(func() { e.reloader(ctx) })

	err := webserver.Serve(ctx, webserver.Recover(e.Handler(), e.logger, e.metrics.panics), webserver.Config{
		FlagConfig: e.opts.FlagConfig,
		Started:    e.opts.Started,
	}, e.logger)

	// The server may also have failed: ending ctx stops the scheduler and
	// the reloader either way. A cluster member leaves first, so the
	// others take its targets over at once.
	cancel()
	if e.cluster != nil {
		e.cluster.Close(clusterLeaveGrace)
	}
	e.discovery.shutdown()
	checks.Wait()
	e.blames.Wait()
	e.canary.wait()
	stopReports()
	delivery.Wait()
	e.shutdownTracing()
	return err
}

// shutdownTracing exports the kept traces still queued and stops tracing.
func (e *Exporter) shutdownTracing() {
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushGrace)
	defer cancel()
	if err := e.tracing.Shutdown(ctx); err != nil {
		e.logger.Warn("Exporting the last traces failed", "err", err)
	}
}

// reloader is the one goroutine that reloads the configuration, fed by
// external signals (SIGHUP) and by POST /-/reload.
// It also polls the target files for changes and takes the changes of
// the discovered targets.
func (e *Exporter) reloader(ctx context.Context) {
	refresh := e.config.get().config.Scheduler.FileRefreshInterval
	ticker := time.NewTicker(refresh)
	defer ticker.Stop()
	var autoReload <-chan time.Time // --config.enable-auto-reload
	if e.opts.AutoReload {
		t := time.NewTicker(e.opts.AutoReloadInterval)
		defer t.Stop()
		autoReload = t.C
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-e.opts.Reload:
			err = e.config.reload()
		case errc := <-e.reloads:
			err = e.config.reload()
			errc <- err
		case <-autoReload:
			if !e.config.reloadIfChanged() {
				continue
			}
		case <-ticker.C:
			if e.config.refreshTargets() {
				e.applySchedule(ctx)
			}
			continue
		case <-e.clusterChanged():
			e.applySchedule(ctx) // members or target sets changed
			continue
		case <-e.discovery.updated:
			if e.config.setDiscovered(e.discovery.targets()) {
				e.applySchedule(ctx)
			}
			continue
		}
		if err != nil {
			continue
		}
		e.applySchedule(ctx)
		if r := e.config.get().config.Scheduler.FileRefreshInterval; r != refresh {
			refresh = r
			ticker.Reset(refresh)
		}
	}
}

func (e *Exporter) handleConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := e.config.get().config.Marshal()
	if err != nil {
		http.Error(w, fmt.Sprintf("error marshalling configuration: %s", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}
