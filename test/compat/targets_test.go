package compat

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// targets are the loopback servers both exporters probe.
type targets struct {
	caFile  string // PEM CA certificate that signed every TLS target's leaf
	httpURL string // plain HTTP server base URL
	https   string // HTTPS server base URL
	banner  string // host:port of a TCP server sending an SSH banner
	tlsTCP  string // host:port of a TLS-only TCP server
	refused string // host:port nothing listens on
	dnsUDP  string // host:port of the DNS server over UDP
	dnsTCP  string // host:port of the DNS server over TCP
	grpc    string // host:port of a gRPC health server
	// proxy is the URL of a forward proxy that sends every request to
	// httpURL, whatever host it names: only the proxy can resolve it.
	proxy string
}

const (
	sshBanner = "SSH-2.0-OpenSSH_test\r\n"
	dnsZone   = "compat.test."
	dnsSerial = 2024010101
	// ioTimeout bounds every read and write of the test servers.
	ioTimeout = 3 * time.Second
)

func startTargets(t *testing.T) *targets {
	t.Helper()
	caFile, leaf := mustCertificates(t, t.TempDir())
	tg := &targets{caFile: caFile}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Compat", "fine")
		fmt.Fprint(w, "compat ok")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	})
	mux.HandleFunc("/nomatch", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "something else entirely")
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	tg.httpURL = plain.URL

	secure := httptest.NewUnstartedServer(mux)
	secure.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	tg.https = secure.URL

	tg.banner = startTCPServer(t, func(c net.Conn) net.Conn {
		_, _ = io.WriteString(c, sshBanner)
		return c
	})
	tg.tlsTCP = startTCPServer(t, func(c net.Conn) net.Conn {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf}})
		if err := tc.Handshake(); err != nil {
			return nil
		}
		return tc
	})
	origin, err := url.Parse(plain.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(origin)
		pr.Out.Host = pr.In.Host
	}})
	t.Cleanup(proxy.Close)
	tg.proxy = proxy.URL
	tg.refused = testbin.RefusedAddr(t)
	tg.dnsUDP, tg.dnsTCP = startDNSServer(t)
	tg.grpc = startGRPCServer(t)
	return tg
}

// mustCertificates writes a CA certificate to dir and returns its path and a
// leaf for 127.0.0.1 and localhost signed by it.
func mustCertificates(tb testing.TB, dir string) (string, tls.Certificate) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vantage compat test CA", Organization: []string{"vantage"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4242),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"vantage"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey}
}

// startTCPServer accepts connections on 127.0.0.1 and runs greet on each;
// greet returns the connection to drain until the peer closes it, or nil.
// Every connection ends within ioTimeout, and all end at cleanup.
func startTCPServer(t *testing.T, greet func(net.Conn) net.Conn) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(ioTimeout))
				if rc := greet(c); rc != nil {
					_, _ = io.Copy(io.Discard, rc)
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// dnsHandler serves the test zone: an A record for www, the zone's SOA, and
// NXDOMAIN (with the SOA in the authority section) for anything else.
func dnsHandler(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: dnsZone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 300},
		Ns:      "ns1." + dnsZone,
		Mbox:    "hostmaster." + dnsZone,
		Serial:  dnsSerial,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  300,
	}
	ns := &dns.NS{Hdr: dns.RR_Header{Name: dnsZone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 300}, Ns: "ns1." + dnsZone}
	nsA := &dns.A{Hdr: dns.RR_Header{Name: "ns1." + dnsZone, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(127, 0, 0, 1)}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case name == "www."+dnsZone && q.Qtype == dns.TypeA:
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)}}
		m.Ns = []dns.RR{ns}
		m.Extra = []dns.RR{nsA}
	case name == dnsZone && q.Qtype == dns.TypeSOA:
		m.Answer = []dns.RR{soa}
		m.Ns = []dns.RR{ns}
		m.Extra = []dns.RR{nsA}
	case name == "www."+dnsZone || name == dnsZone || name == "ns1."+dnsZone:
		m.Ns = []dns.RR{soa}
	default:
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa}
	}
	_ = w.WriteMsg(m)
}

// startDNSServer serves dnsHandler over UDP and TCP on loopback.
func startDNSServer(t *testing.T) (udpAddr, tcpAddr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	handler := dns.HandlerFunc(dnsHandler)
	servers := []*dns.Server{
		{PacketConn: pc, Handler: handler, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout},
		{Listener: l, Handler: handler, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout},
	}
	var wg sync.WaitGroup
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Go(func() { _ = srv.ActivateAndServe() })
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("DNS server did not start within 5s")
		}
	}
	t.Cleanup(func() {
		for _, srv := range servers {
			_ = srv.Shutdown()
		}
		wg.Wait()
	})
	return pc.LocalAddr().String(), l.Addr().String()
}

// startGRPCServer serves the standard health service: the overall service ""
// is SERVING and compat.NotServing is NOT_SERVING.
func startGRPCServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("compat.NotServing", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return l.Addr().String()
}
