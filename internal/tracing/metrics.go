package tracing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// metrics are the series about tracing itself.
type metrics struct {
	reg          prometheus.Registerer
	traces       map[string]prometheus.Counter
	spansDropped map[string]prometheus.Counter
	kept         prometheus.Counter
	exported     prometheus.Counter
	exportFailed prometheus.Counter
}

// newMetrics registers the tracing series with reg; a nil reg keeps them
// unregistered.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	traces := f.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_tracing_traces_total",
		Help: "Traces decided when their root span ended: kept (failed, slow, sampled) or dropped (unsampled), and traces not held because the pending buffer was full (overflow).",
	}, []string{"decision"})
	dropped := f.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_tracing_spans_dropped_total",
		Help: "Spans not exported: their trace was unsampled, their trace hit the span limit (trace_too_large), or their trace was not held (untracked).",
	}, []string{"reason"})
	m := &metrics{
		reg:          reg,
		traces:       map[string]prometheus.Counter{},
		spansDropped: map[string]prometheus.Counter{},
		kept: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_tracing_spans_kept_total",
			Help: "Spans of kept traces handed to the export queue; those neither exported nor failed were dropped by a full queue or are still queued.",
		}),
		exported: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_tracing_spans_exported_total",
			Help: "Spans the OTLP exporter delivered.",
		}),
		exportFailed: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_tracing_spans_export_failed_total",
			Help: "Spans of batches the OTLP exporter failed to deliver (after its own retries).",
		}),
	}
	for _, d := range []string{DecisionFailed, DecisionSlow, DecisionSampled, DecisionUnsampled, DecisionOverflow} {
		m.traces[d] = traces.WithLabelValues(d)
	}
	for _, r := range []string{dropUnsampled, dropTooLarge, dropUntracked} {
		m.spansDropped[r] = dropped.WithLabelValues(r)
	}
	return m
}

func (m *metrics) pendingFunc(fn func() float64) {
	promauto.With(m.reg).NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_tracing_pending_traces",
		Help: "Traces held until their root span ends and the keep decision is made.",
	}, fn)
}

// exportErrorLogInterval spaces out the logs of failed exports.
const exportErrorLogInterval = time.Minute

// countingExporter counts what the OTLP exporter delivers and logs its
// failures, at most once a minute. It reports no error to the batch span
// processor, which would only hand it to OpenTelemetry's global handler.
type countingExporter struct {
	sdktrace.SpanExporter
	m      *metrics
	logger *slog.Logger

	mu         sync.Mutex
	lastLogged time.Time
}

func (c *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		c.m.exported.Add(float64(len(spans)))
		return nil
	}
	c.m.exportFailed.Add(float64(len(spans)))
	c.mu.Lock()
	now := time.Now()
	log := now.Sub(c.lastLogged) >= exportErrorLogInterval
	if log {
		c.lastLogged = now
	}
	c.mu.Unlock()
	if log {
		c.logger.Warn("Exporting traces failed", "spans", len(spans), "err", err)
	}
	return nil
}
