package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/vantageprobe/vantage/internal/httpspan"
)

// Provider is a program's tracing: an OpenTelemetry TracerProvider whose
// spans go through the tail sampler to the OTLP exporter, or a no-op one
// when tracing is off. A nil *Provider is off.
type Provider struct {
	tp   trace.TracerProvider
	sdk  *sdktrace.TracerProvider // nil when off
	tail *tailSampler
	// prop writes and reads the trace context on HTTP requests
	// (OTEL_PROPAGATORS).
	prop propagation.TextMapPropagator
}

// defaultQueueSize is how many kept spans may wait for export; more are
// dropped by the batch span processor.
const defaultQueueSize = 16384

// Disabled returns a Provider that is off.
func Disabled() *Provider { return &Provider{tp: noop.NewTracerProvider()} }

// New sets tracing up as cfg says. When tracing is off (see
// Config.Enabled) it returns a no-op Provider and registers nothing. reg
// receives the vantage_tracing_* series; logger the export failures.
func New(ctx context.Context, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Provider, error) {
	if !cfg.Enabled() {
		return Disabled(), nil
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	prop, err := propagatorFromEnv()
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, &cfg)
	if err != nil {
		return nil, err
	}
	exp := cfg.SpanExporter
	if exp == nil {
		if exp, err = newSpanExporter(ctx, &cfg); err != nil {
			return nil, fmt.Errorf("tracing: creating the OTLP exporter: %w", err)
		}
	}
	m := newMetrics(reg)
	// The batch processor's queue and batch sizes follow the OTEL_BSP_*
	// variables. Its queue is larger by default than the SDK's 2048 spans:
	// an outage fails thousands of checks at once, and each is kept.
	var bopts []sdktrace.BatchSpanProcessorOption
	if os.Getenv("OTEL_BSP_MAX_QUEUE_SIZE") == "" {
		bopts = append(bopts, sdktrace.WithMaxQueueSize(defaultQueueSize))
	}
	if cfg.BatchTimeout > 0 {
		bopts = append(bopts, sdktrace.WithBatchTimeout(cfg.BatchTimeout))
	}
	batch := sdktrace.NewBatchSpanProcessor(&countingExporter{SpanExporter: exp, m: m, logger: logger}, bopts...)
	tail := newTailSampler(batch, cfg, m)
	sdk := sdktrace.NewTracerProvider(
		// Every span is recorded; the tail sampler decides what is kept.
		// The sampled flag that requests carry is the head decision.
		sdktrace.WithSampler(headSampler{tail}),
		sdktrace.WithResource(res),
		sdktrace.WithSpanProcessor(tail),
	)
	return &Provider{tp: sdk, sdk: sdk, tail: tail, prop: prop}, nil
}

// newResource describes the program: service.name (OTEL_SERVICE_NAME, else
// cfg.ServiceName, else the executable's name), service.version,
// service.instance.id (a random UUID per process), vantage.location when
// known, OTEL_RESOURCE_ATTRIBUTES and the SDK's own.
func newResource(ctx context.Context, cfg *Config) (*resource.Resource, error) {
	name := cfg.ServiceName
	if name == "" {
		name = filepath.Base(os.Args[0])
	}
	attrs := []attribute.KeyValue{semconv.ServiceName(name), semconv.ServiceVersion(cfg.ServiceVersion), semconv.ServiceInstanceID(newInstanceID())}
	if cfg.Location != "" {
		attrs = append(attrs, AttrLocation.String(cfg.Location))
	}
	// Later sources override earlier ones: the environment wins over the
	// defaults given here.
	res, err := resource.New(ctx,
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && (res == nil || !errors.Is(err, resource.ErrPartialResource)) {
		return nil, fmt.Errorf("tracing: building the resource: %w", err)
	}
	return res, nil
}

// Enabled reports whether tracing is on. Callers skip building span names
// and attributes when it is off, so tracing costs nothing then.
func (p *Provider) Enabled() bool { return p != nil && p.sdk != nil }

// TracerProvider returns the OpenTelemetry TracerProvider (no-op when off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p == nil || p.tp == nil {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Tracer returns a named tracer of the provider.
func (p *Provider) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return p.TracerProvider().Tracer(name, opts...)
}

// Kept reports whether sc is a local root span that ended recently (one of
// the last few thousand kept) and whose trace was kept. Call it right after
// ending the root span, e.g. to attach the trace ID as an exemplar only to
// traces that can be found.
func (p *Provider) Kept(sc trace.SpanContext) bool {
	if !p.Enabled() || !sc.IsValid() {
		return false
	}
	return p.tail.wasKept(sc.SpanID())
}

// Propagator returns the propagators of OTEL_PROPAGATORS (by default W3C
// trace context and baggage); nil when tracing is off.
func (p *Provider) Propagator() propagation.TextMapPropagator {
	if !p.Enabled() {
		return nil
	}
	return p.prop
}

// Inject writes the trace context of the span in ctx into h (W3C
// traceparent and tracestate, as OTEL_PROPAGATORS says). It writes nothing
// when tracing is off or ctx has no span.
func (p *Provider) Inject(ctx context.Context, h http.Header) {
	if !p.Enabled() || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	p.prop.Inject(ctx, propagation.HeaderCarrier(h))
}

// Extract returns ctx carrying the remote span context of h's traceparent
// header, for a span started from it to be that span's child. When tracing
// is off it returns ctx unchanged.
func (p *Provider) Extract(ctx context.Context, h http.Header) context.Context {
	if !p.Enabled() {
		return ctx
	}
	return p.prop.Extract(ctx, propagation.HeaderCarrier(h))
}

// Transport returns a round tripper that sends each request inside a
// CLIENT span, a child of the span in the request's context, with the HTTP
// client semantic conventions' attributes plus those attrs returns for the
// request (nil: none), and the client span's trace context in its headers
// (internal/httpspan). base sends the requests (http.DefaultTransport when
// nil). When tracing is off it returns base itself.
func (p *Provider) Transport(base http.RoundTripper, attrs func(*http.Request) []attribute.KeyValue) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !p.Enabled() {
		return base
	}
	return &clientSpanTransport{p: p, base: base, attrs: attrs}
}

// clientTracerName is the instrumentation scope of the client spans of
// Transport.
const clientTracerName = "github.com/vantageprobe/vantage/internal/tracing"

type clientSpanTransport struct {
	p     *Provider
	base  http.RoundTripper
	attrs func(*http.Request) []attribute.KeyValue
}

func (t *clientSpanTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var extra []attribute.KeyValue
	if t.attrs != nil {
		extra = t.attrs(req)
	}
	return httpspan.RoundTrip(t.p.Tracer(clientTracerName), t.p.prop, req, t.base.RoundTrip, extra...)
}

// ForceFlush exports the spans of traces already kept.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown exports what was kept and stops tracing, by ctx's deadline.
// Traces of checks still running are dropped. Spans started afterwards are
// not recorded.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}
