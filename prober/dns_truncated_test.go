package prober

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// truncatingHandler answers over UDP with the first of records and the TC
// bit set, and over TCP with all of them, as a server does whose answer
// does not fit a UDP datagram.
func truncatingHandler(records []dns.RR) dns.HandlerFunc {
	return func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncated = true
			m.Answer = records[:1]
		} else {
			m.Answer = records
		}
		w.WriteMsg(m)
	}
}

// manyA returns n A records for example.com.
func manyA(tb testing.TB, n int) []dns.RR {
	texts := make([]string, n)
	for i := range texts {
		texts[i] = fmt.Sprintf("example.com. 60 IN A 127.0.%d.%d", i/250, i%250+1)
	}
	return mustRRs(tb, texts...)
}

// serveDNSUDPOn serves handler over UDP on addr's port until the test ends.
func serveDNSUDPOn(tb testing.TB, addr string, handler dns.Handler) {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		tb.Fatal(err)
	}
	startDNS(tb, &dns.Server{Net: "udp", PacketConn: pc, Handler: handler})
}

func TestDNSTruncatedAnswerRetriedOverTCP(t *testing.T) {
	records := manyA(t, 40)
	srv := newDNSTestServer(t, "tcp", nil, truncatingHandler(records))
	serveDNSUDPOn(t, srv.addr, truncatingHandler(records))

	m := dnsModule("A")
	m.DNS.RetryTruncatedOverTCP = true
	m.DNS.ValidateAnswer.FailIfNoneMatchesRegexp = []config.Regexp{mustRegexp(t, `127\.0\.0\.40$`)}
	r := runTestProbe(t, m, srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	s := seriesOfResult(r)
	if s["probe_dns_truncated_retry"] != 1 || s["probe_dns_answer_rrs"] != 40 || s["probe_dns_query_succeeded"] != 1 {
		t.Errorf("series = %v, want the TCP answer's 40 records and probe_dns_truncated_retry 1", s)
	}
	if r.DNS.Transport != "tcp" {
		t.Errorf("transport = %q, want tcp after the retry", r.DNS.Transport)
	}
	if q, _ := srv.lastQuery(); q == nil || q.Question[0].Name != "example.com." {
		t.Errorf("the TCP side got no query: %v", q)
	}
}

func TestDNSTruncatedAnswerKeptWithoutTheOption(t *testing.T) {
	records := manyA(t, 40)
	srv := newDNSTestServer(t, "tcp", nil, truncatingHandler(records))
	serveDNSUDPOn(t, srv.addr, truncatingHandler(records))

	r := runTestProbe(t, dnsModule("A"), srv.addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	s := seriesOfResult(r)
	if s["probe_dns_answer_rrs"] != 1 {
		t.Errorf("probe_dns_answer_rrs = %v, want the truncated answer's 1, as blackbox_exporter", s["probe_dns_answer_rrs"])
	}
	if _, ok := s["probe_dns_truncated_retry"]; ok {
		t.Errorf("probe_dns_truncated_retry exported without retry_truncated_over_tcp: %v", s)
	}
	if q, _ := srv.lastQuery(); q != nil {
		t.Errorf("the TCP side got a query without the option: %v", q)
	}
}

func TestDNSTruncatedAnswerRetryFails(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		addr := testbin.RefusedAddr(t)
		serveDNSUDPOn(t, addr, truncatingHandler(manyA(t, 40)))
		m := dnsModule("A")
		m.DNS.RetryTruncatedOverTCP = true
		r := runTestProbe(t, m, addr, 5*time.Second)
		requireReason(t, r, result.ReasonConnectRefused)
		s := seriesOfResult(r)
		if s["probe_dns_truncated_retry"] != 1 || s["probe_dns_query_succeeded"] != 0 || s["probe_success"] != 0 {
			t.Errorf("series = %v, want a failed query retried over TCP", s)
		}
	})
	t.Run("closed without an answer", func(t *testing.T) {
		records := manyA(t, 40)
		srv := newDNSTestServer(t, "tcp", nil, func(w dns.ResponseWriter, _ *dns.Msg) { w.Close() })
		serveDNSUDPOn(t, srv.addr, truncatingHandler(records))
		m := dnsModule("A")
		m.DNS.RetryTruncatedOverTCP = true
		r := runTestProbe(t, m, srv.addr, 5*time.Second)
		requireReason(t, r, result.ReasonProtocolError)
		if s := seriesOfResult(r); s["probe_dns_truncated_retry"] != 1 || s["probe_dns_answer_rrs"] != 0 {
			t.Errorf("series = %v, want no records and probe_dns_truncated_retry 1", s)
		}
	})
}
