package tracing_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/internal/tracing"
)

// A program sets tracing up from its flags, makes one span per unit of work
// (here a coordinator's verification round), sends its traceparent with the
// requests the work makes, and flushes at exit.
func Example() {
	app := kingpin.New("vantage-coordinator", "")
	cfg := tracing.AddFlags(app) // --tracing.endpoint, --tracing.protocol, ...
	_, _ = app.Parse([]string{"--tracing.sample-ratio=0.05"})

	reg := prometheus.NewRegistry()
	tp, err := tracing.New(context.Background(), *cfg, reg, slog.Default())
	if err != nil {
		return
	}
	defer tp.Shutdown(context.Background()) // exports what was kept

	client := &http.Client{Transport: tp.Transport(nil, nil)} // a client span per request, its traceparent sent
	tracer := tp.Tracer("github.com/vantageprobe/vantage/coordinator")

	ctx, span := tracer.Start(context.Background(), "verify http_2xx",
		trace.WithAttributes(tracing.AttrTarget.String("https://example.com"), tracing.AttrModule.String("http_2xx")))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://exporter-ams:9715/api/v1/check",
		strings.NewReader(`{"target":"https://example.com","module":"http_2xx"}`))
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
	// A round that confirmed an outage is worth keeping whatever its
	// duration: an Error status makes the tail sampler keep the trace.
	span.SetStatus(codes.Error, "confirmed down")
	span.End()
}
