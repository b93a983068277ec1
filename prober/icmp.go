package prober

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/vantageprobe/vantage/config"
)

// defaultICMPPayload is the echo data sent when payload_size is not set;
// with payload_size it is repeated to that length.
const defaultICMPPayload = "vantage-exporter icmp echo"

// icmpProbe is an icmp module prepared for probing.
type icmpProbe struct {
	cfg     config.ICMPProbe
	source  net.IP // nil: the kernel chooses
	guard   *destinationGuard
	payload []byte
	// listenRaw and listenDatagram open the two kinds of socket; tests
	// replace them to exercise the fallback.
	listenRaw      func(family int, source string, dontFragment bool) (*icmpSocket, error)
	listenDatagram func(family int, source string) (*icmpSocket, error)
}

func newICMPProbe(m config.Module) (probeFunc, error) {
	q, err := newICMPProber(m.ICMP)
	if err != nil {
		return nil, err
	}
	if q.guard, err = newDestinationGuard(m.Destinations); err != nil {
		return nil, err
	}
	return q.probe, nil
}

func newICMPProber(c config.ICMPProbe) (*icmpProbe, error) {
	q := &icmpProbe{cfg: c, listenRaw: listenRawICMP, listenDatagram: listenDatagramICMP}
	if c.SourceIPAddress != "" {
		if q.source = net.ParseIP(c.SourceIPAddress); q.source == nil {
			return nil, fmt.Errorf("icmp.source_ip_address: %q is not an IP address", c.SourceIPAddress)
		}
	}
	if c.TTL < 0 || c.TTL > 255 {
		return nil, fmt.Errorf("icmp.ttl: %d is not between 0 and 255", c.TTL)
	}
	if c.PayloadSize < 0 || c.PayloadSize > 65000 {
		return nil, fmt.Errorf("icmp.payload_size: %d is not between 0 and 65000", c.PayloadSize)
	}
	q.payload = []byte(defaultICMPPayload)
	if c.PayloadSize > 0 {
		q.payload = make([]byte, c.PayloadSize)
		for i := 0; i < len(q.payload); i += copy(q.payload[i:], defaultICMPPayload) {
		}
	}
	return q, nil
}

// icmpInFlight counts the icmp probes of the process in flight.
var icmpInFlight atomic.Int64

func (q *icmpProbe) probe(ctx context.Context, target string, p Params, r *result.Result) {
	icmpInFlight.Add(1)
	defer icmpInFlight.Add(-1)
	r.InitPhases("resolve", "setup", "rtt")
	d := &result.ICMPDetails{PayloadBytes: len(q.payload)}
	r.ICMP = d
	host, ok := endpoint.ICMPHost(target)
	if !ok {
		r.Fail(result.ReasonInvalidTarget, "target %q is not a host name or an IP address", target)
		return
	}
	ip, ok := resolveTarget(ctx, q.guard, host, q.cfg.IPProtocol, q.cfg.IPProtocolFallback, r, p.Logger)
	if !ok {
		return
	}
	setupStart := time.Now()
	sock, ok := q.open(ip, d, r, p.Logger)
	if !ok {
		return
	}
	defer sock.conn.Close()
	req, err := q.newRequest(sock, ip, d, p.Logger)
	if err != nil {
		p.Logger.Error("Error marshalling packet", "err", err)
		r.Fail(result.ReasonInternalError, "building the echo request: %v", err)
		return
	}
	p.Logger.Debug("Creating ICMP packet", "seq", req.seq, "id", req.id, "socket", d.Socket)
	r.RecordPhase("setup", setupStart, time.Now())
	if q.cfg.Packets > 1 {
		q.exchangeMany(ctx, sock, host, ip, req, d, r, p.Logger)
		return
	}
	q.exchange(ctx, sock, ip, req, d, r, p.Logger)
}

// open opens the socket to ping ip from and applies the module's socket
// options. With newRequest it is the "setup" phase.
func (q *icmpProbe) open(ip net.IP, d *result.ICMPDetails, r *result.Result, logger *slog.Logger) (*icmpSocket, bool) {
	fam := familyOf(ip)
	src := "0.0.0.0"
	if fam == 6 {
		src = "::"
	}
	if q.source != nil {
		if familyOf(q.source) != fam {
			r.Fail(result.ReasonSocketError, "source_ip_address %s is not of the target's family (IPv%d)", q.source, fam)
			return nil, false
		}
		src = q.source.String()
		logger.Debug("Using source address", "source_ip_address", src)
	}
	dontFragment := q.cfg.DontFragment && fam == 4
	if q.cfg.DontFragment && fam == 6 {
		logger.Debug("dont_fragment applies to IPv4 only; IPv6 routers never fragment")
	}
	logger.Debug("Creating socket", "source_ip_address", src)
	sock, err := openICMPSocket(dontFragment,
		func() (*icmpSocket, error) { return q.listenRaw(fam, src, dontFragment) },
		func() (*icmpSocket, error) { return q.listenDatagram(fam, src) },
		logger)
	if err != nil {
		logger.Error("Error listening to socket", "err", err)
		r.Fail(result.ReasonSocketError, "opening an ICMP socket: %v", err)
		return nil, false
	}
	d.Socket = "datagram"
	if sock.privileged {
		d.Socket = "raw"
	}
	if err := sock.setTTL(q.cfg.TTL); err != nil {
		sock.conn.Close()
		logger.Error("Error setting TTL", "ttl", q.cfg.TTL, "err", err)
		r.Fail(result.ReasonSocketError, "setting ttl %d: %v", q.cfg.TTL, err)
		return nil, false
	}
	if err := sock.enableHopLimit(); err != nil {
		logger.Debug("Failed to set Control Message for retrieving Hop Limit", "err", err)
	}
	return sock, true
}

// newRequest builds the echo request to send from sock.
func (q *icmpProbe) newRequest(sock *icmpSocket, ip net.IP, d *result.ICMPDetails, logger *slog.Logger) (*echoRequest, error) {
	req, err := newEchoRequest(familyOf(ip), q.payload, ip)
	if err != nil {
		return nil, err
	}
	if sock.privileged && (q.cfg.Packets > 1 || icmpInFlight.Load() > 1) {
		// A raw socket sees every ICMP packet the host receives: let the
		// kernel drop all but the reply to this request. Replies are
		// matched in full anyway, so a failure only costs wake-ups. A
		// single echo sent while no other probe is in flight skips it:
		// attaching a filter costs more than the few packets of probes
		// that start during its round trip (which attach theirs).
		seq := req.seq
		if q.cfg.Packets > 1 {
			seq = -1 // every packet has its own
		}
		if err := sock.filterEchoReply(req.id, seq); err != nil {
			logger.Debug("Failed to attach the echo reply filter", "err", err)
		}
	} else {
		// The kernel sets the ID of a datagram socket's echo requests to
		// the socket's ident, shown as its local port, and hands it only
		// the replies carrying it.
		req.reply.id = -1
		if ua, ok := sock.conn.LocalAddr().(*net.UDPAddr); ok && ua.Port != 0 {
			req.id, req.reply.id = ua.Port, ua.Port
		}
	}
	d.ID, d.Sequence = req.id, req.seq
	return req, nil
}

// exchange sends the echo request and waits for its reply until ctx ends.
// It is the "rtt" phase.
func (q *icmpProbe) exchange(ctx context.Context, sock *icmpSocket, ip net.IP, req *echoRequest, d *result.ICMPDetails, r *result.Result, logger *slog.Logger) {
	if deadline, ok := ctx.Deadline(); ok {
		sock.conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { sock.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	logger.Debug("Writing out packet", "ip", ip.String())
	start := time.Now()
	defer func() { r.RecordPhase("rtt", start, time.Now()) }()
	if _, err := sock.conn.WriteTo(req.wire, sock.destination(ip)); err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			r.Fail(result.ReasonTimeout, "sending the echo request: %v", err)
			return
		}
		logger.Error("Error writing to socket", "err", err)
		r.Fail(result.ReasonConnectError, "sending the echo request: %v", err)
		return
	}
	logger.Debug("Waiting for reply packets")
	buf := make([]byte, len(req.wire)+ipv4.HeaderLen+60) // room for any IPv4 header
	for {
		n, hopLimit, from, err := sock.read(buf)
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				logger.Warn("Timeout reading from socket", "err", err)
				r.Fail(result.ReasonTimeout, "no echo reply from %s before the deadline", ip)
				return
			}
			logger.Error("Error reading from socket", "err", err)
			r.Fail(result.ReasonSocketError, "reading the echo reply: %v", err)
			return
		}
		if !req.reply.matches(buf[:n], from) {
			continue // another probe's reply, or not a reply at all
		}
		if sock.hopLimit && hopLimit >= 0 {
			d.ReplyHopLimit = &hopLimit
		} else {
			logger.Debug("Cannot get the hop limit of the reply; probe_icmp_reply_hop_limit will be missing")
		}
		logger.Debug("Found matching reply packet", "hop_limit", hopLimit)
		return
	}
}

// echoRequest is one probe's echo request and the reply it waits for.
type echoRequest struct {
	id, seq int
	wire    []byte
	reply   echoReply
}

// newEchoRequest builds an echo request with a random ID and sequence
// number to ip.
func newEchoRequest(family int, payload []byte, ip net.IP) (*echoRequest, error) {
	id, seq := rand.IntN(1<<16), rand.IntN(1<<16)
	replyType := byte(ipv4.ICMPTypeEchoReply)
	if family == 6 {
		replyType = byte(ipv6.ICMPTypeEchoReply)
	}
	wire, err := echoWire(family, id, seq, payload)
	if err != nil {
		return nil, err
	}
	return &echoRequest{
		id: id, seq: seq, wire: wire,
		reply: echoReply{typ: replyType, id: id, seq: seq, data: payload, from: ip},
	}, nil
}

// echoWire marshals an echo request of the family.
func echoWire(family, id, seq int, payload []byte) ([]byte, error) {
	var reqType icmp.Type = ipv4.ICMPTypeEcho
	if family == 6 {
		reqType = ipv6.ICMPTypeEchoRequest
	}
	msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: payload}}
	// The IPv6 checksum covers a pseudo-header: the kernel computes it.
	return msg.Marshal(nil)
}

// echoReply describes the echo reply a probe waits for.
type echoReply struct {
	typ  byte   // the family's echo reply type
	id   int    // -1: any (the kernel already matched it)
	seq  int    // sequence number; -1: any
	data []byte // the echoed payload
	from net.IP // the target
}

// matches reports whether the ICMP message b, received from from, is the
// reply.
func (w *echoReply) matches(b []byte, from net.IP) bool {
	if len(b) < 8 || b[0] != w.typ || b[1] != 0 || !from.Equal(w.from) {
		return false
	}
	if w.id >= 0 && int(b[4])<<8|int(b[5]) != w.id {
		return false
	}
	return (w.seq < 0 || echoSeq(b) == w.seq) && string(b[8:]) == string(w.data)
}

// echoSeq is the sequence number of the echo message b.
func echoSeq(b []byte) int {
	return int(b[6])<<8 | int(b[7])
}
