package exporter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"go.opentelemetry.io/otel/trace"
	yaml "go.yaml.in/yaml/v3"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/internal/webserver"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// defaultScrapeTimeout applies when Prometheus sends no timeout header.
const defaultScrapeTimeout = 120 * time.Second

// probeTimeout derives a probe's timeout as blackbox_exporter does: the
// scrape timeout header minus the offset, capped by the module's timeout.
func probeTimeout(r *http.Request, moduleTimeout, offset time.Duration) (time.Duration, error) {
	scrape, ok, err := webserver.ScrapeTimeout(r.Header)
	if err != nil {
		return 0, err
	}
	if !ok {
		scrape = defaultScrapeTimeout
	}
	limit := scrape - offset
	if moduleTimeout > 0 && (moduleTimeout < limit || limit <= 0) {
		return moduleTimeout, nil
	}
	if limit <= 0 {
		// The offset swallowed the whole scrape timeout; probe for what is left.
		return scrape, nil
	}
	return limit, nil
}

// resultCollector exposes one probe result as const metrics.
type resultCollector struct{ result *result.Result }

func (c resultCollector) Describe(chan<- *prometheus.Desc) {}

func (c resultCollector) Collect(ch chan<- prometheus.Metric) {
	c.result.Samples(func(s result.Sample) {
		ch <- collector.ConstMetric(s)
	})
}

func (e *Exporter) handleProbe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st := e.config.get()
	moduleName := q.Get("module")
	if moduleName == "" {
		moduleName = "http_2xx"
	}
	mod, ok := st.modules[moduleName]
	if !ok {
		http.Error(w, fmt.Sprintf("Unknown module %q", moduleName), http.StatusBadRequest)
		e.logger.Debug("Unknown module", "module", moduleName)
		return
	}
	target := q.Get("target")
	if target == "" {
		http.Error(w, "Target parameter is missing", http.StatusBadRequest)
		return
	}
	if err := mod.CheckHostname(q.Get("hostname")); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	timeout, err := probeTimeout(r, mod.Config.Timeout, e.opts.TimeoutOffset)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	var logs bytes.Buffer
	// Every step goes to the debug output, and to the program's log at
	// the level --log.prober names, as blackbox_exporter does.
	handlers := []slog.Handler{slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})}
	if level, ok, _ := e.opts.probeLogLevel(); ok {
		handlers = append(handlers, atLevel{e.logger.With("component", "probe").Handler(), level})
	}
	logger := slog.New(slog.NewMultiHandler(handlers...)).With("module", moduleName, "target", target)
	logger.Info("Beginning probe", "probe", mod.Config.Prober, "timeout_seconds", timeout.Seconds())

	ctx, span := e.tracer.start(ctx, sourceProbe, moduleName, target, trace.SpanKindServer)
	span.serving(r, "/probe")
	result := mod.Probe(ctx, target, prober.Params{Hostname: q.Get("hostname"), Logger: logger, Tracing: span != nil, Timeout: timeout, Propagator: e.tracing.Propagator()})
	span.attempt(result)
	span.end(result, 1)
	e.metrics.probes.WithLabelValues(moduleName, resultLabel(result.Success)).Inc()

	reg := prometheus.NewRegistry()
	reg.MustRegister(resultCollector{result})
	debug := debugOutput(logs.String(), reg, mod)
	e.history.add(&probeRecord{Module: moduleName, Target: target, Time: result.Start, Result: result, Debug: debug, Success: result.Success})

	if q.Get("debug") == "true" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(debug))
		return
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(e.logger.Handler(), slog.LevelError)}).ServeHTTP(w, r)
}

func resultLabel(success bool) string {
	if success {
		return "success"
	}
	return "failure"
}

// debugOutput is what /probe?debug=true shows: the probe's logs, the series
// it produced and the module it ran with.
func debugOutput(logs string, reg *prometheus.Registry, mod *prober.Module) string {
	var b strings.Builder
	b.WriteString("Logs for the probe:\n")
	b.WriteString(logs)
	b.WriteString("\n\n\nMetrics that would have been returned:\n")
	mfs, err := reg.Gather()
	if err != nil {
		fmt.Fprintf(&b, "Error gathering metrics: %s\n", err)
	}
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			fmt.Fprintf(&b, "Error encoding metric %s: %s\n", mf.GetName(), err)
		}
	}
	b.WriteString("\n\n\nModule configuration:\n")
	out, err := yaml.Marshal(mod.Config)
	if err != nil {
		fmt.Fprintf(&b, "Error marshalling config: %s\n", err)
	}
	b.Write(out)
	return b.String()
}

// atLevel passes every record on at one level, --log.prober's, as
// blackbox_exporter does: the program's --log.level then decides whether
// a probe's lines show.
type atLevel struct {
	h     slog.Handler
	level slog.Level
}

func (a atLevel) Enabled(ctx context.Context, _ slog.Level) bool { return a.h.Enabled(ctx, a.level) }

func (a atLevel) Handle(ctx context.Context, r slog.Record) error {
	r.Level = a.level
	return a.h.Handle(ctx, r)
}

func (a atLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return atLevel{a.h.WithAttrs(attrs), a.level}
}

func (a atLevel) WithGroup(name string) slog.Handler { return atLevel{a.h.WithGroup(name), a.level} }
