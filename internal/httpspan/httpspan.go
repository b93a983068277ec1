// Package httpspan traces an outgoing HTTP request as OpenTelemetry's HTTP
// client semantic conventions describe it: one CLIENT span per request,
// whose trace context the request carries. The probes' requests to their
// targets and the coordinator's requests to the exporters both go through
// RoundTrip.
package httpspan

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

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// RoundTrip sends req with send inside a CLIENT span started with tracer
// as a child of the span in req's context: named after the method, with
// http.request.method, url.full (without credentials), server.address and
// server.port, the address the request went to (network.peer.address and
// network.peer.port), and the answer's http.response.status_code and
// network.protocol.version, or error.type when there was none. The request
// carries the client span's trace context, written by prop (nil: W3C trace
// context), so the server's spans are its children; the caller's request
// is left as it was. attrs are added to the span (the caller's own, such
// as the location asked). Without a span in req's context, req is sent as
// it is.
func RoundTrip(tracer trace.Tracer, prop propagation.TextMapPropagator, req *http.Request, send func(*http.Request) (*http.Response, error), attrs ...attribute.KeyValue) (*http.Response, error) {
	if !trace.SpanContextFromContext(req.Context()).IsValid() {
		return send(req)
	}
	ctx, span := tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(append(requestAttributes(req), attrs...)...))
	defer span.End()
	var peer peerAddr
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		ConnectDone: peer.connected,
		GotConn:     peer.gotConn,
	})
	out := req.WithContext(ctx)
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = http.Header{}
	}
	if prop == nil {
		prop = propagation.TraceContext{}
	}
	prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := send(out)
	if host, port, perr := net.SplitHostPort(peer.get()); perr == nil {
		span.SetAttributes(semconv.NetworkPeerAddress(host))
		if n, perr := strconv.Atoi(port); perr == nil {
			span.SetAttributes(semconv.NetworkPeerPort(n))
		}
	}
	if err != nil {
		span.SetAttributes(semconv.ErrorTypeKey.String(ErrorType(err)))
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode), semconv.NetworkProtocolVersion(protocolVersion(resp)))
	if resp.StatusCode >= 400 {
		// A 4xx or 5xx answer is an error of a client span.
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(resp.StatusCode)))
		span.SetStatus(codes.Error, "")
	}
	return resp, nil
}

// peerAddr is where a request went: the connection's remote address, or
// the address dialled.
type peerAddr struct {
	mu   sync.Mutex
	addr string
}

func (p *peerAddr) connected(_, addr string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil && p.addr == "" {
		p.addr = addr
	}
}

func (p *peerAddr) gotConn(info httptrace.GotConnInfo) {
	if info.Conn == nil || info.Conn.RemoteAddr() == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addr = info.Conn.RemoteAddr().String()
}

func (p *peerAddr) get() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// requestAttributes are the attributes known before the request is sent.
func requestAttributes(req *http.Request) []attribute.KeyValue {
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

// ErrorType is error.type of a request that got no answer: timeout,
// dns_error, tls_error, connection_error, or _OTHER.
func ErrorType(err error) string {
	var (
		dnsErr *net.DNSError
		opErr  *net.OpError
		netErr net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.As(err, &dnsErr):
		return "dns_error"
	case IsTLSError(err):
		return "tls_error"
	case errors.As(err, &opErr):
		return "connection_error"
	}
	return "_OTHER"
}

// IsTLSError reports whether err is a TLS handshake or certificate
// verification failure.
func IsTLSError(err error) bool {
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
