package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http/httptrace"
	"sync"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// http3Transport is one probe's HTTP/3 transport and the UDP sockets its
// dials opened, closed together when the probe ends.
type http3Transport struct {
	*http3.Transport

	mu    sync.Mutex
	conns []net.PacketConn
}

func (t *http3Transport) Close() error {
	err := t.Transport.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		_ = c.Close()
	}
	t.conns = nil
	return err
}

func (st *probeState) newHTTP3Transport(tc *tls.Config) *http3Transport {
	t := &http3Transport{}
	t.Transport = &http3.Transport{
		TLSClientConfig:    tc,
		QUICConfig:         &quic.Config{},
		DisableCompression: true,
		Dial: func(ctx context.Context, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
			return st.dialQUIC(ctx, t, addr, tc, qc)
		},
	}
	return t
}

// dialQUIC opens a QUIC connection for one round trip: a fresh UDP socket
// (bound to source_ip_address), to the address resolveTarget chose when addr
// is the target's. QUIC does the transport and TLS handshakes in one
// exchange, so the connect and tls phases both cover the handshake, as with
// quic-go's own dialer (and blackbox_exporter).
func (st *probeState) dialQUIC(ctx context.Context, t *http3Transport, addr string, tc *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	// http3 detaches dials from the request's cancellation; bound them by
	// the probe instead.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(st.ctx, cancel)
	defer stop()
	trace := httptrace.ContextClientTrace(ctx)

	udpAddr, err := st.resolveUDP(ctx, addr, trace)
	if err != nil {
		return nil, err
	}
	if err := st.c.guard.checkIP(udpAddr.IP); err != nil {
		return nil, err
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: st.c.localAddr})
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.conns = append(t.conns, pc)
	t.mu.Unlock()

	if trace != nil && trace.ConnectStart != nil {
		trace.ConnectStart("udp", udpAddr.String())
	}
	if trace != nil && trace.TLSHandshakeStart != nil {
		trace.TLSHandshakeStart()
	}
	conn, err := quic.Dial(ctx, pc, udpAddr, tc, qc)
	var state tls.ConnectionState
	if conn != nil {
		state = conn.ConnectionState().TLS
	}
	if trace != nil && trace.TLSHandshakeDone != nil {
		trace.TLSHandshakeDone(state, err)
	}
	if trace != nil && trace.ConnectDone != nil {
		trace.ConnectDone("udp", udpAddr.String(), err)
	}
	return conn, err
}

// resolveUDP returns the UDP address to dial for addr: the resolved target
// address, or a lookup of another host (a redirect) with the DNS hooks.
func (st *probeState) resolveUDP(ctx context.Context, addr string, trace *httptrace.ClientTrace) (*net.UDPAddr, error) {
	if addr == st.targetAddr && st.dialAddr != "" {
		addr = st.dialAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip != nil {
		return net.ResolveUDPAddr("udp", net.JoinHostPort(ip.String(), port))
	}
	if trace != nil && trace.DNSStart != nil {
		trace.DNSStart(httptrace.DNSStartInfo{Host: host})
	}
	ips, err := resolver.LookupIPAddr(ctx, host)
	if err == nil && len(ips) == 0 {
		err = &net.DNSError{Err: "no addresses found", Name: host, IsNotFound: true}
	}
	if trace != nil && trace.DNSDone != nil {
		trace.DNSDone(httptrace.DNSDoneInfo{Addrs: ips, Err: err})
	}
	if err != nil {
		return nil, err
	}
	chosen := ips[0]
	for _, a := range ips {
		if (familyOf(a.IP) == 4) == st.c.preferIP4 {
			chosen = a
			break
		}
	}
	return net.ResolveUDPAddr("udp", net.JoinHostPort(chosen.IP.String(), port))
}

// classifyHTTP3 names the reason an HTTP/3 request failed.
func classifyHTTP3(ctx context.Context, err error, tr *roundTripTrace) result.Reason {
	tr.mu.Lock()
	connected, gotConn := tr.connected, !tr.gotConn.IsZero()
	tr.mu.Unlock()
	var (
		handshakeTimeout *quic.HandshakeTimeoutError
		idleTimeout      *quic.IdleTimeoutError
		transportErr     *quic.TransportError
	)
	switch {
	case !connected && !gotConn:
		switch {
		case errors.As(err, &transportErr) && transportErr.ErrorCode.IsCryptoError():
			return result.ReasonTLSError
		case errors.As(err, &handshakeTimeout), errors.As(err, &idleTimeout), ctx.Err() != nil:
			return result.ReasonConnectTimeout
		}
		return connectReason(ctx, err)
	case ctx.Err() != nil, isTimeout(err):
		return result.ReasonTimeout
	}
	return result.ReasonProtocolError
}
