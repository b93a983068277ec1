package prober

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	"golang.org/x/net/publicsuffix"

	"github.com/vantageprobe/vantage/config"
)

// httpPhases are blackbox_exporter's phases of an http probe, summed over
// all round trips of a redirect chain.
var httpPhases = []string{"resolve", "connect", "tls", "processing", "transfer"}

// maxRedirects is how many redirects a probe follows before it stops and
// judges the last response, as blackbox_exporter does.
const maxRedirects = 10

// httpProber is an http module prepared for probing: the request template,
// the compiled checks and the client pieces are built once here.
type httpProber struct {
	cfg    config.HTTPProbe
	method string
	body   []byte      // the request body (body or body_file), nil for none
	header http.Header // request headers, without Host
	host   string      // the configured Host header, "" for none

	follow      bool // follow redirects
	skipResolve bool // a proxy resolves the target (skip_resolve_phase_with_proxy)
	hasCEL      bool
	checks      *httpChecks
	client      *httpClient
}

func newHTTPProbe(m config.Module) (probeFunc, error) {
	probe, _, err := newHTTPProbeStart(m)
	return probe, err
}

// newHTTPProbeStart prepares an http module's probe and its start
// (ProbeAsync).
func newHTTPProbeStart(m config.Module) (probeFunc, startFunc, error) {
	client, err := newHTTPClient(m.HTTP, m.Destinations)
	if err != nil {
		return nil, nil, err
	}
	h, err := newHTTPProber(m.HTTP, client)
	if err != nil {
		return nil, nil, err
	}
	return h.probe, h.start, nil
}

// newHTTPProber prepares the request template and the checks of cfg, to
// be sent with client.
func newHTTPProber(cfg config.HTTPProbe, client *httpClient) (*httpProber, error) {
	h := &httpProber{
		cfg:    cfg,
		method: cfg.Method,
		follow: cfg.HTTPClientConfig.FollowRedirects,
		skipResolve: cfg.SkipResolvePhaseWithProxy &&
			cfg.HTTPClientConfig.ProxyURL.URL != nil && !cfg.HTTPClientConfig.ProxyFromEnvironment,
		hasCEL: cfg.FailIfBodyJSONMatchesCEL != nil || cfg.FailIfBodyJSONNotMatchesCEL != nil,
		client: client,
	}
	if h.method == "" {
		h.method = http.MethodGet
	}
	if cfg.NoFollowRedirects != nil {
		h.follow = !*cfg.NoFollowRedirects
	}
	switch {
	case cfg.Body != "":
		h.body = []byte(cfg.Body)
	case cfg.BodyFile != "":
		b, err := os.ReadFile(cfg.BodyFile)
		if err != nil {
			return nil, fmt.Errorf("http.body_file: reading the request body: %w", err)
		}
		h.body = b
	}
	h.header, h.host = requestHeader(cfg)
	var err error
	if h.checks, err = newHTTPChecks(cfg); err != nil {
		return nil, err
	}
	return h, nil
}

// requestHeader builds the request header template: the configured headers
// (Host apart), the User-Agent, and the Accept-Encoding the configured
// compression implies when no header names one.
func requestHeader(cfg config.HTTPProbe) (http.Header, string) {
	header := make(http.Header, len(cfg.Headers)+2)
	var host string
	for k, v := range cfg.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			host = v
			continue
		}
		header.Set(k, v)
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", userAgent)
	}
	if cfg.Compression != "" && header.Get("Accept-Encoding") == "" {
		header.Set("Accept-Encoding", cfg.Compression)
	}
	return header, host
}

// probe runs one http probe.
func (h *httpProber) probe(ctx context.Context, target string, p Params, r *result.Result) {
	x := h.begin(ctx, target, p, r)
	if x == nil {
		return
	}
	h.exchange(ctx, x)
}

// start begins one http probe. A plain-HTTP request that takes the direct
// path with nothing between the client and the connection (no
// authentication or http_headers round tripper, no proxy, no credentials
// in the URL, no tracing) is connected and written here; the probe then
// waits for the answer (waiting.wait) on a stack of its own, and the rest
// (reading and judging the answer, redirects) runs through the client as
// probe runs it, from the connection made here.
func (h *httpProber) start(ctx context.Context, target string, p Params, r *result.Result) *waiting {
	x := h.begin(ctx, target, p, r)
	if x == nil {
		return nil
	}
	if !h.client.direct || x.st.tracing || x.req.URL.User != nil || !x.st.directEligible(x.req) || !x.st.prime(x.req) {
		h.exchange(ctx, x)
		return nil
	}
	return &waiting{wait: x.st.primed.wait, rest: func() { h.exchange(ctx, x) }}
}

// httpProbe is an http probe between its start and its exchange.
type httpProbe struct {
	st  *probeState
	req *http.Request
	d   *result.HTTPDetails
	r   *result.Result
}

// begin resolves the target and builds the first request; nil when the
// probe has already failed.
func (h *httpProber) begin(ctx context.Context, target string, p Params, r *result.Result) *httpProbe {
	if h.skipResolve {
		// The proxy resolves the target: no resolve phase, as
		// blackbox_exporter.
		r.InitPhases(httpPhases[1:]...)
	} else {
		r.InitPhases(httpPhases...)
	}
	d := &result.HTTPDetails{CELConfigured: h.hasCEL}
	r.HTTP = d
	logger := p.Logger

	u, err := endpoint.HTTP(target)
	if err != nil {
		logger.Error("Could not parse target URL", "target", target, "err", err)
		r.Fail(result.ReasonInvalidTarget, "%v", err)
		return nil
	}
	if h.cfg.EnableHTTP3 && u.Scheme != "https" {
		// HTTP/3 runs over QUIC, which is always TLS: an http:// or bare
		// host:port target is probed over https, as blackbox_exporter does.
		logger.Debug("enable_http3 is set: probing over https", "target", target)
		u.Scheme = "https"
	}

	var ip net.IP
	if !h.skipResolve {
		var ok bool
		ip, ok = resolveTarget(ctx, h.client.guard, u.Hostname(), h.cfg.IPProtocol, h.cfg.IPProtocolFallback, r, logger)
		if !ok {
			return nil
		}
	} else if err := h.client.guard.checkTarget(u.Hostname()); err != nil {
		r.Fail(result.ReasonDestinationDenied, "%v", err) // the proxy resolves the name
		return nil
	}

	host := h.host
	if p.Hostname != "" {
		host = p.Hostname
	}
	st := h.client.newProbeState(ctx, u, ip, host, logger)
	st.tracing, st.propagator = p.Tracing, p.Propagator
	st.skipResolve = h.skipResolve

	req, err := h.newRequest(ctx, st, u, host)
	if err != nil {
		st.close()
		r.Fail(result.ReasonInvalidTarget, "building the request: %v", err)
		return nil
	}
	return &httpProbe{st: st, req: req, d: d, r: r}
}

// exchange sends the probe's request through the client (following
// redirects), judges the final response and records the phases.
func (h *httpProber) exchange(ctx context.Context, x *httpProbe) {
	st, r, d, logger := x.st, x.r, x.d, x.st.logger
	defer st.close()
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List})
	client := &http.Client{
		Transport:     h.client.chain,
		Jar:           jar,
		CheckRedirect: st.checkRedirect(h.follow),
	}
	resp, err := client.Do(x.req)
	var failedAt time.Time
	if err != nil {
		failedAt = time.Now()
		reason := st.classify(ctx, err)
		logger.Error("Error for HTTP request", "err", err)
		r.Fail(reason, "%s", requestErrorMessage(reason, err))
	} else {
		h.checkResponse(ctx, st, resp, r, d, logger)
	}
	d.Redirects = st.redirectCount()
	st.recordPhases(r, failedAt)
}

// newRequest builds the probe's first request from the prepared template.
func (h *httpProber) newRequest(ctx context.Context, st *probeState, u *url.URL, host string) (*http.Request, error) {
	var body io.Reader
	if h.body != nil {
		// A bytes.Reader lets net/http set Content-Length and GetBody, so
		// 307/308 redirects can resend the body.
		body = bytes.NewReader(h.body)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, probeStateKey{}, st), h.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.Header = h.header.Clone()
	if host != "" {
		req.Host = host
	}
	return req, nil
}

// checkResponse judges the final response, reads its body and fills d.
func (h *httpProber) checkResponse(ctx context.Context, st *probeState, resp *http.Response, r *result.Result, d *result.HTTPDetails, logger *slog.Logger) {
	defer resp.Body.Close()
	logger.Debug("Received HTTP response", "status_code", resp.StatusCode, "proto", resp.Proto)
	d.StatusCode = resp.StatusCode
	d.ContentLength = resp.ContentLength
	d.Proto = resp.Proto
	d.Version = httpVersionNumber(resp)
	d.SSL = resp.TLS != nil
	if sink := stepResponseFrom(ctx); sink != nil {
		sink.header = resp.Header
	}
	if resp.Request != nil && resp.Request.URL != nil {
		d.FinalURL = resp.Request.URL.String()
	}
	if resp.TLS != nil {
		r.TLS = result.NewTLSDetails(*resp.TLS)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			d.LastModified = t
		}
	}

	if !h.checks.statusOK(resp.StatusCode) {
		logger.Error("Invalid HTTP response status code", "status_code", resp.StatusCode, "valid_status_codes", h.checks.statusCodesText())
		r.Fail(result.ReasonStatusCode, "status code %d is not %s", resp.StatusCode, h.checks.statusCodesText())
	}
	if r.Reason == result.ReasonNone {
		if msg, ok := h.checks.headers(resp.Header); !ok {
			d.FailedDueToRegex = true
			logger.Error(msg)
			r.Fail(result.ReasonHeaderMismatch, "%s", msg)
		}
	}

	n, err := h.checks.body(ctx, resp.Body, r, d, logger)
	st.markEnd()
	d.UncompressedBodyLength = n
	if err != nil {
		logger.Error("Failed to read HTTP response body", "err", err)
		r.Fail(bodyReadReason(ctx, err), "reading the response body: %v", err)
	}

	if !h.checks.versionOK(resp.Proto) {
		logger.Error("Invalid HTTP version number", "version", resp.Proto)
		r.Fail(result.ReasonHTTPVersion, "HTTP version %s is not one of %s", resp.Proto, strings.Join(h.cfg.ValidHTTPVersions, ", "))
	}
	switch {
	case resp.TLS != nil && h.cfg.FailIfSSL:
		logger.Error("Final request was over SSL")
		r.Fail(result.ReasonSSLPolicy, "the final request was over TLS and fail_if_ssl is set")
	case resp.TLS == nil && h.cfg.FailIfNotSSL:
		logger.Error("Final request was not over SSL")
		r.Fail(result.ReasonSSLPolicy, "the final request was not over TLS and fail_if_not_ssl is set")
	}
}

// httpVersionNumber turns a response's protocol into blackbox's number:
// 1.0, 1.1, 2 or 3.
func httpVersionNumber(resp *http.Response) float64 {
	v, err := strconv.ParseFloat(strings.TrimPrefix(resp.Proto, "HTTP/"), 64)
	if err != nil {
		return float64(resp.ProtoMajor) + float64(resp.ProtoMinor)/10
	}
	return v
}

// requestErrorMessage says which step of the request failed and why,
// without the url.Error wrapper's method and URL, which the log shows.
func requestErrorMessage(reason result.Reason, err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch reason {
	case result.ReasonDNSError:
		return "resolving: " + err.Error()
	case result.ReasonConnectRefused, result.ReasonConnectTimeout, result.ReasonConnectError:
		return "connecting: " + err.Error()
	case result.ReasonTLSError:
		return "TLS handshake: " + err.Error()
	case result.ReasonTimeout:
		return "connected, but the deadline passed: " + err.Error()
	case result.ReasonConfigError:
		return "preparing the request: " + err.Error()
	}
	return err.Error()
}
