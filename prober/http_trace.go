package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/internal/httpspan"
	"github.com/vantageprobe/vantage/prober/result"
)

// roundTripTrace holds the timings of one HTTP round trip. Its hooks may
// fire concurrently (Happy Eyeballs dials) and more than once, and late
// (a dial still running after its request failed), so a mutex guards it and
// the first start and the successful end of each step are kept.
type roundTripTrace struct {
	mu sync.Mutex
	traceTimes
	connected bool  // a connection was established
	tlsErr    error // the handshake's error, if it failed
	sent      bool  // the request got past authentication to a transport
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
		GetConn:              func(string) { tr.markSent() },
		GotConn:              func(httptrace.GotConnInfo) { tr.setFirst(&tr.gotConn) },
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
func (tr *roundTripTrace) onConnectDone(_, _ string, err error) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.connected {
		return
	}
	tr.connectDone = now
	tr.connected = err == nil
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

func (tr *roundTripTrace) markSent() {
	tr.mu.Lock()
	tr.sent = true
	tr.mu.Unlock()
}

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

func (tr *roundTripTrace) wasSent() bool {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.sent
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
	if tr == nil || !tr.wasSent() {
		// The request never reached a transport: a round tripper of the
		// module's chain failed (an unreadable credentials or CA file, an
		// OAuth2 token error).
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
func isTLSError(err error) bool { return httpspan.IsTLSError(err) }

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
// check's span in req's context, with the HTTP client semantic
// conventions' attributes; the target gets the client span's trace context
// (written by prop; nil: W3C trace context) with the trace's sampling
// decision, so its spans are the client span's children.
func tracedRoundTrip(req *http.Request, prop propagation.TextMapPropagator, send func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	tracer := trace.SpanFromContext(req.Context()).TracerProvider().Tracer(tracerName)
	return httpspan.RoundTrip(tracer, prop, req, send)
}
