package prober

import (
	"context"
	"log/slog"
	"net"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/prober/result"
)

// retryOverTCP repeats the query over TCP to the same server after a UDP
// answer came back truncated (the TC bit), as a stub resolver does
// (RFC 7766). The connection and the query add to the "connect" and
// "request" phases; the TCP answer replaces the truncated one.
func (q *dnsProbe) retryOverTCP(ctx context.Context, ip net.IP, port string, d *result.DNSDetails, r *result.Result, logger *slog.Logger) (*dns.Msg, bool) {
	logger.Info("UDP answer truncated, retrying over TCP")
	*d.TruncatedRetry = true
	conn, ok := q.connect(ctx, "tcp", ip, port, "", d, r, logger)
	if !ok {
		return nil, false
	}
	defer conn.Close()
	resp, ok := q.exchange(ctx, conn, false, r, logger)
	if ok {
		d.Transport = "tcp"
	}
	return resp, ok
}
