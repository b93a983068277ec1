package tracing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"

	"github.com/vantageprobe/vantage/internal/tracing/otlptest"
)

// A kept trace reaches a real OTLP receiver over each protocol, configured
// by the flags or by the standard variables, with the resource and the
// export headers the variables ask for.
func TestOTLPExport(t *testing.T) {
	for _, tc := range []struct {
		name     string
		receiver func(testing.TB) *otlptest.Receiver
		setup    func(t *testing.T, c *Config, r *otlptest.Receiver)
	}{
		{"grpc by flags", otlptest.NewGRPC, func(_ *testing.T, c *Config, r *otlptest.Receiver) {
			c.Endpoint, c.Protocol = r.Endpoint, ProtocolGRPC
		}},
		{"grpc by flags, host:port and insecure", otlptest.NewGRPC, func(_ *testing.T, c *Config, r *otlptest.Receiver) {
			c.Endpoint, c.Protocol, c.Insecure = strings.TrimPrefix(r.Endpoint, "http://"), ProtocolGRPC, true
		}},
		{"http by flags", otlptest.NewHTTP, func(_ *testing.T, c *Config, r *otlptest.Receiver) {
			c.Endpoint, c.Protocol = r.Endpoint, ProtocolHTTPProtobuf
		}},
		{"grpc by variables", otlptest.NewGRPC, func(t *testing.T, _ *Config, r *otlptest.Receiver) {
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", r.Endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
		}},
		{"http by variables", otlptest.NewHTTP, func(t *testing.T, _ *Config, r *otlptest.Receiver) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.Endpoint) // a base URL: /v1/traces is appended
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-vantage-test=yes")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
			r := tc.receiver(t)
			c := DefaultConfig()
			c.ServiceName, c.Location = "vantage-exporter", "ams"
			tc.setup(t, &c, r)
			if !c.Enabled() {
				t.Fatal("tracing is off")
			}
			reg := prometheus.NewRegistry()
			p, err := New(context.Background(), c, reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr := p.Tracer("test")
			ctx, root := tr.Start(context.Background(), "check http_2xx")
			_, child := tr.Start(ctx, "connect")
			child.End()
			root.SetStatus(codes.Error, "connect_refused: connection refused")
			root.End()
			// Shutdown flushes the kept spans.
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Shutdown(sctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			spans := r.WaitFor(t, 10*time.Second, "the check's two spans", func(s []otlptest.Span) bool { return len(s) >= 2 })
			if len(spans) != 2 {
				t.Fatalf("received %d spans, want 2", len(spans))
			}
			got := map[string]otlptest.Span{}
			for _, s := range spans {
				got[s.GetName()] = s
			}
			rs, cs := got["check http_2xx"], got["connect"]
			if rs.Span == nil || cs.Span == nil {
				t.Fatalf("received spans %v", got)
			}
			if cs.ParentSpanID() != rs.SpanID() || cs.TraceID() != rs.TraceID() || rs.TraceID() != root.SpanContext().TraceID().String() {
				t.Error("the phase span is not the check span's child in the check's trace")
			}
			if rs.GetStatus().GetMessage() != "connect_refused: connection refused" || rs.GetStatus().GetCode().String() != "STATUS_CODE_ERROR" {
				t.Errorf("root status %v", rs.GetStatus())
			}
			for k, want := range map[string]string{"service.name": "vantage-exporter", "vantage.location": "ams", "deployment.environment.name": "test"} {
				if rs.Resource[k] != want {
					t.Errorf("resource %s = %q, want %q", k, rs.Resource[k], want)
				}
			}
			if h := r.Headers(); len(h) == 0 || h[0].Get("X-Vantage-Test") != "yes" {
				t.Errorf("export headers %v lack OTEL_EXPORTER_OTLP_HEADERS", h)
			}
			if v := testutil.ToFloat64(p.tail.m.exported); v != 2 {
				t.Errorf("vantage_tracing_spans_exported_total = %v, want 2", v)
			}
		})
	}
}
