package prober

import (
	"context"
	"crypto/tls"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// Behaviour that follows blackbox_exporter v0.28, each against a real
// server on loopback.

func TestSerialNumberKeepsLeadingZero(t *testing.T) {
	// 0x0abcde: its bytes are 0a bc de; blackbox_exporter prints them with
	// %x, so the label is "0abcde", not big.Int's "abcde".
	cert := newHTTPTestCertSerial(t, big.NewInt(0x0abcde), time.Now().Add(-time.Hour), time.Now().Add(time.Hour), "127.0.0.1")
	srv := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httpTestProbe(t, httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile }),
		srv.URL, Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	var label string
	r.Samples(func(s result.Sample) {
		for i, n := range s.LabelNames {
			if s.Name == "probe_ssl_last_chain_info" && n == "serialnumber" {
				label = s.LabelValues[i]
			}
		}
	})
	if label != "0abcde" {
		t.Errorf("serialnumber = %q, want %q", label, "0abcde")
	}
}

func TestExpectBytesFailureSeries(t *testing.T) {
	addr := newTCPTestServer(t, func(c net.Conn) { _, _ = io.WriteString(c, "N") })
	m := config.DefaultModule
	m.Prober = "tcp"
	m.TCP.IPProtocol = "ip4"
	m.TCP.QueryResponse = []config.QueryResponse{{ExpectBytes: "S"}}

	r := runTestProbe(t, m, addr, 2*time.Second)
	requireReason(t, r, result.ReasonExpectMismatch)
	got := seriesOfResult(r)
	if v, ok := got["probe_failed_due_to_bytes"]; !ok || v != 1 {
		t.Errorf("probe_failed_due_to_bytes = %v (present %v), want 1", v, ok)
	}
	if got["probe_failed_due_to_regex"] != 0 {
		t.Error("probe_failed_due_to_regex set by an expect_bytes step")
	}

	m.TCP.QueryResponse = []config.QueryResponse{{ExpectBytes: "N"}}
	r = runTestProbe(t, m, addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if v, ok := seriesOfResult(r)["probe_failed_due_to_bytes"]; !ok || v != 0 {
		t.Errorf("probe_failed_due_to_bytes = %v (present %v), want 0", v, ok)
	}
}

func TestTCPTLSServerNameFromHostname(t *testing.T) {
	pki := newTCPTestPKI(t)
	var mu sync.Mutex
	var sni []string
	cfg := pki.serverConfig()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		sni = append(sni, hello.ServerName)
		mu.Unlock()
		return nil, nil
	}
	addr := newTCPTestServer(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.Handshake()
		_ = tc.Close()
	})
	module := func(serverName string) config.Module {
		m := config.DefaultModule
		m.Prober = "tcp"
		m.TCP.IPProtocol = "ip4"
		m.TCP.TLS = true
		m.TCP.TLSConfig.CAFile = pki.caFile
		m.TCP.TLSConfig.ServerName = serverName
		return m
	}
	probe := func(m config.Module, hostname string) *result.Result {
		mod, err := Prepare("tcp_tls", m)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return mod.Probe(ctx, addr, Params{Hostname: hostname, Logger: testProbeLogger(t)})
	}

	requireReason(t, probe(module(""), "probe.test"), result.ReasonNone)
	// tls_config.server_name wins over the parameter: the certificate has
	// no such name, so verification fails.
	requireReason(t, probe(module("other.test"), "probe.test"), result.ReasonTLSError)
	// Without either, the target's host.
	requireReason(t, probe(module(""), ""), result.ReasonNone)

	mu.Lock()
	defer mu.Unlock()
	// An IP address is never sent as SNI: the last handshake shows none.
	want := []string{"probe.test", "other.test", ""}
	if strings.Join(sni, ",") != strings.Join(want, ",") {
		t.Errorf("server names seen %q, want %q", sni, want)
	}
}

func TestCheckHostnameAgainstModuleHost(t *testing.T) {
	m := httpTestModule(func(p *config.HTTPProbe) { p.Headers = map[string]string{"host": "vhost.example"} })
	mod, err := Prepare("vhost", m)
	if err != nil {
		t.Fatal(err)
	}
	err = mod.CheckHostname("other.example")
	want := "host header defined both in module configuration (vhost.example) and with URL-parameter 'hostname' (other.example)"
	if err == nil || err.Error() != want {
		t.Errorf("CheckHostname = %v, want %q", err, want)
	}
	if err := mod.CheckHostname("vhost.example"); err != nil {
		t.Errorf("the same host refused: %v", err)
	}
}

func TestSkipResolvePhaseWithProxy(t *testing.T) {
	asked := useNXDOMAINResolver(t)
	origin := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "via proxy to "+r.Host)
	}))
	originURL, _ := url.Parse(origin.URL)
	// A forward proxy that sends every request to the origin, whatever
	// name it asks for: only the proxy could resolve the target.
	var proxied atomic.Int32
	proxy := newHTTPTestServer(t, &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		proxied.Add(1)
		pr.SetURL(originURL)
		pr.Out.Host = pr.In.Host
	}})
	proxyURL, _ := url.Parse(proxy.URL)

	m := httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.ProxyURL.URL = proxyURL
		p.SkipResolvePhaseWithProxy = true
		p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "via proxy to only-the-proxy.vantage.test")}
	})
	r := httpTestProbe(t, m, "http://only-the-proxy.vantage.test/", Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if asked.Load() != 0 || proxied.Load() != 1 {
		t.Errorf("%d lookups, %d proxied requests; want none and 1", asked.Load(), proxied.Load())
	}
	got := seriesOfResult(r)
	for name := range got {
		if strings.Contains(name, `phase="resolve"`) || strings.HasPrefix(name, "probe_dns_lookup_time_seconds") || strings.HasPrefix(name, "probe_ip_protocol") {
			t.Errorf("series %s emitted although the proxy resolves", name)
		}
	}
	for _, phase := range []string{"connect", "tls", "processing", "transfer"} {
		if _, ok := got[`probe_http_duration_seconds{phase="`+phase+`"}`]; !ok {
			t.Errorf("phase %s missing", phase)
		}
	}
}

func TestOverlongHostNameIsNotLookedUp(t *testing.T) {
	asked := useNXDOMAINResolver(t)
	long := strings.Repeat("a", 200*1024) + ".vantage.test"
	for _, c := range []struct {
		name   string
		module config.Module
		target string
	}{
		{"http", httpTestModule(nil), "http://" + long + "/"},
		{"tcp", func() config.Module {
			m := config.DefaultModule
			m.Prober = "tcp"
			return m
		}(), long + ":443"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := runTestProbe(t, c.module, c.target, 2*time.Second)
			requireReason(t, r, result.ReasonInvalidTarget)
			if len(r.Error) > 200 {
				t.Errorf("error message of %d bytes repeats the name", len(r.Error))
			}
		})
	}
	// 253 bytes is still a name that may be looked up.
	label := strings.Repeat("a", 63)
	name := strings.Join([]string{label, label, label, strings.Repeat("b", 61)}, ".")
	if len(name) != 253 {
		t.Fatalf("test name is %d bytes", len(name))
	}
	r := runTestProbe(t, httpTestModule(nil), "http://"+name+"/", 2*time.Second)
	requireReason(t, r, result.ReasonDNSError)
	if asked.Load() == 0 {
		t.Error("a 253-byte name was not looked up")
	}
}

func TestDefaultUserAgent(t *testing.T) {
	var mu sync.Mutex
	var ua string
	srv := newHTTPTestServer(t, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ua = r.UserAgent()
		mu.Unlock()
	}))
	requireReason(t, httpTestProbe(t, httpTestModule(nil), srv.URL, Params{}, 5*time.Second), result.ReasonNone)
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(ua, "Vantage Exporter/") {
		t.Errorf("User-Agent %q, want Vantage Exporter/<version>", ua)
	}
}

// useNXDOMAINResolver answers every lookup of the probers with NXDOMAIN
// and counts them.
func useNXDOMAINResolver(tb testing.TB) *atomic.Int32 {
	tb.Helper()
	var asked atomic.Int32
	useTestResolver(tb, func(w dns.ResponseWriter, req *dns.Msg) {
		asked.Add(1)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})
	return &asked
}
