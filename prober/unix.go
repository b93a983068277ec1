package prober

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// newUnixProbe prepares a unix module: the tcp prober's conversation
// (query_response, tls, starttls) over a unix domain socket whose path is
// the target, as blackbox_exporter's unix prober.
func newUnixProbe(m config.Module) (probeFunc, error) {
	t, err := newConversation(config.TCPProbe{QueryResponse: m.Unix.QueryResponse, TLS: m.Unix.TLS, TLSConfig: m.Unix.TLSConfig}, "unix")
	if err != nil {
		return nil, err
	}
	return t.probeUnix, nil
}

func (t *tcpProbe) probeUnix(ctx context.Context, target string, p Params, r *result.Result) {
	d := &result.TCPDetails{}
	r.TCP = d
	if target == "" {
		r.Fail(result.ReasonInvalidTarget, "target must be the path of a unix socket")
		return
	}
	p.Logger.Debug("Dialing unix socket", "path", target, "tls", t.cfg.TLS)
	start := time.Now()
	var dialer net.Dialer
	raw, err := dialer.DialContext(ctx, "unix", target)
	r.RecordPhase("connect", start, time.Now())
	if err != nil {
		p.Logger.Error("Error dialing unix socket", "path", target, "err", err)
		failUnixDial(ctx, target, err, r)
		return
	}
	defer raw.Close()
	release := bindConnToContext(ctx, raw)
	defer release()

	// A socket path names no host: the TLS server name is
	// tls_config.server_name, else the hostname parameter.
	conn := raw
	if t.cfg.TLS {
		tc, ok := t.handshake(ctx, raw, p.Hostname, r, p.Logger)
		if !ok {
			return
		}
		conn = tc
	}
	t.converse(ctx, conn, p.Hostname, d, r, p.Logger)
}

// failUnixDial records why a unix socket could not be reached: no socket
// there or nobody listening is connect_refused, as for a closed TCP port;
// a permission problem says so.
func failUnixDial(ctx context.Context, path string, err error, r *result.Result) {
	switch {
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		r.Fail(result.ReasonConnectError, "permission denied connecting to unix socket %s: %v", path, err)
	case errors.Is(err, os.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
		r.Fail(result.ReasonConnectRefused, "connecting to unix socket %s: %v", path, err)
	default:
		r.Fail(connectReason(ctx, err), "connecting to unix socket %s: %v", path, err)
	}
}
