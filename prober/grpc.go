package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"

	promconfig "github.com/prometheus/common/config"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/vantageprobe/vantage/config"
)

// grpcProbe is a grpc module prepared for probing.
type grpcProbe struct {
	cfg    config.GRPCProbe
	dialer *net.Dialer
	guard  *destinationGuard
	// tls is the module's TLS credentials, built once; nil for plaintext.
	tls credentials.TransportCredentials
	// serverName is tls_config.server_name, which then is the :authority.
	serverName string
	md         metadata.MD // nil without metadata
}

func newGRPCProbe(m config.Module) (probeFunc, error) {
	c := m.GRPC
	guard, err := newDestinationGuard(m.Destinations)
	if err != nil {
		return nil, err
	}
	q := &grpcProbe{cfg: c, dialer: dialer(c.SourceIPAddress, guard), guard: guard}
	if c.SourceIPAddress != "" && net.ParseIP(c.SourceIPAddress) == nil {
		return nil, fmt.Errorf("grpc.source_ip_address: %q is not an IP address", c.SourceIPAddress)
	}
	if c.TLS {
		cfg, err := promconfig.NewTLSConfig(&c.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("grpc.tls_config: %w", err)
		}
		q.tls, q.serverName = credentials.NewTLS(cfg), cfg.ServerName
	}
	if len(c.Metadata) > 0 {
		q.md = metadata.MD{}
		for k, vs := range c.Metadata {
			q.md.Append(k, vs...)
		}
	}
	return q.probe, nil
}

func (q *grpcProbe) probe(ctx context.Context, target string, p Params, r *result.Result) {
	r.InitPhases("resolve", "check")
	d := &result.GRPCDetails{}
	r.GRPC = d
	host, port, ok := endpoint.GRPC(target, q.tls != nil)
	if !ok {
		r.Fail(result.ReasonInvalidTarget, "target %q is not host:port", target)
		return
	}
	ip, ok := resolveTarget(ctx, q.guard, host, q.cfg.PreferredIPProtocol, q.cfg.IPProtocolFallback, r, p.Logger)
	if !ok {
		return
	}
	q.check(ctx, host, ip, port, d, r, p.Logger)
}

// check connects to ip:port with a fresh ClientConn and makes one health
// Check call. It is the "check" phase.
func (q *grpcProbe) check(ctx context.Context, host string, ip net.IP, port string, d *result.GRPCDetails, r *result.Result, logger *slog.Logger) {
	start := time.Now()
	conn := &grpcConnState{}
	network := "tcp6"
	if ip.To4() != nil {
		network = "tcp4"
	}
	addr := net.JoinHostPort(ip.String(), port)
	authority := net.JoinHostPort(host, port)
	var creds credentials.TransportCredentials = insecure.NewCredentials()
	if q.tls != nil {
		logger.Debug("Dialing GRPC with TLS", "address", addr)
		creds = &grpcTLSCreds{q.tls, conn}
		if q.serverName != "" {
			// gRPC requires the credentials' server name as the authority.
			authority = q.serverName
		}
	} else {
		logger.Debug("Dialing GRPC without TLS", "address", addr)
	}
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := q.dialer.DialContext(ctx, network, addr)
		conn.dialed(err)
		return c, err
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithContextDialer(dial), grpc.WithTransportCredentials(creds), grpc.WithAuthority(authority))
	if err != nil {
		r.Fail(result.ReasonInternalError, "creating the gRPC client: %v", err)
		return
	}
	defer cc.Close()
	if q.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, q.md)
	}
	logger.Debug("Checking gRPC health", "service", q.cfg.Service)
	var srv peer.Peer
	resp, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: q.cfg.Service}, grpc.Peer(&srv))
	r.RecordPhase("check", start, time.Now()) // without closing the connection
	d.Checked = true
	d.StatusCode = int(status.Code(err))
	if info, ok := srv.AuthInfo.(credentials.TLSInfo); ok {
		d.SSL = true
		r.TLS = result.NewTLSDetails(info.State)
	}
	if err != nil {
		reason := q.failureReason(ctx, err, conn)
		logger.Error("Error checking gRPC health", "reason", reason, "err", err)
		r.Fail(reason, "health check of %s: %v", net.JoinHostPort(host, port), err)
		return
	}
	d.ServingStatus = resp.GetStatus().String()
	logger.Debug("Received gRPC health status", "serving_status", d.ServingStatus)
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		r.Fail(result.ReasonNotServing, "health status of service %q is %s", q.cfg.Service, d.ServingStatus)
	}
}

// failureReason classifies a failed Check call by what happened to the
// connection under it.
func (q *grpcProbe) failureReason(ctx context.Context, err error, conn *grpcConnState) result.Reason {
	connected, dialErr, tlsErr := conn.state()
	code := status.Code(err)
	deadline := ctx.Err() != nil || code == codes.DeadlineExceeded || code == codes.Canceled
	switch {
	case tlsErr != nil && !errors.Is(tlsErr, context.DeadlineExceeded) && !errors.Is(tlsErr, context.Canceled):
		return result.ReasonTLSError
	case !connected && dialErr != nil:
		return connectReason(ctx, dialErr)
	case !connected && deadline:
		return result.ReasonConnectTimeout
	case deadline:
		return result.ReasonTimeout
	}
	return result.ReasonGRPCError
}

// grpcConnState records what happened to a probe's connection; gRPC dials
// and handshakes on its own goroutines.
type grpcConnState struct {
	mu        sync.Mutex
	connected bool  // a TCP connection was established
	dialErr   error // the last failed dial
	tlsErr    error // the failed TLS handshake
}

func (s *grpcConnState) dialed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.dialErr = err
		return
	}
	s.connected = true
}

func (s *grpcConnState) handshaken(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tlsErr = err
}

func (s *grpcConnState) state() (connected bool, dialErr, tlsErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connected, s.dialErr, s.tlsErr
}

// grpcTLSCreds are the module's TLS credentials recording the outcome of
// the handshake, so a failed probe can tell a TLS failure from others.
type grpcTLSCreds struct {
	credentials.TransportCredentials
	conn *grpcConnState
}

func (c *grpcTLSCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, raw)
	c.conn.handshaken(err)
	return conn, info, err
}

func (c *grpcTLSCreds) Clone() credentials.TransportCredentials {
	return &grpcTLSCreds{c.TransportCredentials.Clone(), c.conn}
}
