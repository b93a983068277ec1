package prober

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/gorilla/websocket"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"
)

// maxWebsocketMessage bounds one message read for an expect step.
const maxWebsocketMessage = 1 << 20

// websocketProbe is a websocket module prepared for probing.
type websocketProbe struct {
	steps  []tcpStep
	header http.Header // the configured headers
	// auth, when set, makes the Authorization header of each handshake.
	auth  func(context.Context) (string, error)
	tls   *tls.Config
	guard *destinationGuard
}

func newWebsocketProbe(m config.Module) (probeFunc, error) {
	guard, err := newDestinationGuard(m.Destinations)
	if err != nil {
		return nil, err
	}
	hc := m.Websocket.HTTPClientConfig
	w := &websocketProbe{header: http.Header{}, guard: guard}
	for name, values := range hc.Headers {
		for _, v := range values {
			w.header.Add(name, v)
		}
	}
	for i, qr := range m.Websocket.QueryResponse {
		st, err := newTCPStep(qr)
		if err != nil {
			return nil, fmt.Errorf("websocket.query_response[%d]: %w", i, err)
		}
		w.steps = append(w.steps, st)
	}
	if w.tls, err = promconfig.NewTLSConfig(&hc.TLSConfig); err != nil {
		return nil, fmt.Errorf("websocket.http_config.tls_config: %w", err)
	}
	// As blackbox_exporter: basic_auth, else bearer_token.
	switch {
	case hc.BasicAuth != nil:
		pass, err := secretReader(hc.BasicAuth.Password, hc.BasicAuth.PasswordFile, hc.BasicAuth.PasswordRef)
		if err != nil {
			return nil, fmt.Errorf("websocket.http_config.basic_auth.password: %w", err)
		}
		user := hc.BasicAuth.Username
		w.auth = func(ctx context.Context) (string, error) {
			p, err := pass.Fetch(ctx)
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+p)), err
		}
	case hc.BearerToken != "":
		token := string(hc.BearerToken)
		w.auth = func(context.Context) (string, error) { return "Bearer " + token, nil }
	}
	return w.probe, nil
}

func (w *websocketProbe) probe(ctx context.Context, target string, p Params, r *result.Result) {
	d := &result.WebsocketDetails{QueryConfigured: len(w.steps) > 0}
	r.Websocket = d
	logger := p.Logger
	u, err := endpoint.Websocket(target)
	if err != nil {
		r.Fail(result.ReasonInvalidTarget, "%v", err)
		return
	}
	if n := len(u.Hostname()); n > maxHostNameLen {
		r.Fail(result.ReasonInvalidTarget, "target host name is %d bytes long; a DNS name has at most %d", n, maxHostNameLen)
		return
	}
	if err := w.guard.checkTarget(u.Hostname()); err != nil {
		r.Fail(result.ReasonDestinationDenied, "%v", err)
		return
	}
	header := w.header.Clone()
	if w.auth != nil {
		v, err := w.auth(ctx)
		if err != nil {
			r.Fail(result.ReasonConfigError, "websocket credentials: %v", err)
			return
		}
		header.Set("Authorization", v)
	}

	var connected atomic.Bool
	dialer := websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := dialer("", w.guard)
			nd.Resolver = resolver
			c, err := nd.DialContext(ctx, network, addr)
			connected.Store(err == nil)
			return c, err
		},
		TLSClientConfig: w.tls.Clone(),
	}
	logger.Debug("Dialing websocket", "url", u.Redacted())
	conn, resp, err := dialer.DialContext(ctx, u.String(), header)
	if resp != nil {
		d.StatusCode = resp.StatusCode
	}
	if err != nil {
		logger.Error("Error dialing websocket", "err", err)
		reason := websocketDialReason(ctx, err, connected.Load(), resp)
		r.Fail(reason, "websocket handshake with %s: %v", u.Redacted(), err)
		return
	}
	defer conn.Close()
	d.Upgraded = true
	release := bindConnToContext(ctx, conn.NetConn())
	defer release()
	conn.SetReadLimit(maxWebsocketMessage)
	w.converse(ctx, conn, d, r, logger)
}

// websocketDialReason classifies a failed handshake.
func websocketDialReason(ctx context.Context, err error, connected bool, resp *http.Response) result.Reason {
	switch {
	case !connected:
		return connectReason(ctx, err)
	case resp != nil && errors.Is(err, websocket.ErrBadHandshake):
		return result.ReasonStatusCode
	case isTLSError(err) && ctx.Err() == nil:
		return result.ReasonTLSError
	case ioTimedOut(ctx, err):
		return result.ReasonTimeout
	}
	return result.ReasonProtocolError
}

// converse runs the query_response steps: an expect step reads the next
// message and matches it; send writes a text message, which may use the
// expect's submatches (${1}), as blackbox_exporter does. Any step that
// fails sets probe_websocket_failed_due_to_regex, as there.
func (w *websocketProbe) converse(ctx context.Context, conn *websocket.Conn, d *result.WebsocketDetails, r *result.Result, logger *slog.Logger) {
	for i, st := range w.steps {
		logger.Debug("Processing query response entry", "entry_number", i)
		send := st.send
		if st.expect != nil {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				d.FailedDueToRegex = true
				logger.Error("Error reading message", "err", err)
				r.Fail(websocketReadReason(ctx, err), "reading a message for expect %q: %v", st.expect.String(), err)
				return
			}
			match := st.expect.FindSubmatchIndex(msg)
			if match == nil {
				d.FailedDueToRegex = true
				logger.Error("Regexp did not match", "regexp", st.expect.String(), "message", truncate(msg))
				r.Fail(result.ReasonExpectMismatch, "message %q does not match expect %q", truncate(msg), st.expect.String())
				return
			}
			logger.Debug("Regexp matched", "regexp", st.expect.String(), "message", truncate(msg))
			send = string(st.expect.Expand(nil, []byte(send), msg, match))
		}
		if send != "" {
			if err := conn.WriteMessage(websocket.TextMessage, []byte(send)); err != nil {
				d.FailedDueToRegex = true
				logger.Error("Error sending message", "err", err)
				reason := result.ReasonProtocolError
				if ioTimedOut(ctx, err) {
					reason = result.ReasonTimeout
				}
				r.Fail(reason, "sending %q: %v", send, err)
				return
			}
			logger.Debug("Message sent", "message", send)
		}
	}
}

// websocketReadReason classifies a failed read: the peer closing is an
// expectation not met, the deadline a timeout, anything else (an over-long
// message, a broken frame) a protocol error.
func websocketReadReason(ctx context.Context, err error) result.Reason {
	var closeErr *websocket.CloseError
	switch {
	case errors.As(err, &closeErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return result.ReasonExpectMismatch
	case ioTimedOut(ctx, err):
		return result.ReasonTimeout
	}
	return result.ReasonProtocolError
}

// truncate shortens a message for logs and errors.
func truncate(b []byte) string {
	const max = 256
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "…(" + fmt.Sprint(len(b)) + " bytes)"
}
