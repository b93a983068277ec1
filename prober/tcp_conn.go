package prober

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// Connection helpers shared by the tcp and dns probers.

// bindConnToContext makes every read and write on conn end when ctx ends: at
// ctx's deadline through the connection deadline, and on an earlier
// cancellation through a deadline in the past. Call the returned release once
// the conversation is over.
func bindConnToContext(ctx context.Context, conn net.Conn) (release func() bool) {
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

// ioTimedOut reports whether err is the probe running out of time rather
// than the peer doing something wrong.
func ioTimedOut(ctx context.Context, err error) bool {
	var ne net.Error
	return ctx.Err() != nil ||
		errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// tlsConfigFor clones a module's prepared TLS configuration for one probe,
// verifying the target's host name unless tls_config.server_name is set:
// the dial goes to an already resolved IP, so the name must be passed on.
func tlsConfigFor(base *tls.Config, host string) *tls.Config {
	cfg := base.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return cfg
}

// tlsHandshake runs a client handshake over conn. On failure it marks r
// failed: timeout when the deadline cut it short, tls_error otherwise.
func tlsHandshake(ctx context.Context, conn net.Conn, cfg *tls.Config, r *result.Result) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ioTimedOut(ctx, err) {
			r.Fail(result.ReasonTimeout, "TLS handshake did not finish before the deadline: %v", err)
		} else {
			r.Fail(result.ReasonTLSError, "TLS handshake failed: %v", err)
		}
		return nil, err
	}
	return tc, nil
}

// bufferedConn is a connection whose reads first drain a bufio.Reader that
// already holds bytes of it, so a STARTTLS upgrade loses none of what the
// peer sent ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
