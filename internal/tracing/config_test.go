package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// otelEnv lists the variables these tests read or set; clearEnv blanks them
// so the machine's environment cannot leak in.
var otelEnv = []string{
	"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
}

func TestEnabled(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		endpoint string
		want     bool
	}{
		{name: "nothing set", want: false},
		{name: "OTEL_EXPORTER_OTLP_ENDPOINT", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, want: true},
		{name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, want: true},
		{name: "flag", endpoint: "c:4317", want: true},
		{name: "only a protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: false},
		{name: "SDK disabled", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, want: false},
		{name: "SDK disabled, flag given", env: map[string]string{"OTEL_SDK_DISABLED": "TRUE"}, endpoint: "c:4317", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c := Config{Endpoint: tc.endpoint}
			if got := c.Enabled(); got != tc.want {
				t.Errorf("Enabled() = %v, want %v", got, tc.want)
			}
		})
	}
	var nilConfig *Config
	if nilConfig.Enabled() {
		t.Error("a nil Config is enabled")
	}
}

func TestValidate(t *testing.T) {
	clearEnv(t)
	for _, tc := range []struct {
		name string
		edit func(*Config)
		env  map[string]string
		want string
	}{
		{name: "defaults", edit: func(*Config) {}},
		{name: "bad protocol flag", edit: func(c *Config) { c.Protocol = "http/json" },
			want: `--tracing.protocol "http/json" is not supported; want grpc or http/protobuf`},
		{name: "bad protocol variable", edit: func(*Config) {}, env: map[string]string{"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"},
			want: `OTEL_EXPORTER_OTLP_PROTOCOL "thrift" is not supported; want grpc or http/protobuf`},
		{name: "negative threshold", edit: func(c *Config) { c.SlowThreshold = -time.Second },
			want: "--tracing.slow-threshold must not be negative, got -1s"},
		{name: "ratio above 1", edit: func(c *Config) { c.SampleRatio = 1.5 },
			want: "--tracing.sample-ratio must be between 0 and 1, got 1.5"},
		{name: "negative ratio", edit: func(c *Config) { c.SampleRatio = -0.1 },
			want: "--tracing.sample-ratio must be between 0 and 1, got -0.1"},
		{name: "negative pending", edit: func(c *Config) { c.MaxPendingTraces = -1 },
			want: "--tracing.max-pending-traces must not be negative, got -1"},
		{name: "endpoint with a path but no scheme", edit: func(c *Config) { c.Endpoint = "collector:4318/v1/traces" },
			want: `--tracing.endpoint "collector:4318/v1/traces" is neither a URL nor host:port`},
		{name: "endpoint with another scheme", edit: func(c *Config) { c.Endpoint = "unix:///run/otel.sock" },
			want: `--tracing.endpoint "unix:///run/otel.sock": the scheme must be http or https`},
		{name: "endpoint URL", edit: func(c *Config) { c.Endpoint = "https://collector:4318" }},
		{name: "endpoint host:port", edit: func(c *Config) { c.Endpoint = "collector:4317" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestProtocolPrecedence(t *testing.T) {
	clearEnv(t)
	c := Config{}
	if p, _ := c.protocol(); p != ProtocolHTTPProtobuf {
		t.Errorf("default protocol %q, want http/protobuf", p)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	if p, _ := c.protocol(); p != ProtocolGRPC {
		t.Errorf("with OTEL_EXPORTER_OTLP_PROTOCOL=grpc: %q", p)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
	if p, _ := c.protocol(); p != ProtocolHTTPProtobuf {
		t.Errorf("the traces variable does not win: %q", p)
	}
	c.Protocol = "grpc"
	if p, _ := c.protocol(); p != ProtocolGRPC {
		t.Errorf("the flag does not win: %q", p)
	}
}

func TestAddFlags(t *testing.T) {
	app := kingpin.New("vantage-test", "")
	c := AddFlags(app)
	if *c != (Config{ServiceName: "vantage-test", SlowThreshold: DefaultSlowThreshold, SampleRatio: DefaultSampleRatio,
		MaxPendingTraces: DefaultMaxPendingTraces, MaxSpansPerTrace: DefaultMaxSpansPerTrace}) {
		t.Errorf("before parsing: %+v", *c)
	}
	if _, err := app.Parse([]string{"--tracing.endpoint=http://127.0.0.1:4318", "--tracing.protocol=grpc", "--tracing.insecure",
		"--tracing.slow-threshold=250ms", "--tracing.sample-ratio=0.5", "--tracing.max-pending-traces=7"}); err != nil {
		t.Fatal(err)
	}
	if c.Endpoint != "http://127.0.0.1:4318" || c.Protocol != "grpc" || !c.Insecure || c.SlowThreshold != 250*time.Millisecond ||
		c.SampleRatio != 0.5 || c.MaxPendingTraces != 7 {
		t.Errorf("parsed flags: %+v", *c)
	}
}

// Off, the provider is a no-op: nothing registered, recorded or injected.
func TestDisabledProviderDoesNothing(t *testing.T) {
	clearEnv(t)
	reg := prometheus.NewRegistry()
	p, err := New(context.Background(), DefaultConfig(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Fatal("enabled without an endpoint")
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("registered %d families while off", len(mfs))
	}
	ctx, span := p.Tracer("test").Start(context.Background(), "check")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("the no-op tracer records")
	}
	// Even a valid span in the context is not propagated while off.
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	ctx = trace.ContextWithSpanContext(ctx, sc)
	h := http.Header{}
	p.Inject(ctx, h)
	if len(h) != 0 {
		t.Errorf("Inject wrote %v while off", h)
	}
	in := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if got := p.Extract(context.Background(), in); trace.SpanContextFromContext(got).IsValid() {
		t.Error("Extract read a traceparent while off")
	}
	if p.Transport(http.DefaultTransport, nil) != http.DefaultTransport {
		t.Error("Transport wrapped the base while off")
	}
	if p.Kept(sc) {
		t.Error("Kept while off")
	}
	var nilProvider *Provider
	if nilProvider.Enabled() || nilProvider.Shutdown(context.Background()) != nil {
		t.Error("a nil Provider is not off")
	}
	_, span = nilProvider.Tracer("x").Start(context.Background(), "y")
	span.End()
}

// A request through Transport is a CLIENT span under the caller's span,
// with the attributes the caller adds; the request carries the client
// span's traceparent, with the head decision as its sampled flag: the
// sample ratio's choice, so a server sampling by its parent records the
// traces the ratio keeps here.
func TestTransportInjectsTraceparent(t *testing.T) {
	for _, tc := range []struct {
		ratio float64
		flags string
	}{{1, "01"}, {0, "00"}} {
		m := newMemProvider(t, func(c *Config) { c.SampleRatio = tc.ratio })
		got := make(chan string, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Traceparent") }))
		ctx, span := m.Tracer("test").Start(context.Background(), "verify")
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/check", nil)
		client := &http.Client{Transport: m.Transport(nil, func(*http.Request) []attribute.KeyValue {
			return []attribute.KeyValue{AttrLocation.String("fra")}
		})}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		sent := <-got
		if len(req.Header) != 0 {
			t.Error("the caller's request was modified")
		}
		// Unsampled at the head, a failed trace is still kept, and
		// exported flagged sampled.
		span.SetStatus(codes.Error, "failed")
		span.End()
		spans := m.exported(t)
		var clientSpan *tracetest.SpanStub
		for i := range spans {
			if spans[i].SpanKind == trace.SpanKindClient {
				clientSpan = &spans[i]
			}
		}
		if clientSpan == nil {
			t.Fatalf("ratio %g: no client span among %d exported", tc.ratio, len(spans))
		}
		sc := clientSpan.SpanContext
		if want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + tc.flags; sent != want {
			t.Errorf("ratio %g: traceparent sent %q, want %q (the client span's)", tc.ratio, sent, want)
		}
		if clientSpan.Parent.SpanID() != span.SpanContext().SpanID() || !sc.IsSampled() {
			t.Errorf("ratio %g: client span under %s (sampled %t), want under the caller's span, exported sampled", tc.ratio, clientSpan.Parent.SpanID(), sc.IsSampled())
		}
		a := map[attribute.Key]string{}
		for _, kv := range clientSpan.Attributes {
			a[kv.Key] = kv.Value.String()
		}
		if a["vantage.location"] != "fra" || a["http.request.method"] != "GET" || a["url.full"] != srv.URL+"/api/v1/check" || a["http.response.status_code"] != "200" || a["network.peer.address"] != "127.0.0.1" {
			t.Errorf("ratio %g: client span attributes %v", tc.ratio, a)
		}
	}
}
