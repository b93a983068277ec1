package prober

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
)

// directHTTP lets plain-HTTP requests take the direct path (BENCHMARKS.md
// shows what it saves); tests turn it off to check that net/http's
// Transport gives the same series.
var directHTTP = true

// directEligible reports whether req can take the direct HTTP/1.1 path: a
// plain-text request that no proxy handles. TLS (with its HTTP/2
// negotiation), HTTP/3 and proxies go through net/http's Transport.
func (st *probeState) directEligible(req *http.Request) bool {
	if !directHTTP || req.URL.Scheme != "http" || st.c.http3 {
		return false
	}
	if st.c.proxy == nil {
		return true
	}
	u, err := st.c.proxy(req)
	return err == nil && u == nil
}

// directRoundTrip makes one HTTP/1.1 round trip on a connection of its own,
// reading and writing it from the calling goroutine. net/http's Transport
// runs a read and a write loop per connection; with thousands of checks in
// flight those goroutines and their buffers were most of the exporter's
// memory. It fires the same httptrace hooks the Transport does, so phases
// are measured the same way.
func (st *probeState) directRoundTrip(req *http.Request) (*http.Response, error) {
	// The dial is the deepest part of a check: made from this small frame,
	// not from the exchange's, it keeps a check's stack within 8 KiB.
	conn, err := st.directDial(req)
	if err != nil {
		return nil, err
	}
	return st.directExchange(req, conn)
}

// directDial connects to req's host, firing the connect hooks.
func (st *probeState) directDial(req *http.Request) (net.Conn, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	port := req.URL.Port()
	if port == "" {
		port = "80"
	}
	addr := net.JoinHostPort(asciiHost(req.URL.Hostname()), port)
	if trace != nil && trace.ConnectStart != nil {
		trace.ConnectStart("tcp", addr)
	}
	conn, err := st.dial(ctx, "tcp", addr)
	if trace != nil && trace.ConnectDone != nil {
		trace.ConnectDone("tcp", addr, err)
	}
	if err != nil {
		return nil, err
	}
	if trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Conn: conn})
	}
	return conn, nil
}

// directExchange writes req on conn and reads the answer's head.
func (st *probeState) directExchange(req *http.Request, conn net.Conn) (*http.Response, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
	dc := &directConn{Conn: conn}
	dc.stop = context.AfterFunc(ctx, dc.close)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	out := *req // shallow: the caller's request stays as it was
	out.Close = true
	bw := bufio.NewWriterSize(conn, probeWriteBuffer)
	err := out.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{Err: err})
	}
	if err != nil {
		dc.release()
		return nil, dc.ctxErr(ctx, err)
	}
	lr := &responseReader{r: conn, n: maxResponseHeaderBytes}
	// The read buffer is made once the answer begins: a check waiting for
	// a slow server holds one byte, not probeReadBuffer.
	if err := lr.awaitFirstByte(); err != nil {
		dc.release()
		return nil, dc.ctxErr(ctx, err)
	}
	br := bufio.NewReaderSize(lr, probeReadBuffer)
	for {
		if _, err := br.Peek(1); err != nil {
			dc.release()
			return nil, dc.ctxErr(ctx, err)
		}
		if trace != nil && trace.GotFirstResponseByte != nil {
			trace.GotFirstResponseByte()
			trace.GotFirstResponseByte = nil // once per round trip
		}
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			if lr.err != nil && lr.err != io.EOF {
				// A line the deadline or the limit cut short looks
				// complete to the parser: report why it was cut.
				err = lr.err
			}
			dc.release()
			return nil, dc.ctxErr(ctx, err)
		}
		// Informational answers (100 Continue, 103 Early Hints) precede the
		// response; 101 is final.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		lr.n = math.MaxInt64
		resp.Body = &directBody{ReadCloser: resp.Body, conn: dc}
		return resp, nil
	}
}

// directConn closes its connection once, whether the probe's context ended
// (from the context's goroutine) or the round trip ended (release).
type directConn struct {
	net.Conn
	once sync.Once
	stop func() bool
}

func (c *directConn) close() { c.once.Do(func() { _ = c.Conn.Close() }) }

// release closes the connection from the round trip's own side and drops
// the context hook; stop is only read by that side.
func (c *directConn) release() {
	c.stop()
	c.close()
}

// ctxErr prefers the context's error when the context ended the round trip
// by closing the connection.
func (c *directConn) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// directBody closes the connection with the response body.
type directBody struct {
	io.ReadCloser
	conn *directConn
}

// Close closes the connection first: it is never reused, and the body's
// own Close would otherwise read the rest of a chunked or sized body, all
// of an endless one until the deadline.
func (b *directBody) Close() error {
	b.conn.release()
	return b.ReadCloser.Close()
}

// maxResponseHeaderBytes is net/http's Transport default
// (MaxResponseHeaderBytes), so http:// and https:// targets are held to the
// same bound.
const maxResponseHeaderBytes = 10 << 20

var errResponseHeaderTooLarge = fmt.Errorf("server response headers exceeded %d bytes", maxResponseHeaderBytes)

// responseReader reads a response from its connection. It bounds the
// status lines and headers, informational responses' included, as
// net/http's Transport does on the other paths (the body is bounded by
// body_size_limit), and keeps the first read error.
type responseReader struct {
	r   io.Reader
	n   int64 // bytes left to read; raised once the headers are in
	err error // the first read error
	// first is the answer's first byte, read by awaitFirstByte and handed
	// out by the next Read when held.
	first byte
	held  bool
}

// awaitFirstByte waits for the answer's first byte and holds it.
func (l *responseReader) awaitFirstByte() error {
	var b [1]byte
	for {
		n, err := l.Read(b[:])
		if n == 1 {
			l.first, l.held = b[0], true
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (l *responseReader) Read(p []byte) (int, error) {
	if l.held && len(p) > 0 {
		p[0], l.held = l.first, false
		return 1, nil
	}
	if l.n <= 0 {
		l.err = cmp.Or(l.err, errResponseHeaderTooLarge)
		return 0, errResponseHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if err != nil && l.err == nil {
		l.err = err
	}
	return n, err
}
