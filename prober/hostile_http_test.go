package prober

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/alecthomas/units"

	"github.com/vantageprobe/vantage/config"
)

// Hostile http targets: responses that trickle, never end, or are larger
// than any probe should hold. Plain http:// goes through the prober's own
// HTTP/1.1 round trip (http_direct.go), https:// through net/http's
// Transport, so each case runs over both where the paths differ.

// hostileChunk is what flooding servers write, again and again.
var hostileChunk = bytes.Repeat([]byte("vantage!"), 4<<10) // 32 KiB

// overTLS makes a raw handler serve over TLS with cert (HTTP/1.1: no ALPN).
func overTLS(cert httpTestCert, handle func(net.Conn, <-chan struct{})) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, stop <-chan struct{}) {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert.cert}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		handle(tc, stop)
	}
}

// afterRequest runs handle once the request's headers have arrived, as a
// server answers: net/http's Transport rejects bytes that come before its
// request was sent.
func afterRequest(handle func(net.Conn, <-chan struct{})) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, stop <-chan struct{}) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		handle(c, stop)
	}
}

// hostileHTTPTarget is a hostile raw server reachable over http:// and
// https:// (HTTP/1.1).
type hostileHTTPTarget struct {
	name   string
	url    string
	srv    *hostileServer
	module func(edit func(*config.HTTPProbe)) config.Module
}

func hostileHTTPTargets(t *testing.T, handle func(net.Conn, <-chan struct{})) []hostileHTTPTarget {
	t.Helper()
	cert := newValidHTTPTestCert(t)
	plain := newHostileServer(t, afterRequest(handle))
	secure := newHostileServer(t, overTLS(cert, afterRequest(handle)))
	return []hostileHTTPTarget{
		{"http", "http://" + plain.addr + "/", plain, httpTestModule},
		{"https", "https://" + secure.addr + "/", secure, func(edit func(*config.HTTPProbe)) config.Module {
			return httpTestModule(func(p *config.HTTPProbe) {
				p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
				if edit != nil {
					edit(p)
				}
			})
		}},
	}
}

// A slowloris target sends its status line, headers or body one byte at a
// time, never finishing: the probe waits for its deadline, then fails with
// timeout.
func TestHostileHTTPSlowloris(t *testing.T) {
	for _, tc := range []struct {
		name     string
		prefix   string
		transfer bool // the headers arrived: the wait is in the transfer phase
	}{
		{"status line", "HTTP/1.1 2", false},
		{"headers", "HTTP/1.1 200 OK\r\nX-Slow: ", false},
		{"body", "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n", true},
		{"chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nf4240\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			for _, target := range hostileHTTPTargets(t, func(c net.Conn, stop <-chan struct{}) {
				trickle(c, stop, tc.prefix, "a", 20*time.Millisecond)
			}) {
				t.Run(target.name, func(t *testing.T) {
					o := probeHostile(t, target.module(nil), target.url, hostileDeadline)
					o.requireBounded(t, result.ReasonTimeout, hostileHeapFloor)
					o.requireTiming(t, true)
					target.srv.waitClosed(t)
					if got := o.r.PhaseDuration("transfer") > 0; got != tc.transfer {
						t.Errorf("transfer phase %v; want it measured only once headers arrived", o.r.PhaseDuration("transfer"))
					}
					if tc.transfer && o.r.HTTP.StatusCode != 200 {
						t.Errorf("status code %d, want the 200 that arrived", o.r.HTTP.StatusCode)
					}
				})
			}
		})
	}
}

// HTTP/2 frames trickling: a handler that flushes one byte at a time.
func TestHostileHTTP2SlowBody(t *testing.T) {
	checkNoLeaks(t)
	cert := newValidHTTPTestCert(t)
	srv := newHTTPTestTLSServer(t, cert, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := w.Write([]byte("a")); err != nil {
				return
			}
			rc.Flush()
		}
	}))
	m := httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile })
	o := probeHostile(t, m, srv.URL, hostileDeadline)
	o.requireBounded(t, result.ReasonTimeout, hostileHeapFloor)
	o.requireTiming(t, true)
	if o.r.HTTP.Proto != "HTTP/2.0" {
		t.Errorf("proto %q, want HTTP/2.0", o.r.HTTP.Proto)
	}
}

// An endless body: with body_size_limit the probe stops reading at the
// limit and fails with body_too_large long before its deadline, having read
// no more than the limit, however fast the target sends.
func TestHostileHTTPEndlessBodyWithLimit(t *testing.T) {
	const limit = units.MiB
	gzipBomb := gzipOfZeros(t, 8<<20) // 8 KiB that decompress to 8 MiB
	for _, tc := range []struct {
		name    string
		handle  func(net.Conn, <-chan struct{})
		edit    func(*config.HTTPProbe)
		maxHeap uint64
	}{
		{"until close", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "HTTP/1.1 200 OK\r\n\r\n", hostileChunk)
		}, nil, hostileHeapFloor},
		{"chunked", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", append([]byte("8000\r\n"), append(hostileChunk, "\r\n"...)...))
		}, nil, hostileHeapFloor},
		{"announced 1 TiB", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "HTTP/1.1 200 OK\r\nContent-Length: 1099511627776\r\n\r\n", hostileChunk)
		}, nil, hostileHeapFloor},
		// The body checks hold the body in memory: up to the limit.
		{"with a body regexp", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "HTTP/1.1 200 OK\r\n\r\n", hostileChunk)
		}, func(p *config.HTTPProbe) {
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "never sent")}
		}, 4*uint64(limit) + hostileHeapFloor},
		// The limit applies to the decompressed body.
		{"gzip bomb", func(c net.Conn, stop <-chan struct{}) {
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n"))
			c.Write(gzipBomb)
		}, func(p *config.HTTPProbe) { p.Compression = "gzip" }, hostileHeapFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			for _, target := range hostileHTTPTargets(t, tc.handle) {
				t.Run(target.name, func(t *testing.T) {
					m := target.module(func(p *config.HTTPProbe) {
						p.BodySizeLimit = limit
						if tc.edit != nil {
							tc.edit(p)
						}
					})
					o := probeHostile(t, m, target.url, hostileQuickDeadline)
					o.requireBounded(t, result.ReasonBodyTooLarge, tc.maxHeap)
					o.requireTiming(t, false)
					if n := o.r.HTTP.UncompressedBodyLength; n != int64(limit) {
						t.Errorf("read %d body bytes, want the limit %d", n, limit)
					}
					target.srv.waitClosed(t)
					t.Logf("the server wrote %dKiB", target.srv.written.Load()>>10)
				})
			}
		})
	}
}

// An endless body without body_size_limit: the probe reads until its
// deadline and fails with timeout. Discarded as it is read (no body check),
// it costs the same memory however much arrives.
func TestHostileHTTPEndlessBodyWithoutLimit(t *testing.T) {
	checkNoLeaks(t)
	for _, target := range hostileHTTPTargets(t, func(c net.Conn, stop <-chan struct{}) {
		flood(c, stop, "HTTP/1.1 200 OK\r\n\r\n", hostileChunk)
	}) {
		t.Run(target.name, func(t *testing.T) {
			o := probeHostile(t, target.module(nil), target.url, hostileDeadline)
			o.requireBounded(t, result.ReasonTimeout, hostileHeapFloor)
			o.requireTiming(t, true)
			target.srv.waitClosed(t)
			read := o.r.HTTP.UncompressedBodyLength
			t.Logf("read %dKiB of body in %v, allocating %s", read>>10, o.elapsed.Round(time.Millisecond), kib(o.alloc))
			if written := target.srv.written.Load(); read > written {
				t.Errorf("read %d bytes, the server wrote %d", read, written)
			}
			// The prober's own HTTP/1.1 path allocates nothing per byte.
			if target.name == "http" && o.alloc > 1<<20 {
				t.Errorf("allocated %s reading %dKiB", kib(o.alloc), read>>10)
			}
		})
	}
}

// With a body check and no body_size_limit the body is held in memory, as
// blackbox_exporter does: memory grows with what arrives before the
// deadline, and no further. This is the case body_size_limit exists for.
func TestHostileHTTPEndlessBodyBufferedUntilDeadline(t *testing.T) {
	checkNoLeaks(t)
	// A target sending 64 KiB every 10ms: about 2 MiB before the deadline.
	srv := newHostileServer(t, afterRequest(func(c net.Conn, stop <-chan struct{}) {
		trickle(c, stop, "HTTP/1.1 200 OK\r\n\r\n", string(bytes.Repeat(hostileChunk, 2)), 10*time.Millisecond)
	}))
	m := httpTestModule(func(p *config.HTTPProbe) {
		p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "never sent")}
	})
	o := probeHostile(t, m, "http://"+srv.addr+"/", hostileDeadline)
	read := uint64(o.r.HTTP.UncompressedBodyLength)
	// bytes.Buffer doubles: about twice the bytes read, and the smaller
	// buffers it grew from until they are collected.
	t.Logf("read %dKiB of body", read>>10)
	o.requireBounded(t, result.ReasonTimeout, 6*read+hostileHeapFloor)
	o.requireTiming(t, true)
	srv.waitClosed(t)
	if written := uint64(srv.written.Load()); read > written {
		t.Errorf("read %d bytes, the server wrote %d", read, written)
	}
}

// A response cut short: announced a megabyte, sent ten bytes, closed.
func TestHostileHTTPTruncatedBody(t *testing.T) {
	checkNoLeaks(t)
	for _, target := range hostileHTTPTargets(t, func(c net.Conn, stop <-chan struct{}) {
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n0123456789"))
		c.Close()
	}) {
		t.Run(target.name, func(t *testing.T) {
			o := probeHostile(t, target.module(nil), target.url, hostileQuickDeadline)
			o.requireBounded(t, result.ReasonProtocolError, hostileHeapFloor)
			o.requireTiming(t, false)
			if o.r.HTTP.StatusCode != 200 || o.r.HTTP.ContentLength != 1000000 || o.r.HTTP.UncompressedBodyLength != 10 {
				t.Errorf("details %+v", o.r.HTTP)
			}
		})
	}
}

// Headers that never end, as fast as the target can send them: the probe
// stops reading at net/http's limit of response header bytes (10 MiB) and
// fails with protocol_error instead of holding them all until its
// deadline.
func TestHostileHTTPEndlessHeaders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		chunk  []byte
		https  bool // net/http's Transport too, not only the prober's own path
	}{
		{"many lines", "HTTP/1.1 200 OK\r\n", bytes.Repeat([]byte("X-Flood: aaaaaaaaaaaaaaaaaaaaaaa\r\n"), 1000), true},
		{"one endless line", "HTTP/1.1 200 OK\r\nX-Long: ", hostileChunk, false},
		{"endless 100 Continue", "", bytes.Repeat([]byte("HTTP/1.1 100 Continue\r\n\r\n"), 1000), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			for _, target := range hostileHTTPTargets(t, func(c net.Conn, stop <-chan struct{}) {
				flood(c, stop, tc.prefix, tc.chunk)
			}) {
				if target.name == "https" && !tc.https {
					continue
				}
				t.Run(target.name, func(t *testing.T) {
					// The limit, not the deadline, ends it: protocol_error,
					// not timeout.
					o := probeHostile(t, target.module(nil), target.url, 5*time.Second)
					// 10 MiB of header text, parsed: a few times that.
					o.requireBounded(t, result.ReasonProtocolError, 64<<20)
					if !strings.Contains(o.r.Error, "headers exceeded") {
						t.Errorf("error %q does not name the headers", o.r.Error)
					}
					target.srv.waitClosed(t)
					if w := target.srv.written.Load(); w > 40<<20 {
						t.Errorf("the server got %d MiB of headers through", w>>20)
					}
				})
			}
		})
	}
}

// gzipOfZeros compresses n zero bytes.
func gzipOfZeros(tb testing.TB, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range n >> 20 {
		zw.Write(zeros)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
