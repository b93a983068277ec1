package prober

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
)

// httpTestModule returns an http module with blackbox's defaults, changed by
// edit.
func httpTestModule(edit func(*config.HTTPProbe)) config.Module {
	m := config.DefaultModule
	m.Prober = "http"
	m.HTTP = config.DefaultHTTPProbe
	m.HTTP.IPProtocol = "ip4"
	if edit != nil {
		edit(&m.HTTP)
	}
	return m
}

// httpTestProbe prepares m and probes target once within timeout.
func httpTestProbe(tb testing.TB, m config.Module, target string, p Params, timeout time.Duration) *result.Result {
	tb.Helper()
	mod, err := Prepare("http_test", m)
	if err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if p.Logger == nil {
		p.Logger = slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return mod.Probe(ctx, target, p)
}

// httpSeriesNames returns the sorted series names with their label names.
func httpSeriesNames(r *result.Result) []string {
	var out []string
	r.Samples(func(s result.Sample) {
		out = append(out, s.Name+"{"+strings.Join(s.LabelNames, ",")+"}")
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// httpTestCert is a self-signed certificate (its own CA) for the given
// names, and the path of its PEM file to use as ca_file.
type httpTestCert struct {
	cert   tls.Certificate
	caFile string
}

func newHTTPTestCert(tb testing.TB, notBefore, notAfter time.Time, names ...string) httpTestCert {
	tb.Helper()
	return newHTTPTestCertSerial(tb, big.NewInt(time.Now().UnixNano()), notBefore, notAfter, names...)
}

// newHTTPTestCertSerial is newHTTPTestCert with the given serial number.
func newHTTPTestCertSerial(tb testing.TB, serial *big.Int, notBefore, notAfter time.Time, names ...string) httpTestCert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vantage http test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return httpTestCert{
		cert:   tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		caFile: caFile,
	}
}

func newValidHTTPTestCert(tb testing.TB) httpTestCert {
	return newHTTPTestCert(tb, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour),
		"web.vantage.test", "vhost.vantage.test", "*.shared.vantage.test", "127.0.0.1")
}

// newHTTPTestTLSServer starts an https server on 127.0.0.1 with cert.
func newHTTPTestTLSServer(tb testing.TB, cert httpTestCert, http2 bool, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = http2
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.cert}}
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv
}

// newCountingTLSServer starts an https server on 127.0.0.1 with cert,
// HTTP/2 on, counting the connections it accepts.
func newCountingTLSServer(tb testing.TB, cert httpTestCert, h http.Handler) (*httptest.Server, *connCounter) {
	tb.Helper()
	conns := new(connCounter)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = conns.hook
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert.cert}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	tb.Cleanup(srv.Close)
	return srv, conns
}

func newHTTPTestServer(tb testing.TB, h http.Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return srv
}

// serverPort returns the port of a test server's URL.
func serverPort(tb testing.TB, srv *httptest.Server) string {
	tb.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// useHTTPTestDNS points the probers' resolver at an in-process DNS server
// answering A records from names (fully qualified, e.g. "web.vantage.test.")
// and NXDOMAIN for anything else, for the duration of the test.
func useHTTPTestDNS(tb testing.TB, names map[string]string) {
	tb.Helper()
	useTestResolver(tb, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		ip, ok := names[strings.ToLower(q.Name)]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.ParseIP(ip),
			})
		}
		_ = w.WriteMsg(m)
	})
}

// useTestResolver points the probers' resolver at an in-process DNS server
// on 127.0.0.1 answering with h, for the duration of the test.
func useTestResolver(tb testing.TB, h dns.HandlerFunc) {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	startDNS(tb, &dns.Server{PacketConn: pc, Handler: h})
	addr := pc.LocalAddr().String()
	old := resolver
	resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	tb.Cleanup(func() { resolver = old })
}

// connCounter counts the connections a test server accepted.
type connCounter struct {
	mu sync.Mutex
	n  int
}

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
