package prober

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// Each request of a traced HTTP probe, redirects included, is a CLIENT span
// under the check's span, with OpenTelemetry's HTTP client attributes, and
// the target gets that span (with the trace's sampling decision) as the
// parent of its own.
func TestHTTPClientSpans(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	for _, tc := range []struct {
		name    string
		tls     bool
		sampled bool
	}{
		{"plain, sampled trace", false, true},
		{"TLS, unsampled trace", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &headerRecorder{}
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec.record(r, "Traceparent")
				if r.URL.Path == "/start" {
					http.Redirect(w, r, "/final", http.StatusFound)
					return
				}
				w.WriteHeader(http.StatusTeapot)
			})
			srvURL := newHTTPTestServer(t, h).URL
			m := httpTestModule(func(p *config.HTTPProbe) { p.ValidStatusCodes = []int{http.StatusTeapot} })
			if tc.tls {
				srvURL = newHTTPTestTLSServer(t, cert, false, h).URL
				m = httpTestModule(func(p *config.HTTPProbe) {
					p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
					p.ValidStatusCodes = []int{http.StatusTeapot}
				})
			}
			mod, err := Prepare("http_test", m)
			if err != nil {
				t.Fatal(err)
			}
			spans := tracetest.NewSpanRecorder()
			sampler := sdktrace.NeverSample()
			if tc.sampled {
				sampler = sdktrace.AlwaysSample()
			}
			// Every span is recorded; the sampler decides the flag.
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(recordAll{sampler}), sdktrace.WithSpanProcessor(spans))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ctx, check := tp.Tracer("test").Start(ctx, "check")
			r := mod.Probe(ctx, srvURL+"/start", Params{Tracing: true, Logger: slog.New(slog.DiscardHandler)})
			check.End()
			requireReason(t, r, result.ReasonNone)

			u, _ := url.Parse(srvURL)
			port, _ := strconv.Atoi(u.Port())
			var clients []sdktrace.ReadOnlySpan
			for _, s := range spans.Ended() {
				if s.SpanKind() == trace.SpanKindClient {
					clients = append(clients, s)
				}
			}
			if len(clients) != 2 {
				t.Fatalf("%d client spans, want 2 (the request and its redirect)", len(clients))
			}
			for i, path := range []string{"/start", "/final"} {
				s := clients[i]
				if s.Parent().SpanID() != check.SpanContext().SpanID() {
					t.Errorf("%s: client span's parent %s, want the check span %s", path, s.Parent().SpanID(), check.SpanContext().SpanID())
				}
				if s.Name() != http.MethodGet {
					t.Errorf("%s: span name %q, want GET", path, s.Name())
				}
				status := http.StatusFound
				if path == "/final" {
					status = http.StatusTeapot
				}
				want := map[attribute.Key]attribute.Value{
					"http.request.method":       attribute.StringValue("GET"),
					"url.full":                  attribute.StringValue(srvURL + path),
					"server.address":            attribute.StringValue("127.0.0.1"),
					"server.port":               attribute.IntValue(port),
					"network.peer.address":      attribute.StringValue("127.0.0.1"),
					"network.peer.port":         attribute.IntValue(port),
					"http.response.status_code": attribute.IntValue(status),
					"network.protocol.version":  attribute.StringValue("1.1"),
				}
				got := map[attribute.Key]attribute.Value{}
				for _, kv := range s.Attributes() {
					got[kv.Key] = kv.Value
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s: %s = %v, want %v", path, k, got[k].String(), v.String())
					}
				}
				// The target's parent is this client span, sampled as the
				// trace is.
				seen := rec.get(path)
				if len(seen) != 1 {
					t.Fatalf("%s requested %d times", path, len(seen))
				}
				remote := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
					propagation.HeaderCarrier(http.Header{"Traceparent": {seen[0]}})))
				if remote.SpanID() != s.SpanContext().SpanID() || remote.TraceID() != check.SpanContext().TraceID() {
					t.Errorf("%s: the target got traceparent %q, want the client span %s of trace %s", path, seen[0], s.SpanContext().SpanID(), check.SpanContext().TraceID())
				}
				if remote.IsSampled() != tc.sampled {
					t.Errorf("%s: traceparent %q sampled %t, want %t", path, seen[0], remote.IsSampled(), tc.sampled)
				}
			}
		})
	}
}

// recordAll records every span and flags it as sampler decides.
type recordAll struct{ sampler sdktrace.Sampler }

func (r recordAll) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	res := r.sampler.ShouldSample(p)
	if res.Decision == sdktrace.Drop {
		res.Decision = sdktrace.RecordOnly
	}
	return res
}

func (r recordAll) Description() string { return "recordAll" }

// A request that gets no answer is a client span with error.type.
func TestHTTPClientSpanOfAFailedRequest(t *testing.T) {
	mod, err := Prepare("http_test", httpTestModule(nil))
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	srv := newHTTPTestServer(t, http.NotFoundHandler())
	target := srv.URL
	srv.Close() // refuses connections now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ctx, check := tp.Tracer("test").Start(ctx, "check")
	r := mod.Probe(ctx, target, Params{Tracing: true, Logger: slog.New(slog.DiscardHandler)})
	check.End()
	requireReason(t, r, result.ReasonConnectRefused)
	for _, s := range spans.Ended() {
		if s.SpanKind() != trace.SpanKindClient {
			continue
		}
		for _, kv := range s.Attributes() {
			if kv.Key == "error.type" && kv.Value.AsString() == "connection_error" {
				return
			}
		}
		t.Fatalf("client span attributes %v, want error.type connection_error", s.Attributes())
	}
	t.Fatal("no client span")
}
