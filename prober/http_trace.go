package prober

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/prober/result"
)

// roundTripTrace holds the timings of one HTTP round trip. Its hooks may
// fire concurrently (Happy Eyeballs dials) and more than once, and late
// (a dial still running after its request failed), so a mutex guards it and
// the first start and the successful end of each step are kept.
type roundTripTrace struct {
	mu sync.Mutex
	traceTimes
	connected bool   // a connection was established
	tlsErr    error  // the handshake's error, if it failed
	peer      string // the address the request went to (host:port), once connected
}

type traceTimes struct {
	dnsStart, dnsDone         time.Time
	connectStart, connectDone time.Time
	tlsStart, tlsDone         time.Time
	gotConn                   time.Time
	firstByte                 time.Time
	end                       time.Time
}

// withRoundTripTrace returns ctx carrying httptrace hooks that record into tr.
func withRoundTripTrace(ctx context.Context, tr *roundTripTrace) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		DNSStart:             func(httptrace.DNSStartInfo) { tr.setFirst(&tr.dnsStart) },
		DNSDone:              func(httptrace.DNSDoneInfo) { tr.setLast(&tr.dnsDone) },
		ConnectStart:         func(_, _ string) { tr.setFirst(&tr.connectStart) },
		ConnectDone:          tr.onConnectDone,
		TLSHandshakeStart:    func() { tr.setFirst(&tr.tlsStart) },
		TLSHandshakeDone:     tr.onTLSHandshakeDone,
		GotConn:              tr.onGotConn,
		GotFirstResponseByte: func() { tr.setFirst(&tr.firstByte) },
	})
}

func (tr *roundTripTrace) setFirst(t *time.Time) {
	now := time.Now()
	tr.mu.Lock()
	if t.IsZero() {
		*t = now
	}
	tr.mu.Unlock()
}

func (tr *roundTripTrace) setLast(t *time.Time) {
	now := time.Now()
	tr.mu.Lock()
	*t = now
	tr.mu.Unlock()
}

// onConnectDone keeps the time of the first successful connection; failed
// attempts count until one succeeds, so a failed connect still shows how
// long it tried.
func (tr *roundTripTrace) onConnectDone(_, addr string, err error) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.connected {
		return
	}
	tr.connectDone = now
	tr.connected = err == nil
	if tr.connected && tr.peer == "" {
		tr.peer = addr
	}
}

// onGotConn records when the request got its connection, and where the
// connection goes (a reused one reports no dial).
func (tr *roundTripTrace) onGotConn(info httptrace.GotConnInfo) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.gotConn.IsZero() {
		tr.gotConn = now
	}
	if info.Conn != nil && info.Conn.RemoteAddr() != nil {
		tr.peer = info.Conn.RemoteAddr().String()
	}
}

// peerAddr returns the address the request went to, "" before it
// connected.
func (tr *roundTripTrace) peerAddr() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.peer
}

func (tr *roundTripTrace) onTLSHandshakeDone(_ tls.ConnectionState, err error) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.tlsDone.IsZero() {
		tr.tlsDone = now
		tr.tlsErr = err
	}
}

func (tr *roundTripTrace) markEnd() { tr.setFirst(&tr.end) }

// closeOpenSteps ends the steps that started but never finished at end.
func (t *traceTimes) closeOpenSteps(end time.Time) {
	for _, step := range [][2]*time.Time{
		{&t.dnsStart, &t.dnsDone},
		{&t.connectStart, &t.connectDone},
		{&t.tlsStart, &t.tlsDone},
		{&t.gotConn, &t.firstByte},
	} {
		if !step[0].IsZero() && step[1].IsZero() {
			*step[1] = end
		}
	}
}

func (tr *roundTripTrace) snapshot() traceTimes {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.traceTimes
}

// classify names the reason a request failed from its error and how far the
// failing round trip got.
func (st *probeState) classify(ctx context.Context, err error) result.Reason {
	var dnsErr *net.DNSError
	switch {
	case isDestinationDenied(err):
		return result.ReasonDestinationDenied
	case errors.As(err, &dnsErr):
		if ctx.Err() != nil {
			return result.ReasonTimeout
		}
		return result.ReasonDNSError
	case isTLSError(err):
		return result.ReasonTLSError
	}
	tr := st.last()
	if tr == nil {
		// The request never reached a transport: an auth round tripper
		// failed (an unreadable credentials file, an OAuth2 token error).
		return result.ReasonConfigError
	}
	if st.c.http3 {
		return classifyHTTP3(ctx, err, tr)
	}
	tr.mu.Lock()
	connected, gotConn := tr.connected, !tr.gotConn.IsZero()
	tlsStarted, tlsErr := !tr.tlsStart.IsZero(), tr.tlsErr
	tlsDone := !tr.tlsDone.IsZero()
	tr.mu.Unlock()
	switch {
	case !connected && !gotConn:
		return connectReason(ctx, err)
	case !gotConn && tlsStarted && (tlsErr != nil || !tlsDone):
		if ctx.Err() != nil {
			return result.ReasonTimeout
		}
		return result.ReasonTLSError
	case ctx.Err() != nil, isTimeout(err):
		return result.ReasonTimeout
	}
	return result.ReasonProtocolError
}

// isTLSError reports whether err is a TLS handshake or certificate
// verification failure.
func isTLSError(err error) bool {
	var (
		verifyErr    *tls.CertificateVerificationError
		unknownAuth  x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidErr   x509.CertificateInvalidError
		alertErr     tls.AlertError
		recordHdrErr tls.RecordHeaderError
	)
	return errors.As(err, &verifyErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostnameErr) ||
		errors.As(err, &invalidErr) || errors.As(err, &alertErr) || errors.As(err, &recordHdrErr)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// bodyReadReason names the reason reading a response body failed.
func bodyReadReason(ctx context.Context, err error) result.Reason {
	var tooLarge *http.MaxBytesError
	var decErr *decodeError
	switch {
	case errors.As(err, &tooLarge):
		return result.ReasonBodyTooLarge
	case errors.As(err, &decErr):
		return result.ReasonProtocolError
	case ctx.Err() != nil, isTimeout(err):
		return result.ReasonTimeout
	}
	return result.ReasonProtocolError
}

// tracerName is the instrumentation scope of the probes' client spans.
const tracerName = "github.com/vantageprobe/vantage/prober"

// tracedRoundTrip sends req with send inside a CLIENT span, a child of the
// span in req's context, as OpenTelemetry's HTTP semantic conventions
// describe an outgoing request: method, url.full (without credentials),
// server.address and server.port, the address the request went to
// (network.peer.address and network.peer.port) and the answer's
// http.response.status_code, or error.type when there was none. The
// request carries the client span's traceparent, with the trace's own
// sampling decision, so the target's spans are its children (prop writes
// it; nil: W3C trace context). Without a span in the context, req is sent
// as it is.
func tracedRoundTrip(req *http.Request, tr *roundTripTrace, prop propagation.TextMapPropagator, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	parent := trace.SpanFromContext(req.Context())
	if !parent.SpanContext().IsValid() {
		return send(req)
	}
	ctx, span := parent.TracerProvider().Tracer(tracerName).Start(req.Context(), req.Method,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(clientRequestAttributes(req)...))
	defer span.End()
	out := req.WithContext(ctx) // shallow: the caller's request stays as it was
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := send(out)
	if host, port, perr := net.SplitHostPort(tr.peerAddr()); perr == nil {
		span.SetAttributes(semconv.NetworkPeerAddress(host))
		if n, perr := strconv.Atoi(port); perr == nil {
			span.SetAttributes(semconv.NetworkPeerPort(n))
		}
	}
	switch {
	case err != nil:
		span.SetAttributes(semconv.ErrorTypeKey.String(errorType(err)))
		span.SetStatus(codes.Error, err.Error())
	default:
		span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode),
			semconv.NetworkProtocolVersion(protocolVersion(resp)))
		if resp.StatusCode >= 400 {
			// A 4xx or 5xx answer is an error of a client span.
			span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
			span.SetStatus(codes.Error, "")
		}
	}
	return resp, err
}

// clientRequestAttributes are the attributes of a client span known before
// the request is sent.
func clientRequestAttributes(req *http.Request) []attribute.KeyValue {
	u := *req.URL
	u.User = nil // url.full must not carry credentials
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(req.Method),
		semconv.URLFull(u.String()),
		semconv.ServerAddress(u.Hostname()),
	}
	if port := urlPort(&u); port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

// urlPort is the port a URL names, or its scheme's default.
func urlPort(u *url.URL) int {
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	switch u.Scheme {
	case "http":
		return 80
	case "https":
		return 443
	}
	return 0
}

// protocolVersion is network.protocol.version of a response: 1.1, 2, 3.
func protocolVersion(resp *http.Response) string {
	if resp.ProtoMajor >= 2 {
		return strconv.Itoa(resp.ProtoMajor)
	}
	return strconv.Itoa(resp.ProtoMajor) + "." + strconv.Itoa(resp.ProtoMinor)
}

// errorType is error.type of a request that got no answer: timeout,
// a DNS, TLS or connection error, or the error's Go type.
func errorType(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case isTimeout(err):
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns_error"
	case isTLSError(err):
		return "tls_error"
	case errors.As(err, &opErr):
		return "connection_error"
	}
	return "_OTHER"
}
