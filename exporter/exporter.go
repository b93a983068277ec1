package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/exporter/report"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// Exporter is one running vantage-exporter.
type Exporter struct {
	opts    Options
	logger  *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	config  *configHolder
	history *history
	reloads chan chan error
	// token, when set, is what check API requests must carry.
	token *webserver.TokenFile
	table *collector.Table
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
	reg := newRegistry()
	e := &Exporter{
		opts:    opts,
		logger:  opts.Logger,
		reg:     reg,
		metrics: newMetrics(reg),
		config:  newConfigHolder(opts.ConfigFile, reg, opts.Logger),
		history: newHistory(opts.HistoryLimit),
		reloads: make(chan chan error),
		table:   collector.NewTable(reg),
		run:     report.NewRunID(),
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
	if err := e.config.reload(); err != nil {
		return nil, err
	}
	reportClient, err := e.reportClient()
	if err != nil {
		return nil, err
	}

	// Tracing starts last of the steps that can fail: nothing after it does.
	tp, err := tracing.New(context.Background(), e.tracingConfig(), reg, e.logger.With("component", "tracing"))
	if err != nil {
		return nil, err
	}
	e.tracing, e.tracer = tp, newCheckTracer(tp, opts.Location)
	if len(opts.CoordinatorURLs) > 0 {
		e.reporter = report.New(e.reportOptions(reportClient))
		e.trans = newTransitions(e.reporter.Send)
	}
	e.sched = scheduler.New(e.schedulerOptions())
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
	ro.Canary = e.canary.state.known
	ro.Snapshot = e.snapshot
	ro.HeartbeatInterval = e.opts.CoordinatorHeartbeatInterval
	ro.SnapshotInterval = e.opts.CoordinatorSnapshotInterval
	ro.BufferSize = e.opts.CoordinatorQueueCapacity
	ro.Registerer, ro.Logger = e.reg, e.logger.With("component", "reporter")
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
		OnOutcome:  e.onOutcome,
		Registerer: e.reg,
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
	var p prober.Params
	if e.logger.Enabled(ctx, slog.LevelDebug) {
		p.Logger = e.logger.With("component", "check", "module", t.Module, "target", t.Target)
	}
	if !e.tracer.enabled() {
		return mod.Probe(ctx, t.Target, p)
	}
	p.Tracing = true
	r := mod.Probe(ctx, t.Target, p)
	checkSpanFrom(ctx).attempt(r)
	return r
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
// canary has no series of its own.
func tableRows(targets []scheduler.Target) []collector.Row {
	rows := make([]collector.Row, 0, len(targets))
	for i := range targets {
		t := &targets[i]
		if t.Canary {
			continue
		}
		rw := collector.Row{Module: t.Module, Target: t.Target, Interval: t.Interval, Labels: make([]collector.Label, len(t.Labels))}
		for j, l := range t.Labels {
			rw.Labels[j] = collector.Label{Name: l.Name, Value: l.Value}
			if l.Name != config.FailureThresholdLabel {
				continue
			}
			if v, err := config.ParseFailureThreshold(l.Value); err == nil {
				rw.FailureThreshold = &v
			}
		}
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

// applySchedule hands the current scheduled targets and settings to the
// results table and the scheduler.
func (e *Exporter) applySchedule(ctx context.Context) {
	st := e.config.get()
	e.table.Sync(tableRows(st.targets))
	if e.trans != nil {
		e.trans.retain(st.targets)
	}
	e.canary.state.configure(st.config.Canary != nil)
	e.sched.SetSettings(schedulerSettings(st))
	if err := e.sched.Update(ctx, st.targets); err != nil && ctx.Err() == nil {
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
	mux.HandleFunc("GET /metrics", e.handleMetrics)
	mux.HandleFunc("GET /config", e.handleConfig)
	var check http.Handler = http.HandlerFunc(e.handleCheck)
	if e.token != nil {
		check = webserver.RequireToken(check, e.token, e.metrics.unauthorized, e.logger)
	}
	mux.Handle("POST "+api.CheckPath, check)
	var batch http.Handler = http.HandlerFunc(e.handleCheckBatch)
	if e.token != nil {
		batch = webserver.RequireToken(batch, e.token, e.metrics.unauthorized, e.logger)
	}
	mux.Handle("POST "+api.CheckBatchPath, batch)
	var status http.Handler = http.HandlerFunc(e.handleStatus)
	if e.token != nil {
		status = webserver.RequireToken(status, e.token, e.metrics.unauthorized, e.logger)
	}
	mux.Handle("GET "+api.StatusPath, status)
	webserver.HandleOperational(mux, e.reloads)
	if e.opts.EnablePprof {
		webserver.HandlePprof(mux)
	}
	return mux
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
	e.applySchedule(ctx)
	checks.Go(func() { e.reloader(ctx) })

	err := webserver.Serve(ctx, webserver.Recover(e.Handler(), e.logger, e.metrics.panics), webserver.Config{
		FlagConfig: e.opts.FlagConfig,
		Started:    e.opts.Started,
	}, e.logger)

	// The server may also have failed: ending ctx stops the scheduler and
	// the reloader either way.
	cancel()
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
// It also polls the target files for changes.
func (e *Exporter) reloader(ctx context.Context) {
	refresh := e.config.get().config.Scheduler.FileRefreshInterval
	ticker := time.NewTicker(refresh)
	defer ticker.Stop()
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
		case <-ticker.C:
			if e.config.refreshTargets() {
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
