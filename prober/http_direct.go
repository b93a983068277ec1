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
	dc, err := directSend(req, conn)
	if err != nil {
		return nil, err
	}
	lr := &responseReader{r: conn, n: maxResponseHeaderBytes}
	// The read buffer is made once the answer begins: a check waiting for
	// a slow server holds one byte, not probeReadBuffer.
	if err := lr.awaitFirstByte(); err != nil {
		dc.release()
		return nil, dc.ctxErr(req.Context(), err)
	}
	return directReceive(req, dc, lr)
}

// directSend writes req on conn, which closes when req's context ends.
func directSend(req *http.Request, conn net.Conn) (*directConn, error) {
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
	return dc, nil
}

// directReceive reads the head of the answer to req, whose first byte lr
// holds.
func directReceive(req *http.Request, dc *directConn, lr *responseReader) (*http.Response, error) {
	ctx := req.Context()
	trace := httptrace.ContextClientTrace(ctx)
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

// primedExchange is a probe's first round trip on the direct path,
// connected and written before the client sends the request (start), so
// that the wait for the answer needs none of the client's stack.
type primedExchange struct {
	ctx     context.Context // the request's, with the round trip's trace
	tr      *roundTripTrace
	dc      *directConn
	lr      *responseReader
	err     error // the dial's or the write's, as directRoundTrip returns it
	waitErr error // the wait's, with the connection still open
}

// prime connects and writes req, the probe's first request, firing the
// hooks directRoundTrip fires. It reports whether the answer is to be
// awaited; when not, the client's round trip returns the error.
func (st *probeState) prime(req *http.Request) bool {
	tr := &roundTripTrace{}
	tr.markSent() // the direct path has nothing before the connection
	st.mu.Lock()
	st.traces = append(st.traces, tr)
	p := &primedExchange{ctx: withRoundTripTrace(req.Context(), tr), tr: tr}
	st.primed = p
	st.mu.Unlock()
	preq := req.WithContext(p.ctx)
	conn, err := st.directDial(preq)
	if err == nil {
		p.dc, err = directSend(preq, conn)
	}
	if err != nil {
		p.err = err
		return false
	}
	p.lr = &responseReader{r: conn, n: maxResponseHeaderBytes}
	return true
}

// wait waits for the answer's first byte, until the probe's context ends.
func (p *primedExchange) wait() {
	if err := p.lr.awaitFirstByte(); err != nil {
		p.waitErr = err
		return
	}
	p.tr.setFirst(&p.tr.firstByte)
}

// finish completes the round trip of req, the request prime wrote.
func (p *primedExchange) finish(req *http.Request) (*http.Response, error) {
	switch {
	case p.err != nil:
		return nil, p.err
	case p.waitErr != nil:
		p.dc.release()
		return nil, p.dc.ctxErr(p.ctx, p.waitErr)
	}
	return directReceive(req.WithContext(p.ctx), p.dc, p.lr)
}

// takePrimed returns the primed first round trip once, nil after.
func (st *probeState) takePrimed() *primedExchange {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.primed
	st.primed = nil
	return p
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
