package prober

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/vantageprobe/vantage/prober/result"
)

// exchangeMany sends the module's packets, packet_interval apart, and
// collects their replies until every request is answered or ctx ends: the
// deadline covers all packets. The probe succeeds when at least one reply
// came. It is the "rtt" phase.
func (q *icmpProbe) exchangeMany(ctx context.Context, sock *icmpSocket, host string, ip net.IP, first *echoRequest, d *result.ICMPDetails, r *result.Result, logger *slog.Logger) {
	pk := &result.ICMPPackets{Host: host, IP: ip.String()}
	d.Packets = pk
	if deadline, ok := ctx.Deadline(); ok {
		sock.conn.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { sock.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	start := time.Now()
	defer func() { r.RecordPhase("rtt", start, time.Now()) }()
	s := &echoSender{n: q.cfg.Packets, sentAt: make([]time.Time, q.cfg.Packets)}
	sendCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.run(sendCtx, sock, familyOf(ip), ip, first, q.payload, q.cfg.Interval(), logger) })
	readErr := q.collectReplies(sock, first, s, pk, d, logger)
	cancel()
	wg.Wait()
	pk.Sent = s.sent
	logger.Debug("Echo requests done", "sent", pk.Sent, "received", pk.Received(), "duplicates", pk.Duplicates)
	switch {
	case pk.Received() > 0 && (readErr == nil || ctx.Err() != nil || isTimeout(readErr)):
	case pk.Received() > 0:
		r.Fail(result.ReasonSocketError, "reading echo replies: %v", readErr)
	case s.err != nil:
		r.Fail(result.ReasonConnectError, "sending the echo requests: %v", s.err)
	case ctx.Err() != nil || isTimeout(readErr):
		r.Fail(result.ReasonTimeout, "no echo reply from %s to %d requests before the deadline", ip, pk.Sent)
	default:
		r.Fail(result.ReasonSocketError, "reading echo replies: %v", readErr)
	}
}

// collectReplies reads replies to s's requests until all are answered or a
// read fails (the deadline), and records them in pk and d.
func (q *icmpProbe) collectReplies(sock *icmpSocket, first *echoRequest, s *echoSender, pk *result.ICMPPackets, d *result.ICMPDetails, logger *slog.Logger) error {
	want := first.reply
	want.seq = -1 // each request has its own, checked below
	answered := make([]bool, s.n)
	buf := make([]byte, len(first.wire)+ipv4.HeaderLen+60)
	for pk.Received() < s.n {
		n, hopLimit, from, err := sock.read(buf)
		now := time.Now()
		if err != nil {
			return err
		}
		if !want.matches(buf[:n], from) {
			continue
		}
		i := (echoSeq(buf[:n]) - first.seq) & 0xffff
		sentAt, ok := s.sendTime(i)
		switch {
		case !ok:
			continue // not one of this probe's requests
		case answered[i]:
			pk.Duplicates++
			logger.Debug("Duplicate echo reply", "seq", echoSeq(buf[:n]))
			continue
		}
		answered[i] = true
		pk.RTTs = append(pk.RTTs, now.Sub(sentAt))
		if sock.hopLimit && hopLimit >= 0 {
			d.ReplyHopLimit = &hopLimit
		}
		logger.Debug("Found matching reply packet", "seq", echoSeq(buf[:n]), "rtt_seconds", now.Sub(sentAt).Seconds(), "hop_limit", hopLimit)
	}
	return nil
}

// echoSender sends a probe's echo requests; the first goes out at once
// with the first request's ID and sequence number, the others follow with
// the next sequence numbers.
type echoSender struct {
	n      int
	mu     sync.Mutex
	sentAt []time.Time // by packet index, up to sent
	sent   int
	err    error // the first failed send
}

// sendTime is when packet i was sent; ok is false for a packet not sent.
func (s *echoSender) sendTime(i int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= s.sent {
		return time.Time{}, false
	}
	return s.sentAt[i], true
}

func (s *echoSender) run(ctx context.Context, sock *icmpSocket, family int, ip net.IP, first *echoRequest, payload []byte, interval time.Duration, logger *slog.Logger) {
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	dst := sock.destination(ip)
	for i := range s.n {
		timer.Reset(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		wire, err := echoWire(family, first.id, first.seq+i, payload)
		if err != nil {
			s.fail(err)
			return
		}
		s.mu.Lock()
		s.sentAt[i], s.sent = time.Now(), i+1
		s.mu.Unlock()
		logger.Debug("Writing out packet", "ip", ip.String(), "seq", (first.seq+i)&0xffff)
		if _, err := sock.conn.WriteTo(wire, dst); err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				return
			}
			logger.Error("Error writing to socket", "err", err)
			s.fail(err)
		}
	}
}

func (s *echoSender) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}
