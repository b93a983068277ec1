package tracing

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// memProvider is a Provider whose kept spans go to an in-memory exporter.
type memProvider struct {
	*Provider
	mem *tracetest.InMemoryExporter
	reg *prometheus.Registry
}

func newMemProvider(tb testing.TB, edit func(*Config)) *memProvider {
	tb.Helper()
	c := DefaultConfig()
	c.ServiceName = "vantage-test"
	mem := tracetest.NewInMemoryExporter()
	c.SpanExporter = mem
	if edit != nil {
		edit(&c)
	}
	reg := prometheus.NewRegistry()
	p, err := New(context.Background(), c, reg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return &memProvider{Provider: p, mem: mem, reg: reg}
}

// exported flushes the kept spans and returns them.
func (m *memProvider) exported(tb testing.TB) tracetest.SpanStubs {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.ForceFlush(ctx); err != nil {
		tb.Fatal(err)
	}
	return m.mem.GetSpans()
}

func (m *memProvider) traces(tb testing.TB, decision string) float64 {
	tb.Helper()
	return testutil.ToFloat64(m.tail.m.traces[decision])
}

func (m *memProvider) dropped(tb testing.TB, reason string) float64 {
	tb.Helper()
	return testutil.ToFloat64(m.tail.m.spansDropped[reason])
}

// check starts a root span with two children, ends the children, and
// returns the root, still open.
func (m *memProvider) check(ctx context.Context, name string, start time.Time) trace.Span {
	tr := m.Tracer("test")
	ctx, root := tr.Start(ctx, name, trace.WithTimestamp(start))
	for _, phase := range []string{"connect", "processing"} {
		_, s := tr.Start(ctx, phase, trace.WithTimestamp(start))
		s.End(trace.WithTimestamp(start.Add(time.Millisecond)))
	}
	return root
}

func names(spans tracetest.SpanStubs) string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

func TestTailKeepsFailedTraceWhole(t *testing.T) {
	m := newMemProvider(t, func(c *Config) { c.SampleRatio = 0 })
	root := m.check(context.Background(), "check failing", time.Now())
	if got := m.exported(t); len(got) != 0 {
		t.Fatalf("spans exported before the root ended: %s", names(got))
	}
	root.SetStatus(codes.Error, "connect_refused")
	root.End()

	got := m.exported(t)
	if names(got) != "connect,processing,check failing" {
		t.Fatalf("exported %q, want the children then the root", names(got))
	}
	for _, s := range got[:2] {
		if s.Parent.SpanID() != got[2].SpanContext.SpanID() || s.SpanContext.TraceID() != got[2].SpanContext.TraceID() {
			t.Errorf("span %s is not a child of the root", s.Name)
		}
	}
	if v := m.traces(t, DecisionFailed); v != 1 {
		t.Errorf("traces{decision=failed} = %v, want 1", v)
	}
	if !m.Kept(root.SpanContext()) {
		t.Error("Kept = false for a kept trace")
	}
}

func TestTailKeepsSlowTrace(t *testing.T) {
	m := newMemProvider(t, func(c *Config) { c.SampleRatio, c.SlowThreshold = 0, 500*time.Millisecond })
	start := time.Now().Add(-time.Second)
	slow := m.check(context.Background(), "check slow", start)
	slow.End(trace.WithTimestamp(start.Add(600 * time.Millisecond)))
	fast := m.check(context.Background(), "check fast", start)
	fast.End(trace.WithTimestamp(start.Add(400 * time.Millisecond)))

	if got := names(m.exported(t)); got != "connect,processing,check slow" {
		t.Errorf("exported %q, want only the slow check's trace", got)
	}
	if s, u := m.traces(t, DecisionSlow), m.traces(t, DecisionUnsampled); s != 1 || u != 1 {
		t.Errorf("traces slow=%v unsampled=%v, want 1 and 1", s, u)
	}
	if v := m.dropped(t, dropUnsampled); v != 3 {
		t.Errorf("spans dropped as unsampled = %v, want 3", v)
	}
	if m.Kept(fast.SpanContext()) || !m.Kept(slow.SpanContext()) {
		t.Error("Kept does not match the decisions")
	}
}

// The ratio keeps exactly the traces sdktrace.TraceIDRatioBased would, so
// every process with the same ratio keeps the same traces.
func TestTailSamplesFastSuccessfulTracesByRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.1, 0.5, 1} {
		m := newMemProvider(t, func(c *Config) { c.SampleRatio = ratio })
		ref := sdktrace.TraceIDRatioBased(ratio)
		const n = 1000
		want := map[trace.TraceID]bool{}
		for range n {
			root := m.check(context.Background(), "check", time.Now())
			root.End()
			id := root.SpanContext().TraceID()
			if ref.ShouldSample(sdktrace.SamplingParameters{TraceID: id}).Decision == sdktrace.RecordAndSample {
				want[id] = true
			}
		}
		got := map[trace.TraceID]int{}
		for _, s := range m.exported(t) {
			got[s.SpanContext.TraceID()]++
		}
		if len(got) != len(want) {
			t.Errorf("ratio %g: kept %d traces, TraceIDRatioBased keeps %d", ratio, len(got), len(want))
		}
		for id, spans := range got {
			if !want[id] || spans != 3 {
				t.Errorf("ratio %g: trace %s kept with %d spans; want only chosen traces, whole", ratio, id, spans)
			}
		}
		if ratio == 0.1 && (len(got) < 60 || len(got) > 140) {
			t.Errorf("ratio 0.1 kept %d of %d traces", len(got), n)
		}
		if v := m.traces(t, DecisionSampled); int(v) != len(want) {
			t.Errorf("ratio %g: traces{decision=sampled} = %v, want %d", ratio, v, len(want))
		}
	}
}

func TestTailCapsPendingTraces(t *testing.T) {
	m := newMemProvider(t, func(c *Config) { c.MaxPendingTraces = 2 })
	var roots []trace.Span
	for range 3 {
		roots = append(roots, m.check(context.Background(), "check", time.Now()))
	}
	if v := m.tail.pendingTraces(); v != 2 {
		t.Errorf("pending traces = %v, want the cap, 2", v)
	}
	for _, r := range roots {
		r.SetStatus(codes.Error, "timeout")
		r.End()
	}
	got := m.exported(t)
	if len(got) != 6 {
		t.Errorf("exported %d spans (%s), want the 2 held traces of 3 spans", len(got), names(got))
	}
	if v := m.traces(t, DecisionOverflow); v != 1 {
		t.Errorf("traces{decision=overflow} = %v, want 1", v)
	}
	if v := m.dropped(t, dropUntracked); v != 3 {
		t.Errorf("spans dropped as untracked = %v, want the overflowed trace's 3", v)
	}
	if v := m.tail.pendingTraces(); v != 0 {
		t.Errorf("pending traces after the checks ended = %v, want 0", v)
	}
	// The buffer has room again.
	r := m.check(context.Background(), "check", time.Now())
	r.SetStatus(codes.Error, "timeout")
	r.End()
	if got := m.exported(t); len(got) != 9 {
		t.Errorf("after the buffer emptied, exported %d spans in all, want 9", len(got))
	}
	want := `
# HELP vantage_tracing_pending_traces Traces held until their root span ends and the keep decision is made.
# TYPE vantage_tracing_pending_traces gauge
vantage_tracing_pending_traces 0
# HELP vantage_tracing_spans_exported_total Spans the OTLP exporter delivered.
# TYPE vantage_tracing_spans_exported_total counter
vantage_tracing_spans_exported_total 9
# HELP vantage_tracing_spans_kept_total Spans of kept traces handed to the export queue; those neither exported nor failed were dropped by a full queue or are still queued.
# TYPE vantage_tracing_spans_kept_total counter
vantage_tracing_spans_kept_total 9
# HELP vantage_tracing_traces_total Traces decided when their root span ended: kept (failed, slow, sampled) or dropped (unsampled), and traces not held because the pending buffer was full (overflow).
# TYPE vantage_tracing_traces_total counter
vantage_tracing_traces_total{decision="failed"} 3
vantage_tracing_traces_total{decision="overflow"} 1
vantage_tracing_traces_total{decision="sampled"} 0
vantage_tracing_traces_total{decision="slow"} 0
vantage_tracing_traces_total{decision="unsampled"} 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want),
		"vantage_tracing_pending_traces", "vantage_tracing_spans_exported_total", "vantage_tracing_spans_kept_total", "vantage_tracing_traces_total"); err != nil {
		t.Error(err)
	}
}

func TestTailCapsSpansPerTrace(t *testing.T) {
	m := newMemProvider(t, func(c *Config) { c.MaxSpansPerTrace = 4 })
	tr := m.Tracer("test")
	ctx, root := tr.Start(context.Background(), "check")
	for range 6 {
		_, s := tr.Start(ctx, "phase")
		s.End()
	}
	root.SetStatus(codes.Error, "timeout")
	root.End()
	if got := names(m.exported(t)); got != "phase,phase,phase,check" {
		t.Errorf("exported %q, want 3 children and the root", got)
	}
	if v := m.dropped(t, dropTooLarge); v != 3 {
		t.Errorf("spans dropped as trace_too_large = %v, want 3", v)
	}
}

// A span whose parent is remote (a traceparent header) is a local root: its
// trace is decided when it ends, and keeps the remote trace ID and parent.
func TestTailRemoteParentStartsLocalTrace(t *testing.T) {
	m := newMemProvider(t, func(c *Config) { c.SampleRatio = 0 })
	h := http.Header{}
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	ctx := m.Extract(context.Background(), h)
	root := m.check(ctx, "check remote", time.Now())
	root.SetStatus(codes.Error, "status_code")
	root.End()
	got := m.exported(t)
	if len(got) != 3 {
		t.Fatalf("exported %q, want the local trace", names(got))
	}
	r := got[2]
	if r.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || r.Parent.SpanID().String() != "b7ad6b7169203331" || !r.Parent.IsRemote() {
		t.Errorf("root: trace %s parent %s (remote %v), want the traceparent's", r.SpanContext.TraceID(), r.Parent.SpanID(), r.Parent.IsRemote())
	}
}

func TestTailLateChildFollowsDecision(t *testing.T) {
	for _, failed := range []bool{true, false} {
		m := newMemProvider(t, func(c *Config) { c.SampleRatio = 0 })
		tr := m.Tracer("test")
		ctx, root := tr.Start(context.Background(), "check")
		_, late := tr.Start(ctx, "late")
		if failed {
			root.SetStatus(codes.Error, "timeout")
		}
		root.End()
		late.End()
		want := ""
		if failed {
			want = "check,late"
		}
		if got := names(m.exported(t)); got != want {
			t.Errorf("failed=%v: exported %q, want %q", failed, got, want)
		}
		if v := m.tail.pendingTraces(); v != 0 {
			t.Errorf("failed=%v: pending traces = %v once every span ended", failed, v)
		}
	}
}

// keepingExporter keeps its spans at Shutdown, which InMemoryExporter clears.
type keepingExporter struct{ *tracetest.InMemoryExporter }

func (keepingExporter) Shutdown(context.Context) error { return nil }

func TestShutdownExportsKeptSpans(t *testing.T) {
	mem := tracetest.NewInMemoryExporter()
	c := DefaultConfig()
	c.SpanExporter = keepingExporter{mem}
	p, err := New(context.Background(), c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, s := p.Tracer("test").Start(context.Background(), "check")
	s.SetStatus(codes.Error, "timeout")
	s.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := mem.GetSpans(); len(got) != 1 {
		t.Errorf("after Shutdown %d spans exported, want 1", len(got))
	}
	// Spans after shutdown are not recorded.
	_, s = p.Tracer("test").Start(context.Background(), "after")
	if s.IsRecording() {
		t.Error("span recording after Shutdown")
	}
}
