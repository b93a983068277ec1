// Package prober holds one implementation of each probe protocol (http, tcp,
// dns, icmp, grpc). The same code serves /probe, the scheduler and the
// coordinator's verification requests: a prober returns a typed
// result.Result and every consumer (metrics, reports, traces) reads that
// one value.
package prober

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"go.opentelemetry.io/otel/propagation"

	"github.com/vantageprobe/vantage/config"
)

// Params are the per-probe inputs besides the target.
type Params struct {
	// Hostname overrides the Host header and TLS server name of an http
	// probe, and the TLS server name of a tcp probe unless its tls_config
	// names one (the /probe "hostname" parameter).
	Hostname string
	// Logger receives the probe's step-by-step log; nil discards it.
	Logger *slog.Logger
	// Tracing makes the probe record Result.Timeline and send the W3C
	// trace context of the span in its context (traceparent) with every
	// HTTP request. Off, the probe sends no such header, as
	// blackbox_exporter, and records no timeline.
	Tracing bool
	// Timeout is the time the caller gave the probe, exported as
	// probe_timeout_seconds; 0 takes it from the context's deadline.
	Timeout time.Duration
	// Propagator writes the trace context on HTTP requests when tracing
	// (OTEL_PROPAGATORS); nil: W3C trace context.
	Propagator propagation.TextMapPropagator
}

// discardLogger is the logger of a probe whose caller gives none.
var discardLogger = slog.New(slog.DiscardHandler)

// probeFunc runs one probe and records what it found in r. It records a
// failure with r.Fail; a probe that records none succeeded. It must return
// by the context's deadline and leave no goroutine behind.
type probeFunc func(ctx context.Context, target string, p Params, r *result.Result)

// Module is a configured module prepared for probing: everything that can be
// built once per configuration load (TLS configs, request templates,
// compiled checks) is built here, not per probe.
type Module struct {
	Name   string
	Config config.Module
	probe  probeFunc
	// start, for the probers that can wait for an answer off the caller's
	// stack (ProbeAsync), begins a probe: nil when it ran to its end.
	start startFunc
}

// startFunc begins a probe as probeFunc would run it, returning what it
// waits for, or nil when the probe has ended.
type startFunc func(ctx context.Context, target string, p Params, r *result.Result) *waiting

// builders prepare a module's probe function, by prober name.
var builders = map[string]func(config.Module) (probeFunc, error){
	"http":      newHTTPProbe,
	"tcp":       newTCPProbe,
	"dns":       newDNSProbe,
	"icmp":      newICMPProbe,
	"grpc":      newGRPCProbe,
	"unix":      newUnixProbe,
	"websocket": newWebsocketProbe,

	"http_steps": newHTTPStepsProbe,
}

// starters prepare, in builders' place, the probers that can also begin a
// probe that waits off the caller's stack (ProbeAsync).
var starters = map[string]func(config.Module) (probeFunc, startFunc, error){
	"http": newHTTPProbeStart,
}

// Prepare builds a Module from its configuration.
func Prepare(name string, m config.Module) (*Module, error) {
	if build, ok := starters[m.Prober]; ok {
		fn, start, err := build(m)
		if err != nil {
			return nil, fmt.Errorf("module %q: %w", name, err)
		}
		return &Module{Name: name, Config: m, probe: fn, start: start}, nil
	}
	build, ok := builders[m.Prober]
	if !ok {
		return nil, fmt.Errorf("module %q: unknown prober %q", name, m.Prober)
	}
	fn, err := build(m)
	if err != nil {
		return nil, fmt.Errorf("module %q: %w", name, err)
	}
	return &Module{Name: name, Config: m, probe: fn}, nil
}

// PrepareAll prepares every module of a configuration.
func PrepareAll(c *config.Config) (map[string]*Module, error) {
	names := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make(map[string]*Module, len(names))
	for _, n := range names {
		m, err := Prepare(n, c.Modules[n])
		if err != nil {
			return nil, err
		}
		out[n] = m
	}
	return out, nil
}

// CheckHostname reports why the /probe hostname parameter cannot be used
// with this module: an http module whose headers set another Host, as
// blackbox_exporter refuses it.
func (m *Module) CheckHostname(hostname string) error {
	if m.Config.Prober != "http" || hostname == "" {
		return nil
	}
	for name, value := range m.Config.HTTP.Headers {
		if http.CanonicalHeaderKey(name) == "Host" && value != hostname {
			return fmt.Errorf("host header defined both in module configuration (%s) and with URL-parameter 'hostname' (%s)", value, hostname)
		}
	}
	return nil
}

// Probe probes target once. The caller's context carries the deadline (the
// scrape timeout or the scheduler's per-check deadline); the module's own
// timeout is applied on top of it when set.
func (m *Module) Probe(ctx context.Context, target string, p Params) *result.Result {
	if p.Logger == nil {
		p.Logger = discardLogger
	}
	ctx, r, cancel := m.begin(ctx, p)
	defer cancel()
	m.guard(r, p, func() { m.probe(ctx, target, p, r) })
	m.end(r, p)
	return r
}

// ProbeAsync probes target once, as Probe does, and calls done with the
// result. A probe that waits for its target's answer (plain HTTP on the
// direct path) returns while it waits: a goroutine of its own, at a
// shallow depth, waits, and resume then runs the rest of the probe on a
// goroutine of the caller's (nil: on the waiting one). Any other probe,
// and one that logs or traces, runs to its end before ProbeAsync returns.
func (m *Module) ProbeAsync(ctx context.Context, target string, p Params, resume func(func()), done func(*result.Result)) {
	if m.start == nil || p.Logger != nil || p.Tracing {
		done(m.Probe(ctx, target, p))
		return
	}
	p.Logger = discardLogger
	ctx, r, cancel := m.begin(ctx, p)
	finish := func() {
		cancel()
		m.end(r, p)
		done(r)
	}
	var w *waiting
	m.guard(r, p, func() { w = m.start(ctx, target, p, r) })
	if w == nil {
		finish()
		return
	}
	rest := func() {
		m.guard(r, p, w.rest)
		finish()
	}
	if resume == nil {
		resume = func(f func()) { f() }
	}
	// Made here: the waiting goroutine allocates nothing, so it never
	// assists the garbage collector with the little stack it has.
	go func() {
		w.wait()
		resume(rest)
	}()
}

// waiting is a probe waiting for its target: wait blocks until the answer
// begins or the probe's context ends, rest finishes the probe.
type waiting struct {
	wait, rest func()
}

// begin applies the module's timeout to ctx and starts the result.
func (m *Module) begin(ctx context.Context, p Params) (context.Context, *result.Result, context.CancelFunc) {
	cancel := context.CancelFunc(func() {})
	// The module's timeout, unless the caller's deadline comes first (the
	// scheduler's per-check deadline is the module's timeout): the context
	// would end at the same moment, and a derived one costs a registration
	// with its parent on every check.
	if dl, ok := ctx.Deadline(); m.Config.Timeout > 0 && (!ok || time.Until(dl) > m.Config.Timeout) {
		ctx, cancel = context.WithTimeout(ctx, m.Config.Timeout)
	}
	r := result.New(m.Config.Prober, time.Now(), p.Tracing)
	r.Timeout = p.Timeout
	// The context's deadline, to the millisecond, when it is shorter (the
	// module's timeout) or the caller named none.
	if deadline, ok := ctx.Deadline(); ok {
		if left := deadline.Sub(r.Start).Round(time.Millisecond); r.Timeout <= 0 || left < r.Timeout-time.Millisecond {
			r.Timeout = left
		}
	}
	return ctx, r, cancel
}

// guard runs f, a step of the probe, turning a panic into the probe's
// failure.
func (m *Module) guard(r *result.Result, p Params, f func()) {
	defer func() {
		if v := recover(); v != nil {
			p.Logger.Error("Prober panicked", "err", v, "stack", string(debug.Stack()))
			r.Fail(result.ReasonInternalError, "prober panicked: %v", v)
		}
	}()
	f()
}

// end completes the result of a probe that ran.
func (m *Module) end(r *result.Result, p Params) {
	r.Duration = time.Since(r.Start)
	r.Success = r.Reason == result.ReasonNone
	if r.Success {
		p.Logger.Info("Probe succeeded", "duration_seconds", r.Duration.Seconds())
	} else {
		p.Logger.Error("Probe failed", "reason", r.Reason, "err", r.Error, "duration_seconds", r.Duration.Seconds())
	}
}
