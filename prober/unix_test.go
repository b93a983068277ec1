package prober

import (
	"bufio"
	"crypto/tls"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// newUnixTestServer serves each connection to a unix socket in a test
// directory with handle and returns the socket's path.
func newUnixTestServer(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "probe.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	serveTestListener(tb, ln, handle)
	return path
}

// pingPong answers "PING" with "PONG".
func pingPong(c net.Conn) {
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && strings.TrimSpace(line) == "PING" {
		_, _ = c.Write([]byte("PONG\n"))
	}
}

func unixTestModule(tb testing.TB, edit func(*config.UnixProbe)) config.Module {
	m := config.DefaultModule
	m.Prober = "unix"
	m.Unix.QueryResponse = []config.QueryResponse{{Send: "PING"}, {Expect: mustRegexp(tb, "^PONG$")}}
	if edit != nil {
		edit(&m.Unix)
	}
	return m
}

func TestUnixQueryResponse(t *testing.T) {
	path := newUnixTestServer(t, pingPong)
	r := runTestProbe(t, unixTestModule(t, nil), path, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	compareResultSeries(t, r, `
# HELP probe_failed_due_to_bytes Indicates if probe failed due to bytes
# TYPE probe_failed_due_to_bytes gauge
probe_failed_due_to_bytes 0
# HELP probe_failed_due_to_regex Indicates if probe failed due to regex
# TYPE probe_failed_due_to_regex gauge
probe_failed_due_to_regex 0
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
`, "probe_failed_due_to_bytes", "probe_failed_due_to_regex", "probe_success", "probe_ip_protocol", "probe_ssl_earliest_cert_expiry")

	r = runTestProbe(t, unixTestModule(t, func(u *config.UnixProbe) {
		u.QueryResponse[1].Expect = mustRegexp(t, "^PANG$")
	}), path, 2*time.Second)
	requireReason(t, r, result.ReasonExpectMismatch)
	if got := seriesOfResult(r)["probe_failed_due_to_regex"]; got != 1 {
		t.Errorf("probe_failed_due_to_regex = %v, want 1", got)
	}
}

func TestUnixTLS(t *testing.T) {
	pki := newTCPTestPKI(t)
	path := newUnixTestServer(t, func(c net.Conn) {
		tc := tls.Server(c, pki.serverConfig())
		defer tc.Close()
		pingPong(tc)
	})
	module := func(serverName string) config.Module {
		return unixTestModule(t, func(u *config.UnixProbe) {
			u.TLS = true
			u.TLSConfig.CAFile = pki.caFile
			u.TLSConfig.ServerName = serverName
		})
	}
	r := runTestProbe(t, module("probe.test"), path, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if got := seriesOfResult(r)["probe_ssl_earliest_cert_expiry"]; got != float64(pki.notAfter.Unix()) {
		t.Errorf("probe_ssl_earliest_cert_expiry = %v, want %d", got, pki.notAfter.Unix())
	}
	// A socket path names no host to verify the certificate against.
	requireReason(t, runTestProbe(t, module(""), path, 2*time.Second), result.ReasonTLSError)
}

func TestUnixNoSocket(t *testing.T) {
	r := runTestProbe(t, unixTestModule(t, nil), filepath.Join(t.TempDir(), "absent.sock"), time.Second)
	requireReason(t, r, result.ReasonConnectRefused)
	if _, ok := seriesOfResult(r)["probe_failed_due_to_regex"]; !ok {
		t.Error("probe_failed_due_to_regex missing from a failed probe")
	}
	requireReason(t, runTestProbe(t, unixTestModule(t, nil), "", time.Second), result.ReasonInvalidTarget)
}
