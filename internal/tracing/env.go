package tracing

import (
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"go.opentelemetry.io/otel/propagation"
)

// The environment variables of the OpenTelemetry SDK specification that
// choose the trace exporter and the propagators, read as
// go.opentelemetry.io/contrib/exporters/autoexport and the SDKs read them.
const (
	envTracesExporter = "OTEL_TRACES_EXPORTER"
	envPropagators    = "OTEL_PROPAGATORS"
)

// tracesExporter returns OTEL_TRACES_EXPORTER: "otlp", "none", or "" when
// unset. Other exporters of the specification (console, zipkin, …) are an
// error naming the variable.
func tracesExporter() (string, error) {
	v := strings.TrimSpace(os.Getenv(envTracesExporter))
	if v == "" {
		return "", nil
	}
	var kinds []string
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		switch part {
		case "otlp", "none":
			kinds = append(kinds, part)
		default:
			return "", fmt.Errorf("%s %q: exporter %q is not supported; want otlp or none", envTracesExporter, v, part)
		}
	}
	// "none" anywhere turns export off, as the specification says.
	for _, k := range kinds {
		if k == "none" {
			return "none", nil
		}
	}
	return "otlp", nil
}

// propagatorFromEnv builds the propagators OTEL_PROPAGATORS lists
// (tracecontext, baggage, none); unset, it is tracecontext,baggage, the
// specification's default. Other propagators (b3, jaeger, …) are an error
// naming the variable.
func propagatorFromEnv() (propagation.TextMapPropagator, error) {
	v := strings.TrimSpace(os.Getenv(envPropagators))
	if v == "" {
		return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}), nil
	}
	var props []propagation.TextMapPropagator
	for part := range strings.SplitSeq(v, ",") {
		switch part = strings.TrimSpace(part); part {
		case "tracecontext":
			props = append(props, propagation.TraceContext{})
		case "baggage":
			props = append(props, propagation.Baggage{})
		case "none":
			return propagation.NewCompositeTextMapPropagator(), nil
		default:
			return nil, fmt.Errorf("%s %q: propagator %q is not supported; want tracecontext, baggage or none", envPropagators, v, part)
		}
	}
	return propagation.NewCompositeTextMapPropagator(props...), nil
}

// newInstanceID returns a random UUID (version 4) for service.instance.id:
// two processes of one service (an HA pair, the exporters of a location)
// tell their spans apart by it.
func newInstanceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
