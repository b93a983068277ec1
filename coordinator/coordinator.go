package coordinator

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	promconfig "github.com/prometheus/common/config"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// Coordinator is a running vantage-coordinator.
type Coordinator struct {
	opts   Options
	logger *slog.Logger
	conf   atomic.Pointer[config.CoordinatorConfig]
	// client talks to the exporters, as the configuration's http_client
	// says.
	client atomic.Pointer[http.Client]
	// token, when set, is --api.token-file's: report batches and writes
	// must carry it or one of tokens.
	token *webserver.TokenFile
	// tokens are the API's tokens (api_tokens and token), with their
	// scopes; swapped on reload.
	tokens atomic.Pointer[apiTokens]
	// tracing traces verification rounds (no-op when off); the client's
	// requests carry the round's traceparent.
	tracing *tracing.Provider
	tracer  trace.Tracer

	// mu guards machine and orders the incident snapshots it submits to
	// writer.
	mu      sync.Mutex
	machine *confirm.Machine

	store *Store
	// replica holds what clients write (registry, events, maintenance
	// windows) as entries replicated between coordinator peers.
	replica  *replica.State
	registry *registry
	events   *eventBook
	writer   *writer
	verifier *verifier
	// dispatch runs the verification rounds.
	dispatch *dispatcher
	health   *locationHealth
	members  *members
	intake   *intake
	labels   *targetLabels
	reg      *prometheus.Registry
	// series renders the targets' series, after reg's, on /metrics.
	series  *collector.Coordinator
	metrics *metrics
	clocks  *clocks
	reloads chan chan error
	maint   maintenances

	// run identifies this process to the exporters (api.ReportsAnswer.Run):
	// a new one makes them send a snapshot.
	run string

	// runCtx bounds the verification rounds; set by Serve.
	runCtx context.Context
}

// New loads the configuration, opens the incident log and resumes the
// open incidents. Serve runs the coordinator; a coordinator that is not
// served must be closed with Close.
func New(opts Options) (*Coordinator, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	conf, err := loadConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	var token *webserver.TokenFile
	if opts.APITokenFile != "" {
		if token, err = webserver.NewTokenFile(opts.APITokenFile); err != nil {
			return nil, fmt.Errorf("--api.token-file: %w", err)
		}
	}
	tokens, err := newAPITokens(conf.APITokens, token)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	tc := opts.Tracing
	if tc.ServiceName == "" {
		tc.ServiceName = "vantage-coordinator"
	}
	tp, err := tracing.New(context.Background(), tc, reg, opts.Logger.With("component", "tracing"))
	if err != nil {
		return nil, err
	}
	c, err := open(opts, conf, reg, tp)
	if err != nil {
		_ = tp.Shutdown(context.Background())
		return nil, err
	}
	c.token = token
	c.tokens.Store(tokens)
	return c, nil
}

// open builds the client and opens the incident log, resuming its open
// incidents.
func open(opts Options, conf *config.CoordinatorConfig, reg *prometheus.Registry, tp *tracing.Provider) (*Coordinator, error) {
	client, err := newClient(conf, tp)
	if err != nil {
		return nil, err
	}
	store, err := OpenStore(opts.StoragePath)
	if err != nil {
		return nil, err
	}
	lastID, err := store.LastID()
	var incidents []confirm.Incident
	if err == nil {
		incidents, err = store.ResumeOpen()
	}
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the incident log in %s: %w", opts.StoragePath, err)
	}
	peer := opts.PeerName
	if peer == "" {
		peer = defaultPeerName()
	}
	rep, err := replica.Open(store.db, peer)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the replicated state in %s: %w", opts.StoragePath, err)
	}
	migrated, err := migrateToReplica(store.db, rep)
	if err != nil {
		store.Close()
		return nil, err
	}
	c := newCoordinator(opts, conf, reg, client, store, lastID)
	c.replica = rep
	c.registry = &registry{state: rep}
	reg.MustRegister(rep.Collector())
	if migrated > 0 {
		c.logger.Info("Moved events and maintenance windows into the replicated state", "entries", migrated)
	}
	err = c.events.configure(conf.Events)
	if err == nil {
		err = c.events.load(rep)
	}
	if err != nil {
		store.Close()
		return nil, err
	}
	c.tracing, c.tracer = tp, tp.Tracer("github.com/vantageprobe/vantage/coordinator")
	c.dispatch = newDispatcher(c.verifier, c.tracer, tp.Inject, defaultDispatchLimits, c.roundDone)
	c.machine.Restore(incidents, time.Now())
	if err := c.loadMaintenances(); err != nil {
		store.Close()
		return nil, fmt.Errorf("reading the maintenance windows in %s: %w", opts.StoragePath, err)
	}
	rep.Watch(kindMaintenance, c.maintenanceChanged)
	if len(incidents) > 0 {
		c.logger.Info("Resuming open incidents", "incidents", len(incidents))
	}
	return c, nil
}

func newCoordinator(opts Options, conf *config.CoordinatorConfig, reg *prometheus.Registry, client *http.Client, store *Store, lastID uint64) *Coordinator {
	c := &Coordinator{
		opts:     opts,
		logger:   opts.Logger,
		machine:  confirm.NewMachine(conf, lastID),
		store:    store,
		events:   newEventBook(),
		verifier: newVerifier(nil),
		health:   newLocationHealth(),
		members:  newMembers(),
		intake:   newIntake(),
		labels:   newTargetLabels(),
		reg:      reg,
		reloads:  make(chan chan error),
		runCtx:   context.Background(),
		run:      rand.Text(),
	}
	c.verifier.client = c.client.Load
	c.conf.Store(conf)
	c.client.Store(client)
	c.tokens.Store(&apiTokens{})
	c.health.configure(conf)
	c.metrics = newMetrics(c.reg, conf)
	c.machine.SetMaintenance(c.maint.inMaintenance)
	c.writer = newWriter(store, func(err error) {
		c.metrics.storeErrors.Inc()
		c.logger.Error("Writing the incident log failed", "err", err)
	})
	c.clocks = newClocks(c)
	c.series = collector.NewCoordinator(stateNames(), c.targetStates, c.health.snapshot)
	c.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("vantage_coordinator"),
		c.series,
		eventCollector{c.events},
		newMaintenanceCollector(c),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vantage_coordinator_verification_rounds_in_flight",
			Help: "Verification rounds waiting for the locations' answers.",
		}, func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			return float64(c.machine.OpenRounds())
		}),
	)
	return c
}

func loadConfig(path string) (*config.CoordinatorConfig, error) {
	if path == "" {
		return config.DefaultCoordinator(), nil
	}
	return config.LoadCoordinatorFile(path)
}

// newClient builds the client for the exporters from the configuration's
// http_client section. With tracing on, each request is a CLIENT span
// naming the location it asks (vantage.location).
func newClient(conf *config.CoordinatorConfig, tp *tracing.Provider) (*http.Client, error) {
	client, err := promconfig.NewClientFromConfig(conf.HTTPClient.HTTPClientConfig, "vantage-coordinator")
	if err != nil {
		return nil, fmt.Errorf("http_client: %w", err)
	}
	byHost := make(map[string]string, len(conf.Locations))
	for _, l := range conf.Locations {
		if u, err := url.Parse(l.URL); err == nil {
			byHost[u.Host] = l.Name
		}
	}
	client.Transport = tp.Transport(client.Transport, func(r *http.Request) []attribute.KeyValue {
		if name, ok := byHost[r.URL.Host]; ok {
			return []attribute.KeyValue{tracing.AttrLocation.String(name)}
		}
		return nil
	})
	return client, nil
}

func stateNames() []string {
	out := make([]string, len(confirm.States))
	for i, s := range confirm.States {
		out[i] = string(s)
	}
	return out
}

// Close releases the incident log of a coordinator that was not served.
func (c *Coordinator) Close() error {
	_ = c.tracing.Shutdown(context.Background())
	return c.store.Close()
}

// Run starts a coordinator with opts and serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	c, err := New(opts)
	if err != nil {
		return err
	}
	return c.Serve(ctx)
}

// Serve runs the coordinator until ctx ends: the HTTP server, the
// re-verification of open incidents, the location health checks, the
// incident log and its pruning. It closes the incident log when it returns.
func (c *Coordinator) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.runCtx = ctx
	group, err := c.joinPeers()
	if err != nil {
		c.writer.close()
		_ = c.store.Close()
		_ = c.tracing.Shutdown(context.Background())
		return err
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writer.run()
	}()
	var wg sync.WaitGroup
	wg.Go(func() { c.dispatch.run(ctx) })
	wg.Go(func() { c.verifyDue(ctx) })
	wg.Go(func() { c.checkHealth(ctx) })
	wg.Go(func() { c.reloader(ctx) })
	wg.Go(func() { c.pruneIncidents(ctx) })
	wg.Go(func() { c.raiseEvents(ctx) })

	err = webserver.Serve(ctx, webserver.Recover(c.Handler(), c.logger, c.metrics.panics), webserver.Config{
		FlagConfig: c.opts.FlagConfig,
		Started:    c.opts.Started,
	}, c.logger)
	cancel()
	wg.Wait()
	if group != nil {
		group.Close(peerLeaveGrace)
	}
	// Rounds cut short by the shutdown are dropped (the dispatcher has
	// ended); open incidents are verified again after a restart.
	c.writer.close()
	<-writerDone
	if cerr := c.store.Close(); err == nil && cerr != nil {
		err = cerr
	}
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelFlush()
	if terr := c.tracing.Shutdown(flushCtx); terr != nil {
		c.logger.Warn("Exporting the last traces failed", "err", terr)
	}
	return err
}

// update applies an event to the machine and carries out its effects:
// incident snapshots go to the log in the machine's order, rounds start,
// metrics count. The returned channel yields when the snapshots are
// durable.
func (c *Coordinator) update(event func(m *confirm.Machine, now time.Time) confirm.Effects) <-chan error {
	c.mu.Lock()
	eff := event(c.machine, time.Now())
	done := c.writer.submit(eff.Save)
	c.mu.Unlock()
	for _, r := range eff.Resolved {
		c.metrics.incidents.WithLabelValues(r).Inc()
	}
	c.metrics.reclassified.Add(float64(eff.Reclassified))
	c.metrics.discounted.Add(float64(eff.Discounted))
	for _, e := range eff.Locations {
		if e.Suspect {
			c.metrics.suspect.WithLabelValues(e.Location, e.Reason).Set(1)
			c.logger.Warn("Location suspect: its failures count for nothing until it recovers", "location", e.Location, "reason", e.Reason,
				"contradicted_targets", e.Contradicted, "share", e.Share, "degraded", e.Detail)
		} else {
			c.metrics.suspect.WithLabelValues(e.Location, e.Reason).Set(0)
			c.logger.Info("Location trusted again", "location", e.Location, "contradicted_targets", e.Contradicted, "share", e.Share)
		}
	}
	for _, e := range eff.Events {
		c.logger.Info("Incident "+e.Kind, "target", e.Key.Target, "module", e.Key.Module, "id", e.ID, "start", e.StartedAt, "resolution", e.Resolution)
	}
	for _, d := range eff.Confirmed {
		c.metrics.confirmation.Observe(d.Seconds())
	}
	for _, r := range eff.Rounds {
		c.startRound(r)
	}
	return done
}

// startRound hands a round to the dispatcher, which asks its locations
// and calls roundDone with their answers.
func (c *Coordinator) startRound(r confirm.RoundRequest) {
	configured := c.conf.Load().LocationURLs()
	urls := make(map[string][]string, len(r.Locations))
	for _, name := range r.Locations {
		if u, ok := configured[name]; ok {
			urls[name] = c.members.urls(c.runCtx, u)
		}
	}
	c.dispatch.submit(c.runCtx, r, urls)
}

// roundDone feeds a finished round's answers to the machine. Overload
// answers (the coordinator's own lack of capacity) are counted and passed
// on, but say nothing about the location's health.
func (c *Coordinator) roundDone(r *round) {
	answers := r.answers()
	endRoundSpan(r.span, answers)
	c.metrics.roundDuration.Observe(time.Since(r.started).Seconds())
	evidence := make([]confirm.Evidence, len(answers))
	for i, a := range answers {
		evidence[i] = a.Evidence
		if a.isOverload() {
			c.metrics.overload.WithLabelValues(a.Location).Inc()
			c.logger.Debug("No capacity to ask the location in time", "location", a.Location, "target", r.req.Key.Target, "module", r.req.Key.Module, "err", a.Error)
			continue
		}
		c.health.observe(a.Location, a.contact())
		c.metrics.checks.WithLabelValues(a.Location, string(a.Result)).Inc()
		if a.Result == confirm.OutcomeUnknown {
			c.logger.Debug("Location could not tell", "location", a.Location, "target", r.req.Key.Target, "module", r.req.Key.Module, "err", a.Error)
		}
	}
	c.update(func(m *confirm.Machine, now time.Time) confirm.Effects {
		return m.RoundDone(r.req.Key, r.req.ID, evidence, now)
	})
	c.clocks.round.Advance(time.Now())
}

// endRoundSpan records what the locations answered. A round that saw a
// failure or could not hear from a location ends with an Error status, so
// its trace is kept.
func endRoundSpan(span trace.Span, answers []checkAnswer) {
	if !span.IsRecording() {
		span.End()
		return
	}
	counts := map[confirm.Outcome]int{}
	for _, a := range answers {
		counts[a.Result]++
		span.AddEvent("answer", trace.WithAttributes(
			tracing.AttrLocation.String(a.Location), attribute.String("vantage.check.result", string(a.Result)),
			attribute.String("vantage.check.failure_reason", string(a.Reason)), attribute.String("vantage.check.error", a.Error)))
	}
	span.SetAttributes(
		attribute.Int("vantage.verification.success", counts[confirm.OutcomeSuccess]),
		attribute.Int("vantage.verification.failure", counts[confirm.OutcomeFailure]),
		attribute.Int("vantage.verification.unknown", counts[confirm.OutcomeUnknown]))
	if counts[confirm.OutcomeFailure]+counts[confirm.OutcomeUnknown] > 0 {
		span.SetStatus(codes.Error, fmt.Sprintf("%d locations failing, %d unknown", counts[confirm.OutcomeFailure], counts[confirm.OutcomeUnknown]))
	}
	span.End()
}

// verifyDue starts the rounds that are due, once a second.
func (c *Coordinator) verifyDue(ctx context.Context) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		c.update(func(m *confirm.Machine, now time.Time) confirm.Effects { return m.Due(now) })
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// targetStates is the machine's state for the series, sorted by target
// and module. The locations' verdicts of all targets share one array.
func (c *Coordinator) targetStates() []collector.TargetState {
	var out []collector.TargetState
	var verdicts []collector.LocationVerdict
	c.mu.Lock()
	c.machine.EachStanding(func(s *confirm.Standing) {
		if out == nil {
			// Sized once the lock is held: the targets are known then.
			out = make([]collector.TargetState, 0, c.machine.Len())
			verdicts = make([]collector.LocationVerdict, 0, 3*c.machine.Len())
		}
		from := len(verdicts)
		for _, o := range s.Outcomes {
			verdicts = append(verdicts, collector.LocationVerdict{Location: o.Location, Success: o.Success})
		}
		out = append(out, collector.TargetState{Target: s.Key.Target, Module: s.Key.Module, State: string(s.State),
			DownSince: s.DownSince, Flapping: s.Flapping, Locations: verdicts[from:len(verdicts):len(verdicts)]})
	})
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b collector.TargetState) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Module, b.Module))
	})
	c.labels.fill(out)
	return out
}

// targets returns the machine's view of every target.
func (c *Coordinator) targets() []confirm.TargetView {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machine.Targets()
}

// reloader is the one goroutine that reloads the configuration, fed by
// external signals (SIGHUP) and by POST /-/reload.
func (c *Coordinator) reloader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.opts.Reload:
			_ = c.reload()
		case errc := <-c.reloads:
			errc <- c.reload()
		}
	}
}

// reload loads the configuration file again; a configuration that does
// not load leaves the running one in place.
func (c *Coordinator) reload() error {
	conf, err := loadConfig(c.opts.ConfigFile)
	var client *http.Client
	if err == nil {
		client, err = newClient(conf, c.tracing)
	}
	var tokens *apiTokens
	if err == nil {
		tokens, err = newAPITokens(conf.APITokens, c.token)
	}
	if err == nil {
		err = c.events.configure(conf.Events)
	}
	if err != nil {
		c.metrics.reloadSuccess.Set(0)
		c.logger.Error("Reloading the configuration failed; keeping the running one", "err", err)
		return err
	}
	// The old client's keep-alive connections would otherwise stay open
	// until their idle timeout.
	c.client.Swap(client).CloseIdleConnections()
	c.tokens.Store(tokens)
	c.mu.Lock()
	c.machine.Configure(conf)
	c.mu.Unlock()
	c.conf.Store(conf)
	c.maint.mu.Lock()
	if err := c.loadMaintenances(); err != nil {
		c.logger.Error("Reading the maintenance windows failed; keeping the running ones", "err", err)
	}
	c.maint.mu.Unlock()
	c.health.configure(conf)
	c.metrics.reloadSuccess.Set(1)
	c.metrics.reloadTime.SetToCurrentTime()
	c.logger.Info("Configuration reloaded", "locations", len(conf.Locations))
	return nil
}
