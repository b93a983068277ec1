package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"
	promconfig "github.com/prometheus/common/config"
	"golang.org/x/net/idna"

	"github.com/vantageprobe/vantage/config"
)

// dnsProbe is a dns module prepared for probing.
type dnsProbe struct {
	cfg         config.DNSProbe
	question    dns.Question
	validRcodes []int
	answer      rrChecks
	authority   rrChecks
	additional  rrChecks
	transport   string // udp, tcp or tcp-tls
	defaultPort string
	dialer      *net.Dialer
	tcpDialer   *net.Dialer // retry_truncated_over_tcp only
	tls         *tls.Config // DNS over TLS only; each probe clones it
	guard       *destinationGuard
}

func newDNSProbe(m config.Module) (probeFunc, error) {
	c := m.DNS
	q := &dnsProbe{cfg: c, transport: "udp", defaultPort: "53"}
	var err error
	if q.question, err = dnsQuestion(c); err != nil {
		return nil, err
	}
	switch c.TransportProtocol {
	case "", "udp":
	case "tcp":
		q.transport = "tcp"
	default:
		return nil, fmt.Errorf("dns.transport_protocol: unknown transport protocol %q", c.TransportProtocol)
	}
	if c.DNSOverTLS {
		if q.transport != "tcp" {
			return nil, errors.New("dns.dns_over_tls needs transport_protocol: tcp")
		}
		q.transport, q.defaultPort = "tcp-tls", "853"
		if q.tls, err = promconfig.NewTLSConfig(&c.TLSConfig); err != nil {
			return nil, fmt.Errorf("dns.tls_config: %w", err)
		}
	}
	if q.guard, err = newDestinationGuard(m.Destinations); err != nil {
		return nil, err
	}
	q.dialer = dialer("", q.guard)
	if c.SourceIPAddress != "" {
		src := net.ParseIP(c.SourceIPAddress)
		if src == nil {
			return nil, fmt.Errorf("dns.source_ip_address: %q is not an IP address", c.SourceIPAddress)
		}
		if q.transport == "udp" {
			q.dialer.LocalAddr = &net.UDPAddr{IP: src}
		} else {
			q.dialer.LocalAddr = &net.TCPAddr{IP: src}
		}
	}
	if c.RetryTruncatedOverTCP && q.transport == "udp" {
		q.tcpDialer = dialer(c.SourceIPAddress, q.guard)
	}
	if q.validRcodes, err = dnsRcodes(c.ValidRcodes); err != nil {
		return nil, err
	}
	for _, s := range []struct {
		key string
		v   config.DNSRRValidator
		out *rrChecks
	}{
		{"validate_answer_rrs", c.ValidateAnswer, &q.answer},
		{"validate_authority_rrs", c.ValidateAuthority, &q.authority},
		{"validate_additional_rrs", c.ValidateAdditional, &q.additional},
	} {
		if *s.out, err = newRRChecks(s.v); err != nil {
			return nil, fmt.Errorf("dns.%s: %w", s.key, err)
		}
	}
	return q.probe, nil
}

// dnsQuestion builds the module's question: query_type defaults to ANY and
// query_class to IN, as blackbox_exporter's; an internationalized
// query_name is sent in its ASCII (punycode) form.
func dnsQuestion(c config.DNSProbe) (dns.Question, error) {
	if c.QueryName == "" {
		return dns.Question{}, errors.New("dns.query_name must be set")
	}
	name := c.QueryName
	if !isASCII(name) {
		ascii, err := idna.Lookup.ToASCII(name)
		if err != nil {
			return dns.Question{}, fmt.Errorf("dns.query_name %q: %w", name, err)
		}
		name = ascii
	}
	q := dns.Question{Name: dns.Fqdn(name), Qtype: dns.TypeANY, Qclass: dns.ClassINET}
	if c.QueryType != "" {
		t, ok := dns.StringToType[c.QueryType]
		if !ok {
			return q, fmt.Errorf("dns.query_type: unknown DNS type %q", c.QueryType)
		}
		q.Qtype = t
	}
	if c.QueryClass != "" {
		cl, ok := dns.StringToClass[c.QueryClass]
		if !ok {
			return q, fmt.Errorf("dns.query_class: unknown DNS class %q", c.QueryClass)
		}
		q.Qclass = cl
	}
	return q, nil
}

// rcodeName names an rcode, or gives its number when it has no name.
func rcodeName(rc int) string {
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return strconv.Itoa(rc)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// dnsRcodes resolves valid_rcodes; none configured means NOERROR only.
func dnsRcodes(names []string) ([]int, error) {
	if len(names) == 0 {
		return []int{dns.RcodeSuccess}, nil
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		rc, ok := dns.StringToRcode[n]
		if !ok {
			return nil, fmt.Errorf("dns.valid_rcodes: unknown DNS rcode %q", n)
		}
		out = append(out, rc)
	}
	return out, nil
}

func (q *dnsProbe) probe(ctx context.Context, target string, p Params, r *result.Result) {
	r.InitPhases("resolve", "connect", "request")
	d := &result.DNSDetails{Transport: q.transport}
	if q.tcpDialer != nil {
		d.TruncatedRetry = new(bool)
	}
	r.DNS = d
	host, port, ok := endpoint.DNS(target, q.defaultPort)
	if !ok {
		r.Fail(result.ReasonInvalidTarget, "target %q is not host or host:port", target)
		return
	}
	ip, ok := resolveTarget(ctx, q.guard, host, q.cfg.IPProtocol, q.cfg.IPProtocolFallback, r, p.Logger)
	if !ok {
		return
	}
	conn, ok := q.connect(ctx, q.transport, ip, port, host, d, r, p.Logger)
	if !ok {
		return
	}
	defer conn.Close()
	resp, ok := q.exchange(ctx, conn, q.transport == "udp", r, p.Logger)
	if !ok {
		return
	}
	if resp.Truncated && q.tcpDialer != nil {
		if resp, ok = q.retryOverTCP(ctx, ip, port, d, r, p.Logger); !ok {
			return
		}
	}
	d.QuerySucceeded = true
	d.Rcode = rcodeName(resp.Rcode)
	d.AnswerRRs, d.AuthorityRRs, d.AdditionalRRs = len(resp.Answer), len(resp.Ns), len(resp.Extra)
	if q.question.Qtype == dns.TypeSOA {
		var serial uint32
		for _, rr := range resp.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				serial = soa.Serial
			}
		}
		d.Serial = &serial
	}
	q.validate(resp, r, p.Logger)
}

// connect opens the connection the query goes over: a UDP socket, a TCP
// connection, or a TCP connection and a TLS handshake. Its duration is the
// "connect" phase.
func (q *dnsProbe) connect(ctx context.Context, transport string, ip net.IP, port, host string, d *result.DNSDetails, r *result.Result, logger *slog.Logger) (*dns.Conn, bool) {
	network, dial := "tcp", q.dialer
	switch {
	case transport == "udp":
		network = "udp"
	case q.transport == "udp":
		dial = q.tcpDialer // the retry of a truncated answer
	}
	if ip.To4() != nil {
		network += "4"
	} else {
		network += "6"
	}
	addr := net.JoinHostPort(ip.String(), port)
	logger.Debug("Connecting to DNS server", "address", addr, "transport", transport, "source_ip_address", q.cfg.SourceIPAddress)
	start := time.Now()
	defer func() { r.RecordPhase("connect", start, time.Now()) }()
	conn, err := dial.DialContext(ctx, network, addr)
	if err != nil {
		logger.Error("Error connecting to DNS server", "address", addr, "err", err)
		r.Fail(connectReason(ctx, err), "connecting to %s: %v", addr, err)
		return nil, false
	}
	if transport == "tcp-tls" {
		tc, err := tlsHandshake(ctx, conn, tlsConfigFor(q.tls, host), r)
		if err != nil {
			logger.Error("TLS handshake failed", "err", err)
			conn.Close()
			return nil, false
		}
		d.TLS = result.NewTLSDetails(tc.ConnectionState())
		conn = tc
	}
	return &dns.Conn{Conn: conn}, true
}

// exchange sends the query and reads its answer; its duration is the
// "request" phase.
func (q *dnsProbe) exchange(ctx context.Context, conn *dns.Conn, udp bool, r *result.Result, logger *slog.Logger) (*dns.Msg, bool) {
	msg := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Id: dns.Id(), RecursionDesired: q.cfg.Recursion},
		Question: []dns.Question{q.question},
	}
	release := bindConnToContext(ctx, conn.Conn)
	defer release()
	logger.Debug("Making DNS query", "query", q.question.Name,
		"type", dns.TypeToString[q.question.Qtype], "class", dns.ClassToString[q.question.Qclass],
		"recursion_desired", q.cfg.Recursion)
	start := time.Now()
	resp, err := dnsRoundTrip(conn, msg, udp)
	r.RecordPhase("request", start, time.Now())
	if err != nil {
		logger.Error("Error while sending a DNS query", "err", err)
		switch {
		case ioTimedOut(ctx, err):
			r.Fail(result.ReasonTimeout, "no DNS answer before the deadline: %v", err)
		case isRefused(err):
			r.Fail(result.ReasonConnectRefused, "DNS query refused: %v", err)
		default:
			r.Fail(result.ReasonProtocolError, "DNS exchange failed: %v", err)
		}
		return nil, false
	}
	logger.Debug("Got response", "response", resp) // formatted only when debug logging is on
	return resp, true
}

// dnsRoundTrip writes msg and reads the answer with its ID. Over UDP,
// datagrams with another ID (strays, spoofing attempts) are skipped, as
// miekg/dns's client does; over TCP a wrong ID is an error.
func dnsRoundTrip(conn *dns.Conn, msg *dns.Msg, udp bool) (*dns.Msg, error) {
	if err := conn.WriteMsg(msg); err != nil {
		return nil, fmt.Errorf("sending query: %w", err)
	}
	for {
		resp, err := conn.ReadMsg()
		switch {
		case err != nil && resp != nil:
			return nil, fmt.Errorf("malformed answer: %w", err)
		case err != nil:
			return nil, fmt.Errorf("reading answer: %w", err)
		case resp.Id == msg.Id:
			return resp, nil
		case !udp:
			return nil, fmt.Errorf("answer ID %d does not match query ID %d", resp.Id, msg.Id)
		}
	}
}
