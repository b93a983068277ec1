package prober

import (
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// dnsTestServer is an in-process DNS server on 127.0.0.1:0 that remembers
// the last query it got and where from.
type dnsTestServer struct {
	addr string
	mu   sync.Mutex
	last *dns.Msg
	from string
}

func (s *dnsTestServer) lastQuery() (*dns.Msg, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.from
}

// newDNSTestServer serves handler over network ("udp", "tcp", or "tcp-tls"
// with tlsCfg) until the test ends.
func newDNSTestServer(tb testing.TB, network string, tlsCfg *tls.Config, handler dns.HandlerFunc) *dnsTestServer {
	tb.Helper()
	s := &dnsTestServer{}
	srv := &dns.Server{
		Net: network,
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
			host, _, _ := net.SplitHostPort(w.RemoteAddr().String())
			s.mu.Lock()
			s.last, s.from = req.Copy(), host
			s.mu.Unlock()
			handler(w, req)
		}),
	}
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv.PacketConn, s.addr = pc, pc.LocalAddr().String()
	default:
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		if network == "tcp-tls" {
			ln = tls.NewListener(ln, tlsCfg)
		}
		srv.Listener, s.addr = ln, ln.Addr().String()
	}
	startDNS(tb, srv)
	return s
}

// startDNS runs srv, whose listener or packet conn is set, until the test
// ends. It waits until srv serves, at most testbin.ReadyTimeout, and fails
// tb at once when ActivateAndServe returns first.
func startDNS(tb testing.TB, srv *dns.Server) {
	tb.Helper()
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	done := make(chan struct{})
	var err error // ActivateAndServe's, once done is closed
	go func() {
		defer close(done)
		err = srv.ActivateAndServe()
	}()
	tb.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		_ = srv.Shutdown()
		select {
		case <-done:
		case <-time.After(testbin.StopGrace):
			tb.Errorf("DNS server did not stop within %s", testbin.StopGrace)
		}
	})
	select {
	case <-started:
	case <-done:
		tb.Fatalf("DNS server did not start: %v", err)
	case <-time.After(testbin.ReadyTimeout):
		tb.Fatalf("DNS server did not start within %s", testbin.ReadyTimeout)
	}
}

func mustRRs(tb testing.TB, texts ...string) []dns.RR {
	tb.Helper()
	out := make([]dns.RR, 0, len(texts))
	for _, s := range texts {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, rr)
	}
	return out
}

// zoneHandler answers like an authoritative server for example.com: SOA, MX,
// a CH TXT, NXDOMAIN for missing.example.com and an A record otherwise, each
// with two NS records in authority and three glue records in additional.
func zoneHandler(tb testing.TB) dns.HandlerFunc {
	authority := mustRRs(tb, "example.com. 7200 IN NS ns1.isp.test.", "example.com. 7200 IN NS ns2.isp.test.")
	additional := mustRRs(tb, "ns1.isp.test. 7200 IN A 127.0.0.1", "ns1.isp.test. 7200 IN AAAA ::1", "ns2.isp.test. 7200 IN A 127.0.0.2")
	soa := mustRRs(tb, "example.com. 3600 IN SOA ns1.isp.test. noc.example.com. 2024010101 7200 3600 1209600 3600")
	mx := mustRRs(tb, "example.com. 3600 IN MX 10 mail.example.com.")
	txt := mustRRs(tb, `version.test. 0 CH TXT "vantage"`)
	a := mustRRs(tb, "example.com. 3600 IN A 127.0.0.1")
	return func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		switch {
		case q.Name == "missing.example.com.":
			m.Rcode = dns.RcodeNameError
			m.Ns = soa
			w.WriteMsg(m)
			return
		case q.Qclass == dns.ClassCHAOS:
			m.Answer = txt
		case q.Qtype == dns.TypeSOA:
			m.Answer = soa
		case q.Qtype == dns.TypeMX:
			m.Answer = mx
		default:
			m.Answer = a
		}
		m.Ns, m.Extra = authority, additional
		w.WriteMsg(m)
	}
}

func dnsModule(qtype string) config.Module {
	m := config.DefaultModule
	m.Prober = "dns"
	m.DNS = config.DefaultDNSProbe
	m.DNS.IPProtocol = "ip4"
	m.DNS.QueryName = "example.com"
	m.DNS.QueryType = qtype
	return m
}

func TestDNSAnswer(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			srv := newDNSTestServer(t, network, nil, zoneHandler(t))
			m := dnsModule("A")
			m.DNS.TransportProtocol = network
			r := runTestProbe(t, m, srv.addr, 5*time.Second)
			requireReason(t, r, result.ReasonNone)
			compareResultSeries(t, r, `
# HELP probe_dns_additional_rrs Returns number of entries in the additional resource record list
# TYPE probe_dns_additional_rrs gauge
probe_dns_additional_rrs 3
# HELP probe_dns_answer_rrs Returns number of entries in the answer resource record list
# TYPE probe_dns_answer_rrs gauge
probe_dns_answer_rrs 1
# HELP probe_dns_authority_rrs Returns number of entries in the authority resource record list
# TYPE probe_dns_authority_rrs gauge
probe_dns_authority_rrs 2
# HELP probe_dns_query_succeeded Displays whether or not the query was executed successfully
# TYPE probe_dns_query_succeeded gauge
probe_dns_query_succeeded 1
`, "probe_dns_answer_rrs", "probe_dns_authority_rrs", "probe_dns_additional_rrs", "probe_dns_query_succeeded", "probe_dns_serial")
			s := seriesOfResult(r)
			for _, phase := range []string{"resolve", "connect", "request"} {
				if _, ok := s[`probe_dns_duration_seconds{phase="`+phase+`"}`]; !ok {
					t.Errorf("no %s phase series in %v", phase, s)
				}
			}
			if r.PhaseDuration("request") <= 0 || len(r.Phases) != 3 {
				t.Errorf("phases = %+v", r.Phases)
			}
			if q, _ := srv.lastQuery(); q.Question[0] != (dns.Question{Name: "example.com.", Qtype: dns.TypeA, Qclass: dns.ClassINET}) {
				t.Errorf("server got question %v", q.Question[0])
			}
			if r.DNS.Transport != network || r.DNS.Rcode != "NOERROR" {
				t.Errorf("details = %+v", r.DNS)
			}
		})
	}
}

func TestDNSDefaultsToANYInIN(t *testing.T) {
	srv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	r := runTestProbe(t, dnsModule(""), srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	q, _ := srv.lastQuery()
	if q.Question[0].Qtype != dns.TypeANY || q.Question[0].Qclass != dns.ClassINET {
		t.Fatalf("question = %v, want ANY IN", q.Question[0])
	}
}

func TestDNSSOASerial(t *testing.T) {
	srv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	r := runTestProbe(t, dnsModule("SOA"), srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	compareResultSeries(t, r, `
# HELP probe_dns_serial Returns the serial number of the zone
# TYPE probe_dns_serial gauge
probe_dns_serial 2.024010101e+09
`, "probe_dns_serial")

	// Only an SOA query exports the serial (blackbox_exporter's rule).
	r = runTestProbe(t, dnsModule("MX"), srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if _, ok := seriesOfResult(r)["probe_dns_serial"]; ok {
		t.Error("probe_dns_serial exported for an MX query")
	}
}

func TestDNSValidators(t *testing.T) {
	srv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	re := func(s string) config.Regexp { return mustRegexp(t, s) }
	for _, tc := range []struct {
		name  string
		qname string
		set   func(p *config.DNSProbe)
		want  result.Reason
	}{
		{"answer fail_if_matches fails", "", func(p *config.DNSProbe) {
			p.ValidateAnswer.FailIfMatchesRegexp = []config.Regexp{re(`IN\s+A\s+127\.0\.0\.1`)}
		}, result.ReasonDNSRecords},
		{"answer fail_if_matches passes", "", func(p *config.DNSProbe) {
			p.ValidateAnswer.FailIfMatchesRegexp = []config.Regexp{re(`127\.0\.0\.9`)}
		}, result.ReasonNone},
		{"answer fail_if_not_matches fails", "", func(p *config.DNSProbe) {
			p.ValidateAnswer.FailIfNotMatchesRegexp = []config.Regexp{re(`127\.0\.0\.9`)}
		}, result.ReasonDNSRecords},
		{"answer fail_if_not_matches passes", "", func(p *config.DNSProbe) {
			p.ValidateAnswer.FailIfNotMatchesRegexp = []config.Regexp{re(`^example\.com\.\s+3600\s+IN\s+A\s+127\.0\.0\.1$`)}
		}, result.ReasonNone},
		{"fail_if_not_matches fails without records", "missing.example.com", func(p *config.DNSProbe) {
			p.ValidRcodes = []string{"NXDOMAIN"}
			p.ValidateAnswer.FailIfNotMatchesRegexp = []config.Regexp{re(`.`)}
		}, result.ReasonDNSRecords},
		{"authority fail_if_none_matches fails", "", func(p *config.DNSProbe) {
			p.ValidateAuthority.FailIfNoneMatchesRegexp = []config.Regexp{re(`ns3\.isp`)}
		}, result.ReasonDNSRecords},
		{"authority fail_if_none_matches passes", "", func(p *config.DNSProbe) {
			p.ValidateAuthority.FailIfNoneMatchesRegexp = []config.Regexp{re(`ns3\.isp`), re(`ns2\.isp`)}
		}, result.ReasonNone},
		// blackbox_exporter's reading: fails unless every record matches.
		{"additional fail_if_all_match fails when not all match", "", func(p *config.DNSProbe) {
			p.ValidateAdditional.FailIfAllMatchRegexp = []config.Regexp{re(`127\.0\.0\.`)}
		}, result.ReasonDNSRecords},
		{"additional fail_if_all_match passes when all match", "", func(p *config.DNSProbe) {
			p.ValidateAdditional.FailIfAllMatchRegexp = []config.Regexp{re(`^ns[12]\.isp\.test\.`)}
		}, result.ReasonNone},
		{"additional fail_if_matches fails", "", func(p *config.DNSProbe) {
			p.ValidateAdditional.FailIfMatchesRegexp = []config.Regexp{re(`AAAA`)}
		}, result.ReasonDNSRecords},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := dnsModule("A")
			if tc.qname != "" {
				m.DNS.QueryName = tc.qname
			}
			tc.set(&m.DNS)
			r := runTestProbe(t, m, srv.addr, 5*time.Second)
			requireReason(t, r, tc.want)
			if !r.DNS.QuerySucceeded {
				t.Error("query_succeeded is false for an answered query")
			}
		})
	}
}

func TestDNSRcode(t *testing.T) {
	srv := newDNSTestServer(t, "tcp", nil, zoneHandler(t))
	m := dnsModule("A")
	m.DNS.TransportProtocol = "tcp"
	m.DNS.QueryName = "missing.example.com"
	r := runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonDNSRcode)
	if !strings.Contains(r.Error, "NXDOMAIN") || !r.DNS.QuerySucceeded || r.DNS.AuthorityRRs != 1 {
		t.Errorf("error %q, details %+v", r.Error, r.DNS)
	}

	m.DNS.ValidRcodes = []string{"NOERROR", "NXDOMAIN"}
	r = runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)

	m.DNS.QueryName = "example.com"
	m.DNS.ValidRcodes = []string{"NXDOMAIN"}
	r = runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonDNSRcode)
}

func TestDNSRecursionDesired(t *testing.T) {
	srv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	for _, rd := range []bool{true, false} {
		m := dnsModule("A")
		m.DNS.Recursion = rd
		requireReason(t, runTestProbe(t, m, srv.addr, 5*time.Second), result.ReasonNone)
		if q, _ := srv.lastQuery(); q.RecursionDesired != rd {
			t.Errorf("recursion_desired %v: server saw RD=%v", rd, q.RecursionDesired)
		}
	}
}

func TestDNSQueryClassCH(t *testing.T) {
	srv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	m := dnsModule("TXT")
	m.DNS.QueryName = "version.test"
	m.DNS.QueryClass = "CH"
	m.DNS.ValidateAnswer.FailIfNotMatchesRegexp = []config.Regexp{mustRegexp(t, `\bCH\s+TXT\s+"vantage"`)}
	r := runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if q, _ := srv.lastQuery(); q.Question[0].Qclass != dns.ClassCHAOS || q.Question[0].Qtype != dns.TypeTXT {
		t.Fatalf("server got %v, want CH TXT", q.Question[0])
	}
}

// A server that never answers ends the probe at the deadline with timeout.
func TestDNSNoAnswerEndsAtDeadline(t *testing.T) {
	silent := func(w dns.ResponseWriter, req *dns.Msg) {} // reads, never writes
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			srv := newDNSTestServer(t, network, nil, silent)
			m := dnsModule("A")
			m.DNS.TransportProtocol = network
			start := time.Now()
			r := runTestProbe(t, m, srv.addr, 300*time.Millisecond)
			elapsed := time.Since(start)
			requireReason(t, r, result.ReasonTimeout)
			if elapsed < 250*time.Millisecond || elapsed > 3*time.Second {
				t.Errorf("probe took %v, want about the 300ms deadline", elapsed)
			}
			if v := seriesOfResult(r)["probe_dns_query_succeeded"]; v != 0 {
				t.Errorf("probe_dns_query_succeeded = %v", v)
			}
		})
	}
}

func TestDNSSourceIPAddress(t *testing.T) {
	requireSecondLoopback(t)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			srv := newDNSTestServer(t, network, nil, zoneHandler(t))
			m := dnsModule("A")
			m.DNS.TransportProtocol = network
			m.DNS.SourceIPAddress = "127.0.0.2"
			requireReason(t, runTestProbe(t, m, srv.addr, 5*time.Second), result.ReasonNone)
			if _, from := srv.lastQuery(); from != "127.0.0.2" {
				t.Fatalf("server saw the query from %s, want 127.0.0.2", from)
			}
		})
	}
}

func TestDNSOverTLS(t *testing.T) {
	pki := newTCPTestPKI(t)
	srv := newDNSTestServer(t, "tcp-tls", pki.serverConfig(), zoneHandler(t))
	m := dnsModule("SOA")
	m.DNS.TransportProtocol = "tcp"
	m.DNS.DNSOverTLS = true
	m.DNS.TLSConfig.CAFile = pki.caFile
	r := runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.DNS.Transport != "tcp-tls" || r.DNS.TLS == nil || r.DNS.TLS.Subject != "CN=probe.test" {
		t.Fatalf("details = %+v", r.DNS)
	}
	if r.DNS.Serial == nil || *r.DNS.Serial != 2024010101 {
		t.Errorf("serial = %v", r.DNS.Serial)
	}
	// blackbox_exporter's dns prober exports no TLS series.
	if r.TLS != nil {
		t.Errorf("r.TLS set: the dns prober would export TLS series")
	}

	m.DNS.TLSConfig.CAFile = ""
	r = runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonTLSError)
	if r.PhaseDuration("connect") <= 0 {
		t.Errorf("connect phase not recorded for a failed handshake: %+v", r.Phases)
	}
}

func TestDNSMalformedAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			// The query's ID, QR set, one question cut off in its name.
			reply := []byte{buf[0], buf[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 10, 'a', 'b'}
			pc.WriteTo(reply, from)
		}
	}()
	r := runTestProbe(t, dnsModule("A"), pc.LocalAddr().String(), 5*time.Second)
	requireReason(t, r, result.ReasonProtocolError)
	if r.DNS.QuerySucceeded {
		t.Error("query_succeeded set for a malformed answer")
	}
}

func TestDNSConnectRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedUDP := pc.LocalAddr().String()
	pc.Close()
	// Over UDP the refusal is the ICMP port unreachable the query draws.
	r := runTestProbe(t, dnsModule("A"), closedUDP, 5*time.Second)
	requireReason(t, r, result.ReasonConnectRefused)

	m := dnsModule("A")
	m.DNS.TransportProtocol = "tcp"
	r = runTestProbe(t, m, testbin.FreeAddr(t), 5*time.Second)
	requireReason(t, r, result.ReasonConnectRefused)
	// The series blackbox_exporter registers up front are still there.
	s := seriesOfResult(r)
	for _, name := range []string{"probe_dns_answer_rrs", "probe_dns_query_succeeded", `probe_dns_duration_seconds{phase="request"}`} {
		if v, ok := s[name]; !ok || v != 0 {
			t.Errorf("%s = %v, %v; want 0", name, v, ok)
		}
	}
}

func TestDNSInvalidTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:", "127.0.0.1:99999", "http://x"} {
		r := runTestProbe(t, dnsModule("A"), target, time.Second)
		requireReason(t, r, result.ReasonInvalidTarget)
		if len(r.Phases) != 3 {
			t.Errorf("%q: phases = %+v, want all three at zero", target, r.Phases)
		}
	}
}

func TestDNSSplitTarget(t *testing.T) {
	plain := &dnsProbe{defaultPort: "53"}
	dot := &dnsProbe{defaultPort: "853"}
	for _, tc := range []struct {
		q          *dnsProbe
		target     string
		host, port string
	}{
		{plain, "127.0.0.1", "127.0.0.1", "53"},
		{plain, "127.0.0.1:5353", "127.0.0.1", "5353"},
		{plain, "::1", "::1", "53"},
		{plain, "[::1]", "::1", "53"},
		{plain, "[::1]:5353", "::1", "5353"},
		{plain, "ns1.example.com", "ns1.example.com", "53"},
		{dot, "dns.example.net", "dns.example.net", "853"},
	} {
		host, port, ok := endpoint.DNS(tc.target, tc.q.defaultPort)
		if !ok || host != tc.host || port != tc.port {
			t.Errorf("splitTarget(%q) = %q, %q, %v; want %q, %q", tc.target, host, port, ok, tc.host, tc.port)
		}
	}
}

func TestDNSQueryNameIDNA(t *testing.T) {
	q, err := dnsQuestion(config.DNSProbe{QueryName: "bücher.example"})
	if err != nil {
		t.Fatal(err)
	}
	if q.Name != "xn--bcher-kva.example." {
		t.Fatalf("name = %q, want the punycode form", q.Name)
	}
	if q, _ := dnsQuestion(config.DNSProbe{QueryName: "_sip._tcp.example.com"}); q.Name != "_sip._tcp.example.com." {
		t.Fatalf("ASCII name changed to %q", q.Name)
	}
}
