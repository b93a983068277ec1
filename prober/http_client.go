package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"go.opentelemetry.io/otel/propagation"
	"golang.org/x/net/idna"

	"github.com/vantageprobe/vantage/config"
)

// userAgent is sent when the module sets no User-Agent header.
var userAgent = "Vantage Exporter/" + version.Version

// httpClient holds the client pieces of an http module that are built once.
// Requests go through prometheus/common's round-tripper chain of the module
// (clientChains), one chain per probe at a time, so every probe opens fresh
// connections and measures real DNS, TCP and TLS. A module without client
// options sends plain-HTTP requests on the direct path instead
// (http_direct.go); an HTTP/3 module keeps its own chain of prometheus/common
// round trippers (newAuthChain) over a QUIC transport per probe.
type httpClient struct {
	chain     http.RoundTripper // the probe's http.Client sends through it
	chains    *clientChains     // nil with HTTP/3
	direct    bool              // plain-HTTP requests may take the direct path
	tlsConfig *tls.Config       // HTTP/3's template; its ServerName is the configured one
	proxy     func(*http.Request) (*url.URL, error)
	localAddr net.IP            // source_ip_address, nil for any
	guard     *destinationGuard // the module's destinations, nil for none
	http3     bool
	preferIP4 bool
}

func newHTTPClient(cfg config.HTTPProbe, destinations *config.Destinations) (*httpClient, error) {
	cc := cfg.HTTPClientConfig
	c := &httpClient{
		http3:     cfg.EnableHTTP3,
		preferIP4: cfg.IPProtocol == "ip4",
	}
	var err error
	if c.guard, err = newDestinationGuard(destinations); err != nil {
		return nil, err
	}
	if cfg.SourceIPAddress != "" {
		if c.localAddr = net.ParseIP(cfg.SourceIPAddress); c.localAddr == nil {
			return nil, fmt.Errorf("http.source_ip_address: %q is not an IP address", cfg.SourceIPAddress)
		}
	}
	if err := checkClientSecrets(cc); err != nil {
		return nil, err
	}
	tc, err := newClientTLSConfig(&cc.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("http.tls_config: %w", err)
	}
	c.tlsConfig = tc
	if c.http3 && (cc.ProxyURL.URL != nil || cc.ProxyFromEnvironment) {
		return nil, errors.New("http: enable_http3 cannot be used with a proxy")
	}
	// Before cc.Proxy(), which caches its function in cc.
	c.direct = !c.http3 && !hasClientOptions(cc)
	c.proxy = cc.Proxy()
	if c.http3 {
		c.chain, err = newAuthChain(cc, probeRoundTripper{})
		return c, err
	}
	c.chain = probeRoundTripper{}
	if c.chains, err = newClientChains(cc); err != nil {
		return nil, err
	}
	return c, nil
}

// newClientTLSConfig builds the module's TLS configuration once. A client
// certificate is loaded here rather than on every handshake.
func newClientTLSConfig(cfg *promconfig.TLSConfig) (*tls.Config, error) {
	tc, err := promconfig.NewTLSConfig(cfg)
	if err != nil {
		return nil, err
	}
	if tc.GetClientCertificate != nil {
		cert, err := tc.GetClientCertificate(&tls.CertificateRequestInfo{})
		if err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return tc, nil
}

// newAuthChain wraps next in the round trippers of the module's
// authentication and http_headers settings, in prometheus/common's order,
// for HTTP/3: prometheus/common's NewRoundTripperFromConfig always ends in
// a net/http Transport, which does not speak QUIC.
func newAuthChain(cc promconfig.HTTPClientConfig, next http.RoundTripper) (http.RoundTripper, error) {
	rt := next
	if a := cc.Authorization; a != nil {
		s, err := secretReader(a.Credentials, a.CredentialsFile, a.CredentialsRef)
		if err != nil {
			return nil, fmt.Errorf("http.authorization: %w", err)
		}
		typ := strings.TrimSpace(a.Type)
		if typ == "" {
			typ = "Bearer"
		}
		rt = promconfig.NewAuthorizationCredentialsRoundTripper(typ, s, rt)
	}
	if cc.BearerToken != "" || cc.BearerTokenFile != "" {
		s, err := secretReader(cc.BearerToken, cc.BearerTokenFile, "")
		if err != nil {
			return nil, fmt.Errorf("http.bearer_token_file: %w", err)
		}
		rt = promconfig.NewAuthorizationCredentialsRoundTripper("Bearer", s, rt)
	}
	if b := cc.BasicAuth; b != nil {
		user, err := secretReader(promconfig.Secret(b.Username), b.UsernameFile, b.UsernameRef)
		if err != nil {
			return nil, fmt.Errorf("http.basic_auth.username: %w", err)
		}
		pass, err := secretReader(b.Password, b.PasswordFile, b.PasswordRef)
		if err != nil {
			return nil, fmt.Errorf("http.basic_auth.password: %w", err)
		}
		rt = promconfig.NewBasicAuthRoundTripper(user, pass, rt)
	}
	if o := cc.OAuth2; o != nil {
		var s promconfig.SecretReader
		var err error
		if o.GrantType == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			s, err = secretReader(o.ClientCertificateKey, o.ClientCertificateKeyFile, o.ClientCertificateKeyRef)
		} else {
			s, err = secretReader(o.ClientSecret, o.ClientSecretFile, o.ClientSecretRef)
		}
		if err != nil {
			return nil, fmt.Errorf("http.oauth2: %w", err)
		}
		rt = promconfig.NewOAuth2RoundTripper(s, o, rt, promconfig.WithKeepAlivesDisabled())
	}
	if cc.HTTPHeaders != nil && len(cc.HTTPHeaders.Headers) > 0 {
		h, err := newHeadersRoundTripper(cc.HTTPHeaders, rt)
		if err != nil {
			return nil, fmt.Errorf("http.http_headers: %w", err)
		}
		rt = h
	}
	return rt, nil
}

// probeStateKey carries a request's *probeState through the round tripper
// chain to probeRoundTripper.
type probeStateKey struct{}

// viaProxyKey marks the context of a request that goes through a proxy, so
// that its dial, which goes to the proxy, skips the destination guard.
type viaProxyKey struct{}

// probeRoundTripper is the transport of a probe's http.Client (under the
// authentication of an HTTP/3 module): it sends each request through the
// probe the request belongs to.
type probeRoundTripper struct{}

func (probeRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	st, ok := req.Context().Value(probeStateKey{}).(*probeState)
	if !ok {
		return nil, errors.New("http prober: request carries no probe state")
	}
	return st.roundTrip(req)
}

// probeState is one probe's client side: its transports (fresh, without
// keep-alives), the resolved address of the target and the per round trip
// traces.
type probeState struct {
	ctx        context.Context // the probe's context; bounds every dial
	c          *httpClient
	logger     *slog.Logger
	tracing    bool                          // send the trace context of the request's span
	propagator propagation.TextMapPropagator // writes it; nil: W3C trace context
	// skipResolve: a proxy resolves the target, so the first request's
	// lookups (of the proxy's name) are no resolve phase.
	skipResolve bool
	targetAddr  string // host:port of the target as the transport dials it
	dialAddr    string // ip:port resolved by resolveTarget, "" to let the dialer resolve
	firstHost   string // URL host of the first request
	serverName  string // TLS server name for the first host, "" for the URL's host

	mu        sync.Mutex
	traces    []*roundTripTrace
	redirects int

	// primed is the first round trip when start connected and wrote it
	// before the client sent the request; roundTrip takes it.
	primed *primedExchange

	primary http.RoundTripper // for requests to the first host
	other   http.RoundTripper // for redirects to other hosts, when serverName is set
	closers []func()          // give back chains, close HTTP/3 transports
}

func (c *httpClient) newProbeState(ctx context.Context, u *url.URL, ip net.IP, host string, logger *slog.Logger) *probeState {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	st := &probeState{
		ctx:        ctx,
		c:          c,
		logger:     logger,
		targetAddr: net.JoinHostPort(asciiHost(u.Hostname()), port),
		firstHost:  u.Host,
	}
	if ip != nil {
		st.dialAddr = net.JoinHostPort(ip.String(), port)
	}
	// The Host header (or the hostname parameter) names the virtual host;
	// TLS asks for the same name unless tls_config.server_name is set.
	switch {
	case c.tlsConfig.ServerName != "":
		st.serverName = c.tlsConfig.ServerName
	case host != "":
		st.serverName = hostOnly(host)
	}
	return st
}

// roundTrip runs one round trip of the probe with its own trace.
func (st *probeState) roundTrip(req *http.Request) (*http.Response, error) {
	if p := st.takePrimed(); p != nil {
		return p.finish(req)
	}
	st.logger.Debug("Making HTTP request", "url", req.URL.String(), "host", req.Host)
	tr := &roundTripTrace{}
	st.mu.Lock()
	st.traces = append(st.traces, tr)
	st.mu.Unlock()
	ctx := withRoundTripTrace(req.Context(), tr)
	if st.c.guard != nil && st.viaProxy(req) {
		ctx = context.WithValue(ctx, viaProxyKey{}, true)
	}
	req = req.WithContext(ctx)
	if st.tracing {
		// Every round trip, redirects included, is a client span.
		return tracedRoundTrip(req, st.propagator, st.send)
	}
	return st.send(req)
}

// send sends one round trip's request. The direct path and HTTP/3 have
// their authentication behind them, and net/http refuses a scheme other
// than http and https (a redirect to ftp://) before asking for a
// connection: those requests are sent here. A chain's transport marks the
// request sent when it asks for a connection (httptrace's GetConn).
func (st *probeState) send(req *http.Request) (*http.Response, error) {
	direct := st.c.direct && st.directEligible(req)
	if direct || st.c.http3 || (req.URL.Scheme != "http" && req.URL.Scheme != "https") {
		if tr := st.last(); tr != nil {
			tr.markSent()
		}
	}
	if direct {
		return st.directRoundTrip(req)
	}
	rt, err := st.transportFor(req.URL.Host)
	if err != nil {
		return nil, err
	}
	return rt.RoundTrip(req)
}

// transportFor returns the transport for a request to urlHost, taking it
// on first use. A redirect to another host does not reuse the first host's
// TLS server name (configured or from the Host header): TLS then asks for
// the URL's host, as blackbox_exporter does.
func (st *probeState) transportFor(urlHost string) (http.RoundTripper, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	slot, serverName := &st.primary, st.serverName
	if urlHost != st.firstHost && st.serverName != "" {
		if st.other == nil {
			st.logger.Debug("Address does not match first address, not sending TLS ServerName", "first", st.firstHost, "address", urlHost)
		}
		slot, serverName = &st.other, ""
	}
	if *slot == nil {
		rt, release, err := st.newTransport(serverName)
		if err != nil {
			return nil, err
		}
		*slot = rt
		st.closers = append(st.closers, release)
	}
	return *slot, nil
}

// Per-connection buffer sizes of the direct path.
const (
	probeWriteBuffer = 1024
	probeReadBuffer  = 2048
)

// newTransport returns a transport for this probe alone whose TLS asks for
// serverName, and the function that releases it.
func (st *probeState) newTransport(serverName string) (http.RoundTripper, func(), error) {
	if !st.c.http3 {
		return st.c.chains.take(serverName)
	}
	tc := st.c.tlsConfig.Clone()
	tc.ServerName = serverName
	t := st.newHTTP3Transport(tc)
	return t, func() { _ = t.Close() }, nil
}

// viaProxy reports whether req goes through a proxy.
func (st *probeState) viaProxy(req *http.Request) bool {
	if st.c.proxy == nil {
		return false
	}
	u, err := st.c.proxy(req)
	return err == nil && u != nil
}

// dial connects to addr, to the address resolveTarget chose when addr is
// the target's, bound to source_ip_address, by the probe's deadline.
// net/http detaches dials from the request's cancellation; the probe's
// context bounds them here instead. With the module's destinations, every
// address the dial tries is checked as it connects, whatever the name
// resolved to before; a dial to a proxy is not: the proxy is the module's
// own setting, and the proxy, not vantage, resolves and connects to the
// target.
func (st *probeState) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if addr == st.targetAddr && st.dialAddr != "" {
		addr = st.dialAddr
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(st.ctx, cancel)
	defer stop()
	d := net.Dialer{Resolver: resolver}
	if st.c.localAddr != nil {
		d.LocalAddr = &net.TCPAddr{IP: st.c.localAddr}
	}
	if st.c.guard != nil && ctx.Value(viaProxyKey{}) == nil {
		d.Control = st.c.guard.control
	}
	return d.DialContext(ctx, network, addr)
}

// checkRedirect counts redirects as blackbox_exporter does (the number of
// redirect responses seen) and stops after maxRedirects or when redirects
// are not followed, keeping the last response. A redirect to a host the
// module's destinations deny fails the request.
func (st *probeState) checkRedirect(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		st.mu.Lock()
		st.redirects = len(via)
		st.mu.Unlock()
		if req.Response != nil {
			st.logger.Debug("Received redirect", "location", req.Response.Header.Get("Location"))
		}
		if !follow || len(via) > maxRedirects {
			st.logger.Debug("Not following redirect")
			return http.ErrUseLastResponse
		}
		if err := st.c.guard.checkTarget(req.URL.Hostname()); err != nil {
			st.logger.Error("Redirect denied", "location", req.URL.Redacted(), "err", err)
			return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
		}
		return nil
	}
}

func (st *probeState) redirectCount() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.redirects
}

// last returns the trace of the latest round trip, nil before the first.
func (st *probeState) last() *roundTripTrace {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.traces) == 0 {
		return nil
	}
	return st.traces[len(st.traces)-1]
}

// markEnd records that the final response's body has been read.
func (st *probeState) markEnd() {
	if tr := st.last(); tr != nil {
		tr.markEnd()
	}
}

// recordPhases sums the phases of every round trip into r. The first
// request's lookup is resolveTarget's, recorded already; lookups the
// dialer made (redirects to other hosts) add to it. When the request
// failed at failedAt, the step it was in counts until then, so a timeout
// shows where the probe waited.
func (st *probeState) recordPhases(r *result.Result, failedAt time.Time) {
	st.mu.Lock()
	traces := st.traces
	st.mu.Unlock()
	for i, tr := range traces {
		s := tr.snapshot()
		if i == len(traces)-1 && !failedAt.IsZero() {
			s.closeOpenSteps(failedAt)
		}
		st.logger.Debug("Response timings for roundtrip", "roundtrip", i,
			"dnsStart", s.dnsStart, "dnsDone", s.dnsDone, "connectStart", s.connectStart,
			"connectDone", s.connectDone, "tlsStart", s.tlsStart, "tlsDone", s.tlsDone,
			"gotConn", s.gotConn, "responseStart", s.firstByte, "end", s.end)
		add := func(phase string, from, to time.Time) {
			if !from.IsZero() && !to.IsZero() && to.After(from) {
				r.RecordPhase(phase, from, to)
			}
		}
		if i > 0 || !st.skipResolve {
			add("resolve", s.dnsStart, s.dnsDone)
		}
		add("connect", s.connectStart, s.connectDone)
		add("tls", s.tlsStart, s.tlsDone)
		add("processing", s.gotConn, s.firstByte)
		add("transfer", s.firstByte, s.end)
	}
}

// close releases the probe's transports (closing idle connections also
// cancels dials still in flight after a failed request) and a primed
// connection the client did not take.
func (st *probeState) close() {
	if p := st.takePrimed(); p != nil && p.dc != nil {
		p.dc.release() // a primed round trip the client never sent
	}
	st.mu.Lock()
	closers := st.closers
	st.closers = nil
	st.mu.Unlock()
	for _, c := range closers {
		c()
	}
}

// hostOnly strips a port from a Host header value.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// asciiHost converts a host name to the form net/http dials (IDNA).
func asciiHost(host string) string {
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			if a, err := idna.Lookup.ToASCII(host); err == nil {
				return a
			}
			return host
		}
	}
	return host
}
