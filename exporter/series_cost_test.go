package exporter

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestSeriesPerTarget counts the series each scheduled target has on
// /metrics, per prober, with every series and with series: minimal: the
// figures of CONFIGURATION.md and BENCHMARKS.md ("Cost in Prometheus").
func TestSeriesPerTarget(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer web.Close()
	tlsWeb := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsWeb.Close()
	dnsAddr := mustServeA(t)
	grpcAddr := mustServeHealth(t)
	tcpTarget := strings.TrimPrefix(web.URL, "http://")

	want := []struct {
		module, target string
		full, minimal  int
	}{
		{"http", web.URL, 23, 18},
		{"https", tlsWeb.URL, 28, 23},
		{"tcp", tcpTarget, 13, 9},
		{"dns", dnsAddr, 18, 14},
		{"icmp", "127.0.0.1", 15, 11},
		{"grpc", grpcAddr, 19, 15},
	}
	targets := ""
	for _, w := range want {
		targets += fmt.Sprintf("  - module: %s\n    interval: 1s\n    targets: [%q]\n", w.module, w.target)
	}
	for _, series := range []string{"full", "minimal"} {
		ts := mustStart(t, `
modules:
  http:
    prober: http
    timeout: 1s
    http: {preferred_ip_protocol: ip4}
  https:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      tls_config: {insecure_skip_verify: true}
  tcp:
    prober: tcp
    timeout: 1s
    tcp: {preferred_ip_protocol: ip4}
  dns:
    prober: dns
    timeout: 1s
    dns: {query_name: a.example, query_type: A, preferred_ip_protocol: ip4, transport_protocol: udp}
  icmp:
    prober: icmp
    timeout: 1s
    icmp: {preferred_ip_protocol: ip4}
  grpc:
    prober: grpc
    timeout: 1s
    grpc: {preferred_ip_protocol: ip4}
scheduler:
  retries: 0
  series: `+series+`
targets:
`+targets)
		counts := map[string]int{}
		testbin.WaitFor(t, "every scheduled target on /metrics", 10*time.Second, func() error {
			_, body := mustGet(t, ts.url+"/metrics")
			for _, w := range want {
				n := strings.Count(body, fmt.Sprintf("{target=%q,module=%q", w.target, w.module))
				if n == 0 {
					return fmt.Errorf("no series of %s yet", w.module)
				}
				if !strings.Contains(body, fmt.Sprintf("probe_success{target=%q,module=%q} 1", w.target, w.module)) {
					return fmt.Errorf("%s does not succeed (yet)", w.module)
				}
				counts[w.module] = n
			}
			return nil
		})
		for _, w := range want {
			n := w.full
			if series == "minimal" {
				n = w.minimal
			}
			if counts[w.module] != n {
				t.Errorf("series: %s: a %s target has %d series, want %d", series, w.module, counts[w.module], n)
			}
			t.Logf("series: %s: %s target: %d series", series, w.module, counts[w.module])
		}
	}
}

// mustServeA answers every A question with 127.0.0.1, over UDP on
// loopback, until the test ends.
func mustServeA(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
		_ = w.WriteMsg(m)
	})}
	go func() { _ = s.ActivateAndServe() }()
	t.Cleanup(func() { _ = s.Shutdown() })
	return pc.LocalAddr().String()
}

// mustServeHealth serves the gRPC health service (SERVING) on loopback
// until the test ends.
func mustServeHealth(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}
