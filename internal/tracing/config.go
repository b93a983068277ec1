package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The OTLP protocols an exporter can speak.
const (
	ProtocolGRPC         = "grpc"
	ProtocolHTTPProtobuf = "http/protobuf"
)

// Defaults of the tail sampling policy and its buffer.
const (
	DefaultSlowThreshold    = time.Second
	DefaultSampleRatio      = 0.01
	DefaultMaxPendingTraces = 20000
	DefaultMaxSpansPerTrace = 256
)

// Config configures tracing. The zero value is usable: tracing is then on
// only when the OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT variable is set, and zero tunables take
// their defaults.
type Config struct {
	// Endpoint is the OTLP endpoint (--tracing.endpoint): a URL such as
	// http://collector:4318 or https://collector:4317, or host:port. Setting
	// it turns tracing on and overrides the OTEL_EXPORTER_OTLP_*ENDPOINT
	// variables. For http/protobuf a URL without a path gets /v1/traces, as
	// OTEL_EXPORTER_OTLP_ENDPOINT does.
	Endpoint string
	// Protocol is grpc or http/protobuf (--tracing.protocol); empty:
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL,
	// else http/protobuf.
	Protocol string
	// Insecure sends traces without TLS (--tracing.insecure). An http://
	// endpoint is plain text anyway.
	Insecure bool
	// SlowThreshold: a check at least this long is always exported
	// (--tracing.slow-threshold). 0: DefaultSlowThreshold.
	SlowThreshold time.Duration
	// SampleRatio is the fraction of the other traces (succeeded, fast)
	// that is exported, chosen by trace ID (--tracing.sample-ratio).
	SampleRatio float64
	// MaxPendingTraces bounds the traces held until their root span ends
	// (--tracing.max-pending-traces); a trace that starts while the buffer
	// is full is dropped and counted. 0: DefaultMaxPendingTraces.
	MaxPendingTraces int
	// MaxSpansPerTrace bounds the spans held for one trace; further spans
	// of it are dropped and counted. 0: DefaultMaxSpansPerTrace.
	MaxSpansPerTrace int
	// BatchTimeout is the longest kept spans wait before they are
	// exported. 0: OTEL_BSP_SCHEDULE_DELAY, else the SDK's 5s.
	BatchTimeout time.Duration

	// ServiceName is the default service.name of the resource
	// (OTEL_SERVICE_NAME overrides it); AddFlags sets the binary's name.
	ServiceName string
	// ServiceVersion is service.version; empty: the build's version.
	ServiceVersion string
	// Location, when known, is added to the resource as vantage.location.
	Location string

	// SpanExporter, when set, receives the kept spans instead of an OTLP
	// exporter, and turns tracing on (tests, embedding).
	SpanExporter sdktrace.SpanExporter
}

// DefaultConfig returns the configuration the flags default to.
func DefaultConfig() Config {
	return Config{
		SlowThreshold:    DefaultSlowThreshold,
		SampleRatio:      DefaultSampleRatio,
		MaxPendingTraces: DefaultMaxPendingTraces,
		MaxSpansPerTrace: DefaultMaxSpansPerTrace,
	}
}

// AddFlags adds the --tracing.* flags to app and returns the configuration
// they fill, with ServiceName set to the application's name.
func AddFlags(app *kingpin.Application) *Config {
	c := DefaultConfig()
	c.ServiceName = app.Name
	app.Flag("tracing.endpoint", "OTLP endpoint to send traces of checks to: a URL (http://collector:4318, https://collector:4317) or host:port. Turns tracing on and overrides OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; without it tracing is on only when one of them is set.").
		PlaceHolder("<url>").StringVar(&c.Endpoint)
	app.Flag("tracing.protocol", "OTLP protocol: grpc or http/protobuf. Default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf.").
		PlaceHolder("<protocol>").StringVar(&c.Protocol)
	app.Flag("tracing.insecure", "Send traces without TLS (an http:// endpoint implies it).").BoolVar(&c.Insecure)
	app.Flag("tracing.slow-threshold", "Export the trace of every check that takes at least this long.").
		Default(DefaultSlowThreshold.String()).DurationVar(&c.SlowThreshold)
	app.Flag("tracing.sample-ratio", "Fraction of the other checks (succeeded and fast) whose traces are exported, 0 to 1. Failed and slow checks are always exported.").
		Default(fmt.Sprint(DefaultSampleRatio)).Float64Var(&c.SampleRatio)
	app.Flag("tracing.max-pending-traces", "How many traces of running checks may be held until the check ends and the keep decision is made; a check starting beyond that is not traced (counted in vantage_tracing_traces_total{decision=\"overflow\"}).").
		Default(fmt.Sprint(DefaultMaxPendingTraces)).IntVar(&c.MaxPendingTraces)
	return &c
}

// Enabled reports whether tracing is on: an endpoint flag or a span
// exporter is given; or, unless OTEL_SDK_DISABLED is true or
// OTEL_TRACES_EXPORTER is none, OTEL_TRACES_EXPORTER is otlp (to the
// OTLP endpoint the variables name, else the SDK's default) or an OTLP
// endpoint variable is set.
func (c *Config) Enabled() bool {
	if c == nil {
		return false
	}
	if c.Endpoint != "" || c.SpanExporter != nil {
		return true
	}
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	// An unsupported exporter turns tracing on, for Validate to refuse it.
	switch kind, err := tracesExporter(); {
	case err != nil, kind == "otlp":
		return true
	case kind == "none":
		return false
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// Validate checks the configuration; the flag names in its messages are
// the user's way to fix them.
func (c *Config) Validate() error {
	if _, err := c.protocol(); err != nil {
		return err
	}
	if _, err := tracesExporter(); err != nil {
		return err
	}
	if _, err := propagatorFromEnv(); err != nil {
		return err
	}
	switch {
	case c.SlowThreshold < 0:
		return fmt.Errorf("--tracing.slow-threshold must not be negative, got %s", c.SlowThreshold)
	case c.SampleRatio < 0 || c.SampleRatio > 1:
		return fmt.Errorf("--tracing.sample-ratio must be between 0 and 1, got %g", c.SampleRatio)
	case c.MaxPendingTraces < 0:
		return fmt.Errorf("--tracing.max-pending-traces must not be negative, got %d", c.MaxPendingTraces)
	case c.MaxSpansPerTrace < 0:
		return fmt.Errorf("tracing: the span limit per trace must not be negative, got %d", c.MaxSpansPerTrace)
	}
	if c.Endpoint != "" {
		if _, err := parseEndpoint(c.Endpoint); err != nil {
			return err
		}
	}
	return nil
}

// withDefaults fills the zero tunables.
func (c Config) withDefaults() Config {
	if c.SlowThreshold == 0 {
		c.SlowThreshold = DefaultSlowThreshold
	}
	if c.MaxPendingTraces == 0 {
		c.MaxPendingTraces = DefaultMaxPendingTraces
	}
	if c.MaxSpansPerTrace == 0 {
		c.MaxSpansPerTrace = DefaultMaxSpansPerTrace
	}
	if c.ServiceVersion == "" {
		c.ServiceVersion = version.Version
	}
	return c
}

// protocol resolves the OTLP protocol from the flag and the variables.
func (c *Config) protocol() (string, error) {
	p, from := c.Protocol, "--tracing.protocol"
	if p == "" {
		for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
			if v := strings.TrimSpace(os.Getenv(name)); v != "" {
				p, from = v, name
				break
			}
		}
	}
	switch p {
	case "":
		return ProtocolHTTPProtobuf, nil
	case ProtocolGRPC, ProtocolHTTPProtobuf:
		return p, nil
	}
	return "", fmt.Errorf("%s %q is not supported; want %s or %s", from, p, ProtocolGRPC, ProtocolHTTPProtobuf)
}

// endpoint is --tracing.endpoint taken apart.
type endpoint struct {
	hostPort string
	path     string // "" for none
	secure   bool   // https:// was given
	plain    bool   // http:// was given
}

func parseEndpoint(s string) (endpoint, error) {
	if !strings.Contains(s, "://") {
		if strings.Contains(s, "/") || s == "" {
			return endpoint{}, fmt.Errorf("--tracing.endpoint %q is neither a URL nor host:port", s)
		}
		return endpoint{hostPort: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return endpoint{}, fmt.Errorf("--tracing.endpoint %q: %w", s, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return endpoint{}, fmt.Errorf("--tracing.endpoint %q: the scheme must be http or https", s)
	}
	if u.Host == "" {
		return endpoint{}, fmt.Errorf("--tracing.endpoint %q has no host", s)
	}
	return endpoint{hostPort: u.Host, path: u.Path, secure: u.Scheme == "https", plain: u.Scheme == "http"}, nil
}

// url renders the endpoint as a URL with path p, for an endpoint given as one.
func (e endpoint) url(p string) string {
	scheme := "http"
	if e.secure {
		scheme = "https"
	}
	return scheme + "://" + e.hostPort + p
}

// newSpanExporter builds the OTLP exporter. The SDK exporters read the
// OTEL_EXPORTER_OTLP_* variables (endpoint, headers, TLS files, insecure,
// compression, timeout) themselves; the options given here, from the flags,
// override them.
func newSpanExporter(ctx context.Context, c *Config) (sdktrace.SpanExporter, error) {
	proto, err := c.protocol()
	if err != nil {
		return nil, err
	}
	var ep endpoint
	if c.Endpoint != "" {
		if ep, err = parseEndpoint(c.Endpoint); err != nil {
			return nil, err
		}
	}
	// A URL sets the transport security from its scheme; --tracing.insecure
	// applies after it, so it always wins.
	switch proto {
	case ProtocolGRPC:
		var opts []otlptracegrpc.Option
		switch {
		case ep.secure || ep.plain:
			opts = append(opts, otlptracegrpc.WithEndpointURL(ep.url("")))
		case ep.hostPort != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(ep.hostPort))
		}
		if c.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	case ProtocolHTTPProtobuf:
		var opts []otlptracehttp.Option
		switch {
		case ep.secure || ep.plain:
			p := ep.path
			if p == "" || p == "/" {
				p = "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(ep.url(path.Clean(p))))
		case ep.hostPort != "":
			opts = append(opts, otlptracehttp.WithEndpoint(ep.hostPort))
		}
		if c.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		return otlptracehttp.New(ctx, opts...)
	}
	return nil, errors.New("unreachable: unknown protocol " + proto)
}
