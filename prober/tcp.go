package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

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
	t, err := newConversation(m.TCP, "tcp")
	if err != nil {
		return nil, err
	}
	t.dialer, t.guard = dialer(m.TCP.SourceIPAddress, guard), guard
	return t.probe, nil
}

// newConversation prepares the query_response steps and the TLS
// configuration of a tcp module, or of a unix module (section names the
// configuration section in errors).
func newConversation(cfg config.TCPProbe, section string) (*tcpProbe, error) {
	t := &tcpProbe{cfg: cfg}
	needTLS := cfg.TLS
	for i, qr := range cfg.QueryResponse {
		st, err := newTCPStep(qr)
		if err != nil {
			return nil, fmt.Errorf("%s.query_response[%d]: %w", section, i, err)
		}
		t.steps = append(t.steps, st)
		needTLS = needTLS || qr.StartTLS
	}
	if needTLS {
		tc, err := promconfig.NewTLSConfig(&cfg.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("%s.tls_config: %w", section, err)
		}
		t.tls = tc
	}
	return t, nil
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

func (t *tcpProbe) probe(ctx context.Context, target string, p Params, r *result.Result) {
	d := &result.TCPDetails{}
	r.TCP = d
	host, port, ok := endpoint.TCP(target)
	if !ok {
		r.Fail(result.ReasonInvalidTarget, "target %q is not host:port", target)
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

	// The TLS server name: tls_config.server_name, else the hostname
	// parameter, else the target's host, as blackbox_exporter chooses it.
	serverName := host
	if p.Hostname != "" {
		serverName = p.Hostname
	}
	conn := raw
	if t.cfg.TLS {
		tc, ok := t.handshake(ctx, raw, serverName, r, p.Logger)
		if !ok {
			return
		}
		conn = tc
	}
	t.converse(ctx, conn, serverName, d, r, p.Logger)
}

func (t *tcpProbe) dial(ctx context.Context, ip net.IP, port string, r *result.Result, logger *slog.Logger) (net.Conn, bool) {
	network := "tcp6"
	if ip.To4() != nil {
		network = "tcp4"
	}
	addr := net.JoinHostPort(ip.String(), port)
	logger.Debug("Dialing TCP", "address", addr, "tls", t.cfg.TLS, "source_ip_address", t.cfg.SourceIPAddress)
	start := time.Now()
	conn, err := t.dialer.DialContext(ctx, network, addr)
	r.RecordPhase("connect", start, time.Now())
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
func (t *tcpProbe) handshake(ctx context.Context, conn net.Conn, host string, r *result.Result, logger *slog.Logger) (net.Conn, bool) {
	cfg := tlsConfigFor(t.tls, host)
	logger.Debug("Starting TLS handshake", "server_name", cfg.ServerName)
	start := time.Now()
	tc, err := tlsHandshake(ctx, conn, cfg, r)
	r.RecordPhase("tls", start, time.Now())
	if err != nil {
		logger.Error("TLS handshake failed", "err", err)
		return nil, false
	}
	r.TLS = result.NewTLSDetails(tc.ConnectionState())
	logger.Debug("TLS handshake succeeded", "version", r.TLS.Version, "cipher", r.TLS.Cipher)
	return tc, true
}
