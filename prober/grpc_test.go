package prober

import (
	"context"
	"crypto/tls"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
)

func grpcTestModule(edit func(*config.GRPCProbe)) config.Module {
	m := config.DefaultModule
	m.Prober = "grpc"
	m.GRPC = config.DefaultGRPCProbe
	m.GRPC.PreferredIPProtocol = "ip4"
	if edit != nil {
		edit(&m.GRPC)
	}
	return m
}

// grpcTestServer is an in-process gRPC server on 127.0.0.1:0.
type grpcTestServer struct {
	addr string
	// accepted and open count the server's connections.
	accepted, open atomic.Int32
	mu             sync.Mutex
	calls          []grpcTestCall // what the server saw of each call
}

type grpcTestCall struct {
	md   metadata.MD
	peer net.Addr
}

func (s *grpcTestServer) lastCall(tb testing.TB) grpcTestCall {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) == 0 {
		tb.Fatal("the server saw no call")
	}
	return s.calls[len(s.calls)-1]
}

// newGRPCTestServer serves gRPC with TLS when tlsCfg is set; register adds
// the services. A health service made by health.NewServer answers SERVING
// for the empty service name.
func newGRPCTestServer(tb testing.TB, tlsCfg *tls.Config, register func(*grpc.Server)) *grpcTestServer {
	tb.Helper()
	return newGRPCTestServerAt(tb, "tcp4", "127.0.0.1:0", tlsCfg, register)
}

func newGRPCTestServerAt(tb testing.TB, network, address string, tlsCfg *tls.Config, register func(*grpc.Server)) *grpcTestServer {
	tb.Helper()
	ln, err := net.Listen(network, address)
	if err != nil {
		tb.Fatal(err)
	}
	s := &grpcTestServer{addr: ln.Addr().String()}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		c := grpcTestCall{}
		c.md, _ = metadata.FromIncomingContext(ctx)
		if p, ok := peer.FromContext(ctx); ok {
			c.peer = p.Addr
		}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.mu.Unlock()
		return h(ctx, req)
	})}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(&countingListener{Listener: ln, s: s})
	}()
	tb.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return s
}

type countingListener struct {
	net.Listener
	s *grpcTestServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.accepted.Add(1)
	l.s.open.Add(1)
	return &countingConn{Conn: c, open: &l.s.open}, nil
}

type countingConn struct {
	net.Conn
	open *atomic.Int32
	once sync.Once
}

func (c *countingConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

func withHealth(hs *health.Server) func(*grpc.Server) {
	return func(s *grpc.Server) { grpc_health_v1.RegisterHealthServer(s, hs) }
}

func TestGRPCServing(t *testing.T) {
	srv := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	r := runTestProbe(t, grpcTestModule(nil), srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	compareResultSeries(t, r, `
# HELP probe_grpc_healthcheck_response Response HealthCheck response
# TYPE probe_grpc_healthcheck_response gauge
probe_grpc_healthcheck_response{serving_status="NOT_SERVING"} 0
probe_grpc_healthcheck_response{serving_status="SERVICE_UNKNOWN"} 0
probe_grpc_healthcheck_response{serving_status="SERVING"} 1
probe_grpc_healthcheck_response{serving_status="UNKNOWN"} 0
# HELP probe_grpc_ssl Indicates if SSL was used for the connection
# TYPE probe_grpc_ssl gauge
probe_grpc_ssl 0
# HELP probe_grpc_status_code Response gRPC status code
# TYPE probe_grpc_status_code gauge
probe_grpc_status_code 0
# HELP probe_ip_protocol Specifies whether probe ip protocol is IP4 or IP6
# TYPE probe_ip_protocol gauge
probe_ip_protocol 4
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
`, "probe_grpc_healthcheck_response", "probe_grpc_ssl", "probe_grpc_status_code", "probe_ip_protocol",
		// Without a TLS handshake, no TLS series: a certificate expiry
		// alert must not fire on a plaintext target.
		"probe_ssl_earliest_cert_expiry", "probe_success")
	got := seriesOfResult(r)
	for _, name := range []string{`probe_grpc_duration_seconds{phase="resolve"}`, `probe_grpc_duration_seconds{phase="check"}`} {
		if _, ok := got[name]; !ok {
			t.Errorf("series %s missing", name)
		}
	}
	if r.PhaseDuration("check") <= 0 {
		t.Errorf("check phase not measured: %+v", r.Phases)
	}
	if _, ok := got["probe_tls_version_info"]; ok || r.TLS != nil {
		t.Error("a plaintext probe reports TLS details")
	}
}

func TestGRPCServingStatus(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("vantage.Up", grpc_health_v1.HealthCheckResponse_SERVING)
	hs.SetServingStatus("vantage.Down", grpc_health_v1.HealthCheckResponse_NOT_SERVING)
	hs.SetServingStatus("vantage.Unknown", grpc_health_v1.HealthCheckResponse_SERVICE_UNKNOWN)
	srv := newGRPCTestServer(t, nil, withHealth(hs))
	for _, tc := range []struct {
		service, wantStatus string
		reason              result.Reason
		code                float64
	}{
		{"", "NOT_SERVING", result.ReasonNotServing, 0},
		{"vantage.Up", "SERVING", result.ReasonNone, 0},
		{"vantage.Down", "NOT_SERVING", result.ReasonNotServing, 0},
		{"vantage.Unknown", "SERVICE_UNKNOWN", result.ReasonNotServing, 0},
		{"vantage.Missing", "", result.ReasonGRPCError, 5}, // NotFound
	} {
		t.Run(tc.service, func(t *testing.T) {
			r := runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) { p.Service = tc.service }), srv.addr, 2*time.Second)
			requireReason(t, r, tc.reason)
			if r.GRPC.ServingStatus != tc.wantStatus {
				t.Errorf("serving status = %q, want %q", r.GRPC.ServingStatus, tc.wantStatus)
			}
			got := seriesOfResult(r)
			for _, s := range []string{"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"} {
				name := `probe_grpc_healthcheck_response{serving_status="` + s + `"}`
				v, ok := got[name]
				if !ok || (v == 1) != (s == tc.wantStatus) {
					t.Errorf("%s = %v (present %v)", name, v, ok)
				}
			}
			if got["probe_grpc_status_code"] != tc.code {
				t.Errorf("probe_grpc_status_code = %v, want %v", got["probe_grpc_status_code"], tc.code)
			}
		})
	}
}

func TestGRPCMetadata(t *testing.T) {
	srv := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	m := grpcTestModule(func(p *config.GRPCProbe) {
		p.Metadata = map[string]config.Strings{"X-Tenant": {"blue", "green"}, "authorization": {"Bearer t0ken"}}
	})
	r := runTestProbe(t, m, srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	md := srv.lastCall(t).md
	if got := md.Get("x-tenant"); !slices.Equal(got, []string{"blue", "green"}) {
		t.Errorf("x-tenant = %q, want [blue green]", got)
	}
	if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer t0ken"}) {
		t.Errorf("authorization = %q", got)
	}
	// The :authority is the target as written.
	if got := md.Get(":authority"); !slices.Equal(got, []string{srv.addr}) {
		t.Errorf(":authority = %q, want %s", got, srv.addr)
	}
}

func TestGRPCTLS(t *testing.T) {
	pki := newTCPTestPKI(t)
	srv := newGRPCTestServer(t, pki.serverConfig(), withHealth(health.NewServer()))
	_, port, _ := net.SplitHostPort(srv.addr)
	useHTTPTestDNS(t, map[string]string{"probe.test.": "127.0.0.1", "other.test.": "127.0.0.1"})
	withCA := func(p *config.GRPCProbe) { p.TLS, p.TLSConfig.CAFile = true, pki.caFile }

	t.Run("address", func(t *testing.T) {
		r := runTestProbe(t, grpcTestModule(withCA), srv.addr, 2*time.Second)
		requireReason(t, r, result.ReasonNone)
		if !r.GRPC.SSL || r.TLS == nil {
			t.Fatalf("ssl %v, tls details %+v", r.GRPC.SSL, r.TLS)
		}
		got := seriesOfResult(r)
		if got["probe_grpc_ssl"] != 1 {
			t.Errorf("probe_grpc_ssl = %v, want 1", got["probe_grpc_ssl"])
		}
		if got["probe_ssl_earliest_cert_expiry"] != float64(pki.notAfter.Unix()) {
			t.Errorf("probe_ssl_earliest_cert_expiry = %v, want %d", got["probe_ssl_earliest_cert_expiry"], pki.notAfter.Unix())
		}
		if r.TLS.Subject != "CN=probe.test" {
			t.Errorf("subject = %q", r.TLS.Subject)
		}
	})
	t.Run("host name is the server name", func(t *testing.T) {
		r := runTestProbe(t, grpcTestModule(withCA), "probe.test:"+port, 2*time.Second)
		requireReason(t, r, result.ReasonNone)
		if r.Resolve.IP != "127.0.0.1" {
			t.Errorf("dialed %s", r.Resolve.IP)
		}
		if got := srv.lastCall(t).md.Get(":authority"); !slices.Equal(got, []string{"probe.test:" + port}) {
			t.Errorf(":authority = %q", got)
		}
	})
	t.Run("name not in the certificate", func(t *testing.T) {
		r := runTestProbe(t, grpcTestModule(withCA), "other.test:"+port, 2*time.Second)
		requireReason(t, r, result.ReasonTLSError)
	})
	t.Run("server_name overrides", func(t *testing.T) {
		r := runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) {
			withCA(p)
			p.TLSConfig.ServerName = "probe.test"
		}), "other.test:"+port, 2*time.Second)
		requireReason(t, r, result.ReasonNone)
	})
	t.Run("unknown authority", func(t *testing.T) {
		r := runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) { p.TLS = true }), srv.addr, 2*time.Second)
		requireReason(t, r, result.ReasonTLSError)
		if got := seriesOfResult(r)["probe_grpc_status_code"]; got != 14 { // Unavailable
			t.Errorf("probe_grpc_status_code = %v, want 14", got)
		}
	})
	t.Run("plaintext server", func(t *testing.T) {
		plain := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
		r := runTestProbe(t, grpcTestModule(withCA), plain.addr, 2*time.Second)
		requireReason(t, r, result.ReasonTLSError)
	})
}

func TestGRPCTargetParsing(t *testing.T) {
	for _, tc := range []struct {
		target     string
		tls        bool
		host, port string
	}{
		{"probe.test:50051", false, "probe.test", "50051"},
		{"http://probe.test:50051", false, "probe.test", "50051"},
		{"https://probe.test", true, "probe.test", "443"},
		{"probe.test", false, "probe.test", "80"},
		{"[::1]:50051", false, "::1", "50051"},
		{"[::1]", true, "::1", "443"},
		{"probe.test:grpc-alt", false, "probe.test", "grpc-alt"},
	} {
		host, port, ok := endpoint.GRPC(tc.target, tc.tls)
		if !ok || host != tc.host || port != tc.port {
			t.Errorf("grpcTarget(%q, tls=%v) = %q %q %v, want %q %q", tc.target, tc.tls, host, port, ok, tc.host, tc.port)
		}
	}
}

func TestGRPCIPv6(t *testing.T) {
	srv := newGRPCTestServerAt(t, "tcp6", "[::1]:0", nil, withHealth(health.NewServer()))
	r := runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) { p.PreferredIPProtocol = "ip6" }), srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.Resolve.IPProtocol != 6 {
		t.Errorf("ip protocol = %d, want 6", r.Resolve.IPProtocol)
	}
}

func TestGRPCPrepareReadsTLSFilesOnce(t *testing.T) {
	if _, err := Prepare("bad", grpcTestModule(func(p *config.GRPCProbe) {
		p.TLS, p.TLSConfig.CAFile = true, "/nonexistent/ca.pem"
	})); err == nil {
		t.Error("Prepare accepted an unreadable ca_file")
	}
	if _, err := Prepare("bad", grpcTestModule(func(p *config.GRPCProbe) { p.SourceIPAddress = "nope" })); err == nil {
		t.Error("Prepare accepted a bad source_ip_address")
	}
}

func TestGRPCNoHealthService(t *testing.T) {
	srv := newGRPCTestServer(t, nil, func(*grpc.Server) {})
	r := runTestProbe(t, grpcTestModule(nil), srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonGRPCError)
	compareResultSeries(t, r, `
# HELP probe_grpc_healthcheck_response Response HealthCheck response
# TYPE probe_grpc_healthcheck_response gauge
probe_grpc_healthcheck_response{serving_status="NOT_SERVING"} 0
probe_grpc_healthcheck_response{serving_status="SERVICE_UNKNOWN"} 0
probe_grpc_healthcheck_response{serving_status="SERVING"} 0
probe_grpc_healthcheck_response{serving_status="UNKNOWN"} 0
# HELP probe_grpc_status_code Response gRPC status code
# TYPE probe_grpc_status_code gauge
probe_grpc_status_code 12
# HELP probe_failure_info Why the probe failed, from a fixed vocabulary of reasons
# TYPE probe_failure_info gauge
probe_failure_info{reason="grpc_error"} 1
`, "probe_grpc_healthcheck_response", "probe_grpc_status_code", "probe_failure_info")
}

func TestGRPCConnectRefused(t *testing.T) {
	r := runTestProbe(t, grpcTestModule(nil), testbin.FreeAddr(t), 2*time.Second)
	requireReason(t, r, result.ReasonConnectRefused)
	if r.GRPC.ServingStatus != "" || !r.GRPC.Checked {
		t.Errorf("details = %+v", r.GRPC)
	}
}

func TestGRPCTargets(t *testing.T) {
	useHTTPTestDNS(t, nil)
	for _, target := range []string{"", "127.0.0.1:0", "127.0.0.1:99999", "a b:80", "[::1", "http://[::1"} {
		r := runTestProbe(t, grpcTestModule(nil), target, time.Second)
		requireReason(t, r, result.ReasonInvalidTarget)
	}
	r := runTestProbe(t, grpcTestModule(nil), "missing.vantage.test:50051", time.Second)
	requireReason(t, r, result.ReasonDNSError)
	got := seriesOfResult(r)
	if _, ok := got[`probe_grpc_duration_seconds{phase="check"}`]; !ok {
		t.Error("a failed resolution lacks the check phase series")
	}
	if _, ok := got[`probe_grpc_healthcheck_response{serving_status="SERVING"}`]; ok {
		t.Error("a probe that made no call exposes probe_grpc_healthcheck_response")
	}
	if _, ok := got["probe_grpc_status_code"]; !ok {
		t.Error("probe_grpc_status_code missing")
	}
}

// blockingHealth answers no Check call until the caller gives up.
type blockingHealth struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (blockingHealth) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestGRPCUnansweredCheckEndsAtDeadline(t *testing.T) {
	srv := newGRPCTestServer(t, nil, func(s *grpc.Server) { grpc_health_v1.RegisterHealthServer(s, blockingHealth{}) })
	start := time.Now()
	r := runTestProbe(t, grpcTestModule(nil), srv.addr, 300*time.Millisecond)
	took := time.Since(start)
	requireReason(t, r, result.ReasonTimeout)
	if took > time.Second || r.PhaseDuration("check") < 250*time.Millisecond {
		t.Errorf("probe took %v, check phase %v; want it to end at the 300ms deadline", took, r.PhaseDuration("check"))
	}
	if got := seriesOfResult(r)["probe_grpc_status_code"]; got != 4 { // DeadlineExceeded
		t.Errorf("probe_grpc_status_code = %v, want 4", got)
	}
}

func TestGRPCSourceIPAddress(t *testing.T) {
	requireSecondLoopback(t)
	srv := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	r := runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) { p.SourceIPAddress = "127.0.0.2" }), srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if a, ok := srv.lastCall(t).peer.(*net.TCPAddr); !ok || !a.IP.Equal(net.IPv4(127, 0, 0, 2)) {
		t.Errorf("server saw the call from %v, want 127.0.0.2", srv.lastCall(t).peer)
	}
}

func TestGRPCFreshConnectionPerProbe(t *testing.T) {
	srv := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	mod, err := Prepare("test", grpcTestModule(nil))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		requireReason(t, mod.Probe(ctx, srv.addr, Params{}), result.ReasonNone)
		cancel()
	}
	if n := srv.accepted.Load(); n != 3 {
		t.Errorf("server accepted %d connections for 3 probes, want 3", n)
	}
	// Every probe closed its connection.
	for deadline := time.Now().Add(2 * time.Second); srv.open.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.open.Load(); n != 0 {
		t.Errorf("%d connections still open after the probes", n)
	}
}

func TestGRPCNoGoroutineLeak(t *testing.T) {
	pki := newTCPTestPKI(t)
	ok := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	secure := newGRPCTestServer(t, pki.serverConfig(), withHealth(health.NewServer()))
	slow := newGRPCTestServer(t, nil, func(s *grpc.Server) { grpc_health_v1.RegisterHealthServer(s, blockingHealth{}) })
	refused := testbin.FreeAddr(t)
	mTLS := grpcTestModule(func(p *config.GRPCProbe) { p.TLS, p.TLSConfig.CAFile = true, pki.caFile })
	runTestProbe(t, mTLS, secure.addr, 2*time.Second) // warm up lazily started goroutines
	before := runtime.NumGoroutine()
	for range 3 {
		requireReason(t, runTestProbe(t, grpcTestModule(nil), ok.addr, 2*time.Second), result.ReasonNone)
		requireReason(t, runTestProbe(t, mTLS, secure.addr, 2*time.Second), result.ReasonNone)
		requireReason(t, runTestProbe(t, grpcTestModule(nil), slow.addr, 100*time.Millisecond), result.ReasonTimeout)
		requireReason(t, runTestProbe(t, grpcTestModule(nil), refused, 2*time.Second), result.ReasonConnectRefused)
		requireReason(t, runTestProbe(t, grpcTestModule(func(p *config.GRPCProbe) { p.TLS = true }), secure.addr, 2*time.Second), result.ReasonTLSError)
	}
	waitForGoroutinesAtMost(t, before)
}
