package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

// TCPDetails holds what the tcp prober found.
type TCPDetails struct {
	// FailedDueToRegex is set when an expect regexp was given data (or the
	// end of the connection) and never matched.
	FailedDueToRegex bool `json:"failed_due_to_regex"`
	// ExpectInfo are the labels of probe_expect_info, their values expanded
	// from the matching expect's submatches.
	ExpectInfo []ExpectLabel `json:"expect_info,omitempty"`
	// StepsCompleted counts the query_response steps that went through.
	StepsCompleted int `json:"steps_completed"`
}

// ExpectLabel is one label of probe_expect_info.
type ExpectLabel struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

func (d *TCPDetails) samples(e emitter, r *Result) {
	e.gauge("probe_failed_due_to_regex", "Indicates if probe failed due to regex", boolValue(d.FailedDueToRegex))
	if len(d.ExpectInfo) > 0 {
		pairs := make([]string, 0, 2*len(d.ExpectInfo))
		for _, l := range d.ExpectInfo {
			pairs = append(pairs, l.Name, l.Value)
		}
		e.gauge("probe_expect_info", "Explicit content matched", 1, pairs...)
	}
}

// setExpectInfo records the labels of a matched step. blackbox_exporter
// registers probe_expect_info once per labelled step and panics on a second
// one; here later steps add to (or override) the labels of earlier ones, so
// the series keeps one consistent label set.
func (d *TCPDetails) setExpectInfo(labels []ExpectLabel) {
	for _, l := range labels {
		replaced := false
		for i := range d.ExpectInfo {
			if d.ExpectInfo[i].Name == l.Name {
				d.ExpectInfo[i].Value, replaced = l.Value, true
			}
		}
		if !replaced {
			d.ExpectInfo = append(d.ExpectInfo, l)
		}
	}
}

// tcpProbe is a tcp module prepared for probing.
type tcpProbe struct {
	cfg    config.TCPProbe
	steps  []tcpStep
	dialer *net.Dialer
	guard  *destinationGuard
	// tls is the module's client TLS configuration, built once when tls is
	// on or a step upgrades with starttls; each probe clones it.
	tls *tls.Config
}

func newTCPProbe(m config.Module) (probeFunc, error) {
	guard, err := newDestinationGuard(m.Destinations)
	if err != nil {
		return nil, err
	}
	t := &tcpProbe{cfg: m.TCP, dialer: dialer(m.TCP.SourceIPAddress, guard), guard: guard}
	needTLS := m.TCP.TLS
	for i, qr := range m.TCP.QueryResponse {
		st, err := newTCPStep(qr)
		if err != nil {
			return nil, fmt.Errorf("tcp.query_response[%d]: %w", i, err)
		}
		t.steps = append(t.steps, st)
		needTLS = needTLS || qr.StartTLS
	}
	if needTLS {
		cfg, err := promconfig.NewTLSConfig(&m.TCP.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("tcp.tls_config: %w", err)
		}
		t.tls = cfg
	}
	return t.probe, nil
}

// tcpStep is one prepared query_response entry.
type tcpStep struct {
	expect      *regexp.Regexp
	expectBytes []byte // nil unless expect_bytes is set
	labels      []config.Label
	send        string
	startTLS    bool
}

func newTCPStep(qr config.QueryResponse) (tcpStep, error) {
	st := tcpStep{labels: qr.Labels, send: qr.Send, startTLS: qr.StartTLS}
	if qr.Expect.IsSet() {
		st.expect = qr.Expect.Regexp
		if st.expect == nil { // not through config validation (built in code)
			re, err := regexp.Compile(qr.Expect.String())
			if err != nil {
				return st, fmt.Errorf("expect: %w", err)
			}
			st.expect = re
		}
	}
	if qr.ExpectBytes != "" {
		if st.expect != nil {
			return st, errors.New("expect and expect_bytes are both set")
		}
		st.expectBytes = []byte(qr.ExpectBytes)
	}
	return st, nil
}

func (t *tcpProbe) probe(ctx context.Context, target string, p Params, r *Result) {
	d := &TCPDetails{}
	r.TCP = d
	host, port, err := net.SplitHostPort(target)
	if err != nil || host == "" || !validTargetPort(port) {
		r.Fail(ReasonInvalidTarget, "target %q is not host:port", target)
		return
	}
	ip, ok := resolveTarget(ctx, t.guard, host, t.cfg.IPProtocol, t.cfg.IPProtocolFallback, r, p.Logger)
	if !ok {
		return
	}
	raw, ok := t.dial(ctx, ip, port, r, p.Logger)
	if !ok {
		return
	}
	// Closing the TCP connection also ends a TLS session over it; the probe
	// sends no close_notify.
	defer raw.Close()
	// The whole conversation, TLS handshakes included, ends by ctx's end.
	release := bindConnToContext(ctx, raw)
	defer release()

	conn := raw
	if t.cfg.TLS {
		tc, ok := t.handshake(ctx, raw, host, r, p.Logger)
		if !ok {
			return
		}
		conn = tc
	}
	t.converse(ctx, conn, host, d, r, p.Logger)
}

// validTargetPort accepts a port number (1-65535) or a service name ("ssh") the
// dialer will look up.
func validTargetPort(port string) bool {
	if strings.Trim(port, "0123456789") == "" {
		n, err := strconv.ParseUint(port, 10, 16)
		return err == nil && n > 0
	}
	return strings.Trim(port, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}

func (t *tcpProbe) dial(ctx context.Context, ip net.IP, port string, r *Result, logger *slog.Logger) (net.Conn, bool) {
	network := "tcp6"
	if ip.To4() != nil {
		network = "tcp4"
	}
	addr := net.JoinHostPort(ip.String(), port)
	logger.Debug("Dialing TCP", "address", addr, "tls", t.cfg.TLS, "source_ip_address", t.cfg.SourceIPAddress)
	start := time.Now()
	conn, err := t.dialer.DialContext(ctx, network, addr)
	r.recordPhase("connect", start, time.Now())
	if err != nil {
		logger.Error("Error dialing TCP", "address", addr, "err", err)
		r.Fail(connectReason(ctx, err), "dialing %s: %v", addr, err)
		return nil, false
	}
	logger.Debug("Successfully dialed", "address", addr)
	return conn, true
}

// handshake upgrades conn to TLS (tls: true, or a starttls step) and records
// the session in r.TLS.
func (t *tcpProbe) handshake(ctx context.Context, conn net.Conn, host string, r *Result, logger *slog.Logger) (net.Conn, bool) {
	cfg := tlsConfigFor(t.tls, host)
	logger.Debug("Starting TLS handshake", "server_name", cfg.ServerName)
	start := time.Now()
	tc, err := tlsHandshake(ctx, conn, cfg, r)
	r.recordPhase("tls", start, time.Now())
	if err != nil {
		logger.Error("TLS handshake failed", "err", err)
		return nil, false
	}
	r.TLS = NewTLSDetails(tc.ConnectionState())
	logger.Debug("TLS handshake succeeded", "version", r.TLS.Version, "cipher", r.TLS.Cipher)
	return tc, true
}
