package exporter

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	promconfig "github.com/prometheus/common/config"

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
	config  *configHolder
	history *history
	reg     *prometheus.Registry
	reloads chan chan error
	probes  *prometheus.CounterVec
	checks  *prometheus.CounterVec
	// panics counts handler panics; unauthorized, check API requests
	// refused for want of the --api.token-file token.
	panics       prometheus.Counter
	unauthorized prometheus.Counter
	// token, when set, is what check API requests must carry.
	token  *webserver.TokenFile
	table  *collector.Table
	sched  *scheduler.Scheduler
	canary *canaryState
	// tracing is the OpenTelemetry set-up, no-op when tracing is off;
	// tracer makes the check spans with it.
	tracing *tracing.Provider
	tracer  *checkTracer
	// reporter and trans exist when coordinators are configured.
	reporter *report.Reporter
	trans    *transitions
}

// New loads the configuration and builds an exporter. A configuration that
// does not load is an error here; later reloads keep the last good one.
func New(opts Options) (*Exporter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("vantage_exporter"),
	)
	e := &Exporter{
		opts:    opts,
		logger:  opts.Logger,
		config:  newConfigHolder(opts.ConfigFile, reg, opts.Logger),
		history: newHistory(opts.HistoryLimit),
		reg:     reg,
		reloads: make(chan chan error),
		probes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_probes_total",
			Help: "Probes answered on /probe, by module and result.",
		}, []string{"module", "result"}),
		checks: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_api_checks_total",
			Help: "Checks made on request through POST /api/v1/check, by module and result.",
		}, []string{"module", "result"}),
		panics: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "vantage_exporter_http_handler_panics_total",
			Help: "HTTP requests whose handler panicked; they were answered 500 and logged.",
		}),
		unauthorized: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "vantage_exporter_api_requests_unauthorized_total",
			Help: "Check API requests refused because they lacked the bearer token of --api.token-file.",
		}),
	}
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
	tc := opts.Tracing
	if tc.ServiceName == "" {
		tc.ServiceName = "vantage-exporter"
	}
	if tc.Location == "" {
		tc.Location = opts.Location
	}
	tp, err := tracing.New(context.Background(), tc, reg, e.logger.With("component", "tracing"))
	if err != nil {
		return nil, err
	}
	e.tracing, e.tracer = tp, newCheckTracer(tp, opts.Location)
	e.table = collector.NewTable(reg)
	e.canary = newCanaryState()
	reg.MustRegister(e.canary)
	record := func(o scheduler.Outcome) { e.table.Record(tableCheck(o)) }
	if len(opts.CoordinatorURLs) > 0 {
		ro := report.DefaultOptions()
		ro.URLs, ro.Location = opts.CoordinatorURLs, opts.Location
		ro.Registerer, ro.Logger = reg, e.logger.With("component", "reporter")
		if opts.CoordinatorHTTPConfigFile != "" {
			client, err := coordinatorClient(opts.CoordinatorHTTPConfigFile)
			if err != nil {
				return nil, err
			}
			ro.Client = client
		}
		e.reporter = report.New(ro)
		e.trans = newTransitions(e.reporter.Send)
		record = func(o scheduler.Outcome) {
			e.table.Record(tableCheck(o))
			e.trans.record(o, e.canary.ok())
		}
	}
	onOutcome := func(o scheduler.Outcome) {
		if o.Target.Canary {
			e.canary.set(o.Result.Success)
			return
		}
		record(o)
	}
	so := scheduler.Options{
		Settings:   schedulerSettings(e.config.get()),
		Check:      e.check,
		OnOutcome:  onOutcome,
		Registerer: reg,
		Logger:     e.logger.With("component", "scheduler"),
	}
	if e.tracer.enabled() {
		so.Observe = e.observeCheck
	}
	e.sched = scheduler.New(so)
	return e, nil
}

// coordinatorClient builds the reporter's client from a prometheus/common
// HTTP client configuration file.
func coordinatorClient(path string) (*http.Client, error) {
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
	mod := e.config.get().modules[t.Module]
	if mod == nil {
		r := &result.Result{Start: time.Now()}
		r.Fail(result.ReasonConfigError, "module %q is no longer configured", t.Module)
		return r
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

// tableRows describes the scheduled targets to the results table; the
// canary has no series of its own.
func tableRows(targets []scheduler.Target) []collector.Row {
	rows := make([]collector.Row, 0, len(targets))
	for i := range targets {
		t := &targets[i]
		if t.Canary {
			continue
		}
		rw := collector.Row{Module: t.Module, Target: t.Target, Labels: make([]collector.Label, len(t.Labels))}
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
	e.canary.configure(st.config.Canary != nil)
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
		check = webserver.RequireToken(check, e.token, e.unauthorized, e.logger)
	}
	mux.Handle("POST /api/v1/check", check)
	webserver.HandleOperational(mux, e.reloads)
	if e.opts.EnablePprof {
		webserver.HandlePprof(mux)
	}
	return mux
}

// Serve listens on the configured addresses and serves until ctx ends.
func (e *Exporter) Serve(ctx context.Context) error {
	// Deferred first, so it runs last: the checks have ended and their
	// traces are decided.
	defer e.shutdownTracing()
	// Serve may also return because the listener failed: cancelling ctx
	// then stops the scheduler before the deferred waits for it.
	ctx, cancel := context.WithCancel(ctx)
	schedDone := make(chan struct{})
	go func() {
		defer close(schedDone)
		_ = e.sched.Run(ctx)
	}()
	defer func() { <-schedDone }()
	if e.reporter != nil {
		// Reports still queued at shutdown get a last delivery attempt,
		// after the scheduler's checks have ended.
		reportCtx, stopReports := context.WithCancel(context.Background())
		reportsDone := make(chan struct{})
		go func() {
			defer close(reportsDone)
			e.reporter.Run(reportCtx, reportFlushGrace)
		}()
		defer func() { <-reportsDone }()
		defer stopReports()
		defer func() { <-schedDone }()
	}
	defer cancel()
	e.applySchedule(ctx)
	go e.reloader(ctx)
	return webserver.Serve(ctx, webserver.Recover(e.Handler(), e.logger, e.panics), webserver.Config{
		FlagConfig: e.opts.FlagConfig,
		Started:    e.opts.Started,
	}, e.logger)
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
