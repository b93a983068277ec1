package prober

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
)

// Hostile TLS peers, for every prober that speaks TLS: certificates that
// must not verify, a handshake that never completes and bytes that are not
// TLS at all. Each fails with tls_error as soon as the handshake does, or
// with timeout at the deadline when the peer stalls.

// tlsProber builds a module of one prober trusting caFile ("" for the
// system roots) and the target for addr.
type tlsProber struct {
	name   string
	module func(caFile string) config.Module
	target func(addr string) string
}

var tlsProbers = []tlsProber{
	{"http", func(caFile string) config.Module {
		return httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = caFile })
	}, func(addr string) string { return "https://" + addr + "/" }},
	{"tcp", func(caFile string) config.Module {
		m := tcpModule()
		m.TCP.TLS = true
		m.TCP.TLSConfig.CAFile = caFile
		return m
	}, func(addr string) string { return addr }},
	{"grpc", func(caFile string) config.Module {
		return grpcTestModule(func(p *config.GRPCProbe) { p.TLS, p.TLSConfig.CAFile = true, caFile })
	}, func(addr string) string { return addr }},
	{"dns", func(caFile string) config.Module {
		m := dnsModule("A")
		m.DNS.TransportProtocol = "tcp"
		m.DNS.DNSOverTLS = true
		m.DNS.TLSConfig.CAFile = caFile
		return m
	}, func(addr string) string { return addr }},
}

func TestHostileTLS(t *testing.T) {
	now := time.Now()
	expired := newHTTPTestCert(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), "127.0.0.1")
	selfSigned := newValidHTTPTestCert(t)
	otherHost := newHTTPTestCert(t, now.Add(-time.Hour), now.Add(24*time.Hour), "other.vantage.test")
	serve := func(c httpTestCert) func(net.Conn, <-chan struct{}) {
		return serveTLSHandshake(&tls.Config{Certificates: []tls.Certificate{c.cert}})
	}
	for _, tc := range []struct {
		name    string
		handle  func(net.Conn, <-chan struct{})
		caFile  string
		want    result.Reason
		stalled bool
	}{
		{"expired certificate", serve(expired), expired.caFile, result.ReasonTLSError, false},
		{"self-signed certificate", serve(selfSigned), "", result.ReasonTLSError, false},
		{"certificate for another host", serve(otherHost), otherHost.caFile, result.ReasonTLSError, false},
		{"stalled handshake", stallTLS, selfSigned.caFile, result.ReasonTimeout, true},
		{"not TLS", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "", hostileChunk)
		}, selfSigned.caFile, result.ReasonTLSError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			srv := newHostileServer(t, tc.handle)
			for _, p := range tlsProbers {
				t.Run(p.name, func(t *testing.T) {
					o := probeHostile(t, p.module(tc.caFile), p.target(srv.addr), deadlineFor(tc.stalled))
					o.requireBounded(t, tc.want, hostileHeapFloor)
					o.requireTiming(t, tc.stalled)
					if o.r.TLS != nil {
						t.Errorf("TLS details of a failed handshake: %+v", o.r.TLS)
					}
					srv.waitClosed(t)
				})
			}
		})
	}
}
