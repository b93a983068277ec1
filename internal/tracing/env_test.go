package tracing

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// OTEL_TRACES_EXPORTER turns tracing on (otlp) or off (none) as the SDK
// specification says; exporters vantage does not ship are an error naming
// the variable.
func TestTracesExporterVariable(t *testing.T) {
	for _, tc := range []struct {
		value, endpoint string
		enabled         bool
		err             string
	}{
		{"", "", false, ""},
		{"", "http://127.0.0.1:4318", true, ""},
		{"otlp", "", true, ""},
		{"none", "http://127.0.0.1:4318", false, ""},
		{"otlp,none", "", false, ""},
		{"zipkin", "", true, `OTEL_TRACES_EXPORTER "zipkin": exporter "zipkin" is not supported; want otlp or none`},
	} {
		t.Setenv("OTEL_TRACES_EXPORTER", tc.value)
		t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", tc.endpoint)
		c := DefaultConfig()
		if got := c.Enabled(); got != tc.enabled {
			t.Errorf("OTEL_TRACES_EXPORTER=%q endpoint %q: enabled %t, want %t", tc.value, tc.endpoint, got, tc.enabled)
		}
		err := c.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || err.Error() != tc.err) {
			t.Errorf("OTEL_TRACES_EXPORTER=%q: Validate() = %v, want %q", tc.value, err, tc.err)
		}
	}
	// The flag wins over the variable.
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	if c := (Config{Endpoint: "http://127.0.0.1:4318"}); !c.Enabled() {
		t.Error("--tracing.endpoint did not turn tracing on with OTEL_TRACES_EXPORTER=none")
	}
}

// OTEL_PROPAGATORS chooses what requests carry: none sends no traceparent.
func TestPropagatorsVariable(t *testing.T) {
	for _, tc := range []struct {
		value      string
		sendsTrace bool
		err        string
	}{
		{"", true, ""},
		{"tracecontext", true, ""},
		{"baggage,tracecontext", true, ""},
		{"none", false, ""},
		{"b3", false, `OTEL_PROPAGATORS "b3": propagator "b3" is not supported; want tracecontext, baggage or none`},
	} {
		t.Setenv("OTEL_PROPAGATORS", tc.value)
		c := DefaultConfig()
		c.SpanExporter = tracetest.NewInMemoryExporter()
		p, err := New(context.Background(), c, prometheus.NewRegistry(), nil)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("OTEL_PROPAGATORS=%q: New() = %v, want %q", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ctx, span := p.Tracer("test").Start(context.Background(), "x")
		h := http.Header{}
		p.Inject(ctx, h)
		span.End()
		if got := h.Get("Traceparent") != ""; got != tc.sendsTrace {
			t.Errorf("OTEL_PROPAGATORS=%q: traceparent %q sent, want sent %t", tc.value, h.Get("Traceparent"), tc.sendsTrace)
		}
		_ = p.Shutdown(context.Background())
	}
}

// Each process has its own service.instance.id, a random UUID, unless
// OTEL_RESOURCE_ATTRIBUTES sets one.
func TestServiceInstanceID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	ids := map[string]bool{}
	for range 2 {
		c := DefaultConfig()
		res, err := newResource(context.Background(), &c)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.Set().Value("service.instance.id")
		if !uuid.MatchString(id.AsString()) {
			t.Errorf("service.instance.id %q is not a version 4 UUID", id.AsString())
		}
		ids[id.AsString()] = true
	}
	if len(ids) != 2 {
		t.Errorf("two resources share service.instance.id %v", ids)
	}
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=ams-1")
	c := DefaultConfig()
	res, err := newResource(context.Background(), &c)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := res.Set().Value("service.instance.id"); !strings.EqualFold(id.AsString(), "ams-1") {
		t.Errorf("service.instance.id %q, want OTEL_RESOURCE_ATTRIBUTES' ams-1", id.AsString())
	}
}
