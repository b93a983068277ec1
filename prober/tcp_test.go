package prober

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// Helpers shared by the tcp and dns prober tests.

// tcpTestPKI is a CA and a server certificate it signed for 127.0.0.1 and
// probe.test.
type tcpTestPKI struct {
	caFile   string // the CA certificate, PEM, in t.TempDir()
	server   tls.Certificate
	notAfter time.Time // of the server certificate
}

func newTCPTestPKI(tb testing.TB) *tcpTestPKI {
	tb.Helper()
	caKey := mustECKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vantage test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	leafKey := mustECKey(tb)
	notAfter := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0xbeef),
		Subject:      pkix.Name{CommonName: "probe.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		DNSNames:     []string{"probe.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &tcpTestPKI{
		caFile:   caFile,
		server:   tls.Certificate{Certificate: [][]byte{leafDER, caDER}, PrivateKey: leafKey},
		notAfter: notAfter,
	}
}

func mustECKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func (p *tcpTestPKI) serverConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
}

// newTCPTestServer serves each accepted connection with handle on
// 127.0.0.1:0 and returns its address. Connections are closed when handle
// returns; the server stops (and waits for its handlers) at test cleanup.
func newTCPTestServer(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serveTestListener(tb, ln, handle)
	return ln.Addr().String()
}

// serveTestListener serves each connection ln accepts with handle, closing
// it when handle returns, until test cleanup, which waits for the handlers.
func serveTestListener(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// requireSecondLoopback skips the test where 127.0.0.2 cannot be bound
// (only Linux routes all of 127/8 to lo by default).
func requireSecondLoopback(tb testing.TB) {
	tb.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		tb.Skipf("127.0.0.2 is not usable here: %v", err)
	}
	c.Close()
}

func testProbeLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// runTestProbe prepares m and probes target once within timeout.
func runTestProbe(tb testing.TB, m config.Module, target string, timeout time.Duration) *result.Result {
	tb.Helper()
	mod, err := Prepare("test", m)
	if err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return mod.Probe(ctx, target, Params{Logger: testProbeLogger(tb)})
}

// seriesOfResult renders r's samples as `name{label="value",...}` → value,
// labels in the order the prober emits them.
func seriesOfResult(r *result.Result) map[string]float64 {
	out := map[string]float64{}
	r.Samples(func(s result.Sample) { out[s.String()] = s.Value })
	return out
}

// resultCollector exposes a result's samples as const metrics, as /probe
// does, so tests can compare exposition text with testutil.
type resultCollector struct{ r *result.Result }

func (c resultCollector) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(c, ch) }

func (c resultCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.Samples(func(s result.Sample) {
		desc := prometheus.NewDesc(s.Name, s.Help, s.LabelNames, nil)
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, s.Value, s.LabelValues...)
	})
}

func compareResultSeries(tb testing.TB, r *result.Result, expected string, names ...string) {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(resultCollector{r})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(expected), names...); err != nil {
		tb.Error(err)
	}
}

func requireReason(tb testing.TB, r *result.Result, want result.Reason) {
	tb.Helper()
	if r.Reason != want {
		tb.Fatalf("reason = %q (%s), want %q", r.Reason, r.Error, want)
	}
	if (want == result.ReasonNone) != r.Success {
		tb.Fatalf("success = %v with reason %q", r.Success, r.Reason)
	}
}

// The tcp prober's own tests.

func tcpModule(qr ...config.QueryResponse) config.Module {
	m := config.DefaultModule
	m.Prober = "tcp"
	m.TCP = config.DefaultTCPProbe
	m.TCP.IPProtocol = "ip4"
	m.TCP.QueryResponse = qr
	return m
}

// readLineFrom reads one "\n"-terminated line, without the line ending.
func readLineFrom(br *bufio.Reader) string {
	s, _ := br.ReadString('\n')
	return strings.TrimRight(s, "\r\n")
}

func TestTCPBannerExpectLabels(t *testing.T) {
	addr := newTCPTestServer(t, func(c net.Conn) {
		io.WriteString(c, "# a line before the banner\r\nSSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
		io.Copy(io.Discard, c) // hold the connection until the prober closes it
	})
	m := tcpModule(config.QueryResponse{
		Expect: mustRegexp(t, `^SSH-2.0-([^ -]+)(?: (.*))?$`),
		Labels: []config.Label{{Name: "ssh_version", Value: "${1}"}, {Name: "ssh_comments", Value: "${2}"}},
	})
	r := runTestProbe(t, m, addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	// The "\r" of the line ending is not part of the last submatch.
	compareResultSeries(t, r, `
# HELP probe_expect_info Explicit content matched
# TYPE probe_expect_info gauge
probe_expect_info{ssh_comments="Ubuntu-3ubuntu13",ssh_version="OpenSSH_9.6p1"} 1
# HELP probe_failed_due_to_regex Indicates if probe failed due to regex
# TYPE probe_failed_due_to_regex gauge
probe_failed_due_to_regex 0
`, "probe_expect_info", "probe_failed_due_to_regex")
	if r.TLS != nil {
		t.Errorf("TLS details set without TLS: %+v", r.TLS)
	}
	if got := seriesOfResult(r)["probe_ip_protocol"]; got != 4 {
		t.Errorf("probe_ip_protocol = %v, want 4", got)
	}
}

func TestTCPExpectBytes(t *testing.T) {
	addr := newTCPTestServer(t, func(c net.Conn) {
		c.Write([]byte{0x00, 0x01, 'O', 'K', 0xff})
		io.Copy(io.Discard, c)
	})
	for _, tc := range []struct {
		name string
		want string
		ok   result.Reason
	}{
		{"exact", "\x00\x01OK", result.ReasonNone},
		{"all five", "\x00\x01OK\xff", result.ReasonNone},
		{"differs", "\x00\x02OK", result.ReasonExpectMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runTestProbe(t, tcpModule(config.QueryResponse{ExpectBytes: tc.want}), addr, 5*time.Second)
			requireReason(t, r, tc.ok)
			if r.TCP.FailedDueToRegex {
				t.Error("probe_failed_due_to_regex set by an expect_bytes step")
			}
		})
	}
}

func TestTCPExpectBytesAndExpectAreExclusive(t *testing.T) {
	m := tcpModule(config.QueryResponse{Expect: mustRegexp(t, "a"), ExpectBytes: "a"})
	if _, err := Prepare("test", m); err == nil || !strings.Contains(err.Error(), "expect_bytes") {
		t.Fatalf("Prepare error = %v, want one about expect and expect_bytes", err)
	}
}

// An IRC-like conversation: the PONG must echo the PING's token (${1}).
func TestTCPSendExpandsSubmatches(t *testing.T) {
	got := make(chan string, 1)
	addr := newTCPTestServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if line := readLineFrom(br); line != "NICK probe" {
			got <- "first line: " + line
			return
		}
		io.WriteString(c, "PING :tok-4711\r\n")
		raw, _ := br.ReadString('\n')
		got <- raw
		if raw == "PONG tok-4711\n" {
			io.WriteString(c, ":irc.test 001 probe :Welcome\r\n")
		} else {
			io.WriteString(c, "ERROR :bad pong\r\n")
		}
		io.Copy(io.Discard, c)
	})
	m := tcpModule(
		config.QueryResponse{Send: "NICK probe"},
		config.QueryResponse{Expect: mustRegexp(t, `^PING :([^ ]+)`), Send: "PONG ${1}",
			Labels: []config.Label{{Name: "token", Value: "${1}"}}},
		config.QueryResponse{Expect: mustRegexp(t, `^:([^ ]+) 001`),
			Labels: []config.Label{{Name: "server", Value: "${1}"}}},
	)
	r := runTestProbe(t, m, addr, 5*time.Second)
	if line := <-got; line != "PONG tok-4711\n" {
		t.Fatalf("server got %q, want the expanded PONG and a newline", line)
	}
	requireReason(t, r, result.ReasonNone)
	if r.TCP.StepsCompleted != 3 {
		t.Errorf("steps completed = %d, want 3", r.TCP.StepsCompleted)
	}
	// Labels of several steps merge into one probe_expect_info series.
	if v, ok := seriesOfResult(r)[`probe_expect_info{token="tok-4711",server="irc.test"}`]; !ok || v != 1 {
		t.Errorf("probe_expect_info missing or wrong: %v", seriesOfResult(r))
	}
}

func TestTCPStartTLS(t *testing.T) {
	pki := newTCPTestPKI(t)
	got := make(chan string, 1)
	addr := newTCPTestServer(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		io.WriteString(c, "220 smtp.test ESMTP\r\n")
		if line := readLineFrom(br); line != "STARTTLS" {
			got <- "before TLS: " + line
			return
		}
		io.WriteString(c, "220 Ready to start TLS\r\n")
		tc := tls.Server(c, pki.serverConfig())
		if err := tc.Handshake(); err != nil {
			got <- "handshake: " + err.Error()
			return
		}
		line := readLineFrom(bufio.NewReader(tc))
		got <- line
		io.WriteString(tc, "250 smtp.test at your service\r\n")
		io.Copy(io.Discard, tc)
	})
	m := tcpModule(
		config.QueryResponse{Expect: mustRegexp(t, `^220 `)},
		config.QueryResponse{Send: "STARTTLS"},
		config.QueryResponse{Expect: mustRegexp(t, `^220 Ready`)},
		config.QueryResponse{StartTLS: true},
		config.QueryResponse{Send: "EHLO probe"},
		config.QueryResponse{Expect: mustRegexp(t, `^250 `)},
	)
	m.TCP.TLSConfig.CAFile = pki.caFile
	r := runTestProbe(t, m, addr, 5*time.Second)
	if line := <-got; line != "EHLO probe" {
		t.Fatalf("server read %q over TLS, want EHLO probe", line)
	}
	requireReason(t, r, result.ReasonNone)
	if r.TLS == nil || r.TLS.Subject != "CN=probe.test" || !r.TLS.EarliestCertExpiry.Equal(pki.notAfter) {
		t.Fatalf("TLS details = %+v", r.TLS)
	}
	s := seriesOfResult(r)
	if s["probe_ssl_earliest_cert_expiry"] != float64(pki.notAfter.Unix()) {
		t.Errorf("probe_ssl_earliest_cert_expiry = %v, want %d", s["probe_ssl_earliest_cert_expiry"], pki.notAfter.Unix())
	}
	if _, ok := s[fmt.Sprintf("probe_tls_version_info{version=%q}", r.TLS.Version)]; !ok {
		t.Errorf("no probe_tls_version_info in %v", s)
	}
	if r.TCP.StepsCompleted != 6 || r.PhaseDuration("tls") <= 0 {
		t.Errorf("steps = %d, tls phase = %v", r.TCP.StepsCompleted, r.PhaseDuration("tls"))
	}
}

func TestTCPTLS(t *testing.T) {
	pki := newTCPTestPKI(t)
	// tls.Server on each accepted connection is what tls.Listen does.
	addr := newTCPTestServer(t, func(c net.Conn) {
		tc := tls.Server(c, pki.serverConfig())
		defer tc.Close()
		io.WriteString(tc, "hello over tls\r\n")
		io.Copy(io.Discard, tc)
	})

	for _, tc := range []struct {
		name string
		tls  func(*config.TCPProbe)
		want result.Reason
	}{
		{"verified by IP SAN", func(p *config.TCPProbe) { p.TLSConfig.CAFile = pki.caFile }, result.ReasonNone},
		{"server_name", func(p *config.TCPProbe) {
			p.TLSConfig.CAFile, p.TLSConfig.ServerName = pki.caFile, "probe.test"
		}, result.ReasonNone},
		{"unknown CA", func(p *config.TCPProbe) {}, result.ReasonTLSError},
		{"wrong server_name", func(p *config.TCPProbe) {
			p.TLSConfig.CAFile, p.TLSConfig.ServerName = pki.caFile, "other.test"
		}, result.ReasonTLSError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tcpModule(config.QueryResponse{Expect: mustRegexp(t, `^hello over tls$`)})
			m.TCP.TLS = true
			tc.tls(&m.TCP)
			r := runTestProbe(t, m, addr, 5*time.Second)
			requireReason(t, r, tc.want)
			if tc.want != result.ReasonNone {
				if r.TLS != nil {
					t.Errorf("TLS details set after a failed handshake")
				}
				return
			}
			if r.TLS == nil || r.TLS.SerialNumber != "beef" || r.TLS.LastChainExpiry.IsZero() {
				t.Fatalf("TLS details = %+v", r.TLS)
			}
			if _, ok := seriesOfResult(r)["probe_ssl_last_chain_expiry_timestamp_seconds"]; !ok {
				t.Error("no TLS series for a tls: true probe")
			}
		})
	}
}

func TestTCPConnectRefused(t *testing.T) {
	r := runTestProbe(t, tcpModule(), testbin.FreeAddr(t), 5*time.Second)
	requireReason(t, r, result.ReasonConnectRefused)
	// blackbox_exporter registers probe_failed_due_to_regex before dialing.
	if v, ok := seriesOfResult(r)["probe_failed_due_to_regex"]; !ok || v != 0 {
		t.Errorf("probe_failed_due_to_regex = %v, %v", v, ok)
	}
}

func TestTCPInvalidTarget(t *testing.T) {
	for _, target := range []string{"127.0.0.1", "127.0.0.1:", ":22", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1://x"} {
		r := runTestProbe(t, tcpModule(), target, time.Second)
		requireReason(t, r, result.ReasonInvalidTarget)
	}
}

func TestTCPExpectMismatch(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(net.Conn)
	}{
		{"peer closes", func(c net.Conn) { io.WriteString(c, "220 not ssh\r\n") }},
		{"peer talks then stalls", func(c net.Conn) {
			io.WriteString(c, "220 not ssh\r\n")
			io.Copy(io.Discard, c)
		}},
		{"peer closes without a word", func(c net.Conn) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := newTCPTestServer(t, tc.serve)
			m := tcpModule(config.QueryResponse{Expect: mustRegexp(t, `^SSH-2.0-`)})
			r := runTestProbe(t, m, addr, 500*time.Millisecond)
			requireReason(t, r, result.ReasonExpectMismatch)
			if v := seriesOfResult(r)["probe_failed_due_to_regex"]; v != 1 {
				t.Errorf("probe_failed_due_to_regex = %v, want 1", v)
			}
		})
	}
}

// A peer that accepts and never speaks ends the probe at the deadline, and
// the prober closes its connection.
func TestTCPSilentPeerEndsAtDeadline(t *testing.T) {
	closed := make(chan struct{})
	addr := newTCPTestServer(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		close(closed)
	})
	m := tcpModule(config.QueryResponse{Expect: mustRegexp(t, `^SSH-2.0-`)})
	start := time.Now()
	r := runTestProbe(t, m, addr, 300*time.Millisecond)
	elapsed := time.Since(start)
	requireReason(t, r, result.ReasonTimeout)
	if elapsed < 250*time.Millisecond || elapsed > 3*time.Second {
		t.Errorf("probe took %v, want about the 300ms deadline", elapsed)
	}
	if r.TCP.FailedDueToRegex {
		t.Error("probe_failed_due_to_regex set although nothing was received")
	}
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("the prober left its connection open")
	}
}

func TestTCPOverlongLine(t *testing.T) {
	addr := newTCPTestServer(t, func(c net.Conn) {
		c.Write(slices.Repeat([]byte("x"), 2*maxTCPLine))
		io.Copy(io.Discard, c)
	})
	r := runTestProbe(t, tcpModule(config.QueryResponse{Expect: mustRegexp(t, `^y`)}), addr, 5*time.Second)
	requireReason(t, r, result.ReasonProtocolError)
}

func TestTCPSourceIPAddress(t *testing.T) {
	requireSecondLoopback(t)
	from := make(chan string, 1)
	addr := newTCPTestServer(t, func(c net.Conn) {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		from <- host
	})
	m := tcpModule()
	m.TCP.SourceIPAddress = "127.0.0.2"
	r := runTestProbe(t, m, addr, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	if got := <-from; got != "127.0.0.2" {
		t.Fatalf("server saw the probe from %s, want 127.0.0.2", got)
	}
}

func TestReadLineSplitsAsScanLines(t *testing.T) {
	br := bufio.NewReaderSize(strings.NewReader("a\r\n\nb\nlast\r"), 16)
	var got []string
	for {
		line, err := readLine(br)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		got = append(got, string(line))
	}
	if want := []string{"a", "", "b", "last"}; !slices.Equal(got, want) {
		t.Fatalf("lines = %q, want %q", got, want)
	}
}

// mustRegexp compiles a regexp as the configuration loader does.
func mustRegexp(tb testing.TB, s string) config.Regexp {
	tb.Helper()
	re, err := config.NewRegexp(s)
	if err != nil {
		tb.Fatal(err)
	}
	return re
}
