package exporter

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/prober/result"
)

// What asked for a check, as its span's vantage.check.source says.
const (
	sourceScheduler = "scheduler"
	sourceCanary    = "canary"
	sourceProbe     = "probe"
	sourceAPI       = "api"
)

// tracerName is the instrumentation scope of the check spans.
const tracerName = "github.com/vantageprobe/vantage/exporter"

// checkTracer makes the spans of checks: one span per check, named
// "check <module>", with a child span per measured phase of each attempt.
// Everything it does is skipped when tracing is off.
type checkTracer struct {
	p        *tracing.Provider
	tracer   trace.Tracer
	location string
}

func newCheckTracer(p *tracing.Provider, location string) *checkTracer {
	return &checkTracer{p: p, tracer: p.Tracer(tracerName), location: location}
}

func (ct *checkTracer) enabled() bool { return ct != nil && ct.p.Enabled() }

// checkSpan is the span of one check in progress. A nil *checkSpan (tracing
// off) does nothing.
type checkSpan struct {
	ct       *checkTracer
	span     trace.Span
	start    time.Time // the span's start, with its monotonic reading
	target   string
	server   bool // a SERVER span: the check answers an HTTP request
	attempts int  // attempts recorded; they run one after the other
}

type checkSpanKey struct{}

// start opens the span of a check of target with module. With tracing off
// it returns ctx unchanged and a nil span, and allocates nothing.
func (ct *checkTracer) start(ctx context.Context, source, module, target string, kind trace.SpanKind) (context.Context, *checkSpan) {
	if !ct.enabled() {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		tracing.AttrTarget.String(target),
		tracing.AttrModule.String(module),
		tracing.AttrSource.String(source),
	}
	if ct.location != "" {
		attrs = append(attrs, tracing.AttrLocation.String(ct.location))
	}
	start := time.Now()
	ctx, span := ct.tracer.Start(ctx, "check "+module, trace.WithTimestamp(start), trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	cs := &checkSpan{ct: ct, span: span, start: start, target: target, server: kind == trace.SpanKindServer}
	return context.WithValue(ctx, checkSpanKey{}, cs), cs
}

// serving records on a server span the request it answers, as the HTTP
// server semantic conventions name it: method, route, path, scheme,
// server address and port, client address, user agent.
func (cs *checkSpan) serving(r *http.Request, route string) {
	if cs == nil {
		return
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.HTTPRoute(route),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme(scheme),
	}
	if host, port, err := net.SplitHostPort(r.Host); err == nil {
		attrs = append(attrs, semconv.ServerAddress(host))
		if n, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.ServerPort(n))
		}
	} else if r.Host != "" {
		attrs = append(attrs, semconv.ServerAddress(r.Host))
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.ClientAddress(host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	cs.span.SetAttributes(attrs...)
}

// phaseAttributes are the semantic conventions' attributes of a phase
// span: the name looked up (dns.question.name) in the resolve phase, the
// negotiated TLS version in the tls phase.
func phaseAttributes(phase, target string, r *result.Result) []attribute.KeyValue {
	switch phase {
	case "resolve":
		if host := targetHost(target); host != "" && net.ParseIP(host) == nil {
			return []attribute.KeyValue{semconv.DNSQuestionName(host)}
		}
	case "tls":
		if r.TLS != nil {
			if name, v, ok := strings.Cut(r.TLS.Version, " "); ok {
				// "TLS 1.3" → tls.protocol.name tls, version 1.3
				return []attribute.KeyValue{semconv.TLSProtocolNameKey.String(strings.ToLower(name)), semconv.TLSProtocolVersion(v)}
			}
		}
	}
	return nil
}

// targetHost is the host name of a target: a URL's host, a host:port's
// host, or the target itself.
func targetHost(target string) string {
	if strings.Contains(target, "://") {
		if u, err := url.Parse(target); err == nil {
			return u.Hostname()
		}
		return ""
	}
	if host, _, err := net.SplitHostPort(target); err == nil {
		return host
	}
	return target
}

// checkSpanFrom returns the span of the check ctx belongs to, nil for none.
func checkSpanFrom(ctx context.Context) *checkSpan {
	cs, _ := ctx.Value(checkSpanKey{}).(*checkSpan)
	return cs
}

// attempt records one run of the prober: a child span of the check for each
// phase it measured, with the phase's real start and end, and an "attempt"
// event on the check span.
func (cs *checkSpan) attempt(r *result.Result) {
	if cs == nil || r == nil {
		return
	}
	cs.attempts++
	n := cs.attempts
	parent := trace.ContextWithSpan(context.Background(), cs.span)
	rStart := cs.at(r.Start)
	for _, pt := range r.Timeline {
		start := rStart.Add(pt.Start)
		_, s := cs.ct.tracer.Start(parent, pt.Name, trace.WithTimestamp(start), trace.WithAttributes(
			append(phaseAttributes(pt.Name, cs.target, r),
				tracing.AttrPhase.String(pt.Name),
				tracing.AttrAttempt.Int(n),
			)...))
		s.End(trace.WithTimestamp(start.Add(pt.Duration)))
	}
	attrs := []attribute.KeyValue{tracing.AttrAttempt.Int(n), tracing.AttrSuccess.Bool(r.Success)}
	if !r.Success {
		attrs = append(attrs, tracing.AttrFailureReason.String(string(r.Reason)))
	}
	cs.span.AddEvent("attempt", trace.WithTimestamp(rStart.Add(r.Duration)), trace.WithAttributes(attrs...))
}

// at is t on the check span's clock: the span's wall-clock start plus the
// monotonic time since. The SDK ends a span the same way, so a phase that
// ended before the check did also ends before it in the trace, even when
// the wall clock was adjusted in between.
func (cs *checkSpan) at(t time.Time) time.Time { return cs.start.Add(t.Sub(cs.start)) }

// end closes the check span with the check's final result (nil when the
// check was abandoned) and returns the check's trace ID when its trace was
// kept, "" otherwise.
func (cs *checkSpan) end(r *result.Result, attempts int) string {
	if cs == nil {
		return ""
	}
	cs.span.SetAttributes(tracing.AttrAttempts.Int(attempts))
	if r != nil {
		// The target's HTTP status is on the probe's client spans. A
		// server span reports its own answer: the check ran and its
		// result was returned (200), so a target that failed the check
		// leaves the span's status unset; the tail sampler keeps the
		// trace by vantage.check.success.
		attrs := []attribute.KeyValue{tracing.AttrProber.String(r.Prober), tracing.AttrSuccess.Bool(r.Success)}
		if cs.server {
			attrs = append(attrs, semconv.HTTPResponseStatusCode(http.StatusOK))
		}
		if !r.Success {
			attrs = append(attrs, tracing.AttrFailureReason.String(string(r.Reason)))
			if !cs.server {
				attrs = append(attrs, semconv.ErrorTypeKey.String(string(r.Reason)))
				cs.span.SetStatus(codes.Error, string(r.Reason)+": "+r.Error)
			}
		}
		cs.span.SetAttributes(attrs...)
	}
	cs.span.End()
	sc := cs.span.SpanContext()
	if !cs.ct.p.Kept(sc) {
		return ""
	}
	return sc.TraceID().String()
}

// observeCheck brackets a scheduled check, retries included, with its span;
// the scheduler calls it only when tracing is on.
func (e *Exporter) observeCheck(ctx context.Context, t *scheduler.Target) (context.Context, func(*scheduler.Outcome)) {
	source := sourceScheduler
	if t.Canary {
		source = sourceCanary
	}
	ctx, cs := e.tracer.start(ctx, source, t.Module, t.Target, trace.SpanKindInternal)
	return ctx, func(o *scheduler.Outcome) {
		o.TraceID = cs.end(o.Result, o.Attempts)
	}
}
