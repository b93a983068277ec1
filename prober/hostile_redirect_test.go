package prober

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// Hostile redirects. As blackbox_exporter, the probe follows at most 10
// redirects (maxRedirects), then judges the last response, a redirect, by
// valid_status_codes; probe_http_redirects counts the redirect responses
// seen. follow_redirects: false (or no_follow_redirects: true) judges the
// first response.

// newCountingServer starts an httptest server whose connections are counted.
func newCountingServer(t *testing.T, conns *connCounter, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = conns.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Two servers redirecting to each other (A→B→A…): the probe stops after
// 10 redirects, each on a fresh connection, and fails with status_code on
// the last 302, long before its deadline.
func TestHostileRedirectLoop(t *testing.T) {
	checkNoLeaks(t)
	var conns connCounter
	var a, b *httptest.Server
	a = newCountingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, b.URL+"/b", http.StatusFound)
	})
	b = newCountingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, a.URL+"/a", http.StatusFound)
	})

	o := probeHostile(t, httpTestModule(nil), a.URL+"/a", hostileQuickDeadline)
	o.requireBounded(t, result.ReasonStatusCode, hostileHeapFloor)
	o.requireTiming(t, false)
	s := seriesOfResult(o.r)
	if s["probe_http_redirects"] != maxRedirects+1 || s["probe_http_status_code"] != http.StatusFound {
		t.Errorf("redirects %v, status %v; want %d and 302", s["probe_http_redirects"], s["probe_http_status_code"], maxRedirects+1)
	}
	if n := conns.count(); n != maxRedirects+1 {
		t.Errorf("%d connections for %d round trips", n, maxRedirects+1)
	}

	t.Run("no_follow_redirects", func(t *testing.T) {
		no := true
		m := httpTestModule(func(p *config.HTTPProbe) { p.NoFollowRedirects = &no })
		o := probeHostile(t, m, a.URL+"/a", hostileQuickDeadline)
		o.requireBounded(t, result.ReasonStatusCode, hostileHeapFloor)
		if o.r.HTTP.Redirects != 1 || o.r.HTTP.StatusCode != http.StatusFound || !strings.HasSuffix(o.r.HTTP.FinalURL, "/a") {
			t.Errorf("details %+v; want the first 302, counted as one redirect", o.r.HTTP)
		}
	})
	t.Run("302 accepted", func(t *testing.T) {
		m := httpTestModule(func(p *config.HTTPProbe) { p.ValidStatusCodes = []int{http.StatusFound} })
		o := probeHostile(t, m, a.URL+"/a", hostileQuickDeadline)
		requireReason(t, o.r, result.ReasonNone)
	})
}

// A chain longer than 10: the probe follows 10 and judges the 11th
// response; a chain of exactly 10 ends at its 200.
func TestHostileRedirectChain(t *testing.T) {
	checkNoLeaks(t)
	const length = 15
	var conns connCounter
	srv := newCountingServer(t, &conns, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
		if n >= length {
			fmt.Fprint(w, "end of the chain")
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/r/%d", n+1), http.StatusMovedPermanently)
	})
	o := probeHostile(t, httpTestModule(nil), srv.URL+"/r/0", hostileQuickDeadline)
	o.requireBounded(t, result.ReasonStatusCode, hostileHeapFloor)
	o.requireTiming(t, false)
	if o.r.HTTP.Redirects != maxRedirects+1 || !strings.HasSuffix(o.r.HTTP.FinalURL, fmt.Sprintf("/r/%d", maxRedirects)) {
		t.Errorf("redirects %d, final URL %q; want %d redirects ending at /r/%d", o.r.HTTP.Redirects, o.r.HTTP.FinalURL, maxRedirects+1, maxRedirects)
	}

	o = probeHostile(t, httpTestModule(nil), fmt.Sprintf("%s/r/%d", srv.URL, length-maxRedirects), hostileQuickDeadline)
	requireReason(t, o.r, result.ReasonNone)
	if o.r.HTTP.Redirects != maxRedirects {
		t.Errorf("redirects %d, want %d", o.r.HTTP.Redirects, maxRedirects)
	}
}

// Redirects to other schemes, hosts and ports: each hop is held to the same
// deadline, and the failure is the redirect target's.
func TestHostileRedirectElsewhere(t *testing.T) {
	checkNoLeaks(t)
	useHTTPTestDNS(t, map[string]string{"web.vantage.test.": "127.0.0.1"})
	silent := newHostileServer(t, func(net.Conn, <-chan struct{}) {})
	_, silentPort, _ := net.SplitHostPort(silent.addr)
	cert := newValidHTTPTestCert(t)
	plain := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "plain")
	}))
	// An endless chunked body on the redirect itself: the probe reads a
	// little of it, as net/http's client does, and moves on.
	endlessRedirect := newHostileServer(t, afterRequest(func(c net.Conn, stop <-chan struct{}) {
		flood(c, stop, "HTTP/1.1 302 Found\r\nLocation: "+plain.URL+"/\r\nTransfer-Encoding: chunked\r\n\r\n",
			append([]byte("8000\r\n"), append(hostileChunk, "\r\n"...)...))
	}))
	for _, tc := range []struct {
		name     string
		location string
		tls      bool
		edit     func(*config.HTTPProbe)
		want     result.Reason
		stalls   bool // the hop stalls until the deadline
	}{
		// net/http refuses the scheme before dialling; the hop never
		// connected (blackbox_exporter fails the probe too, status 0).
		{"ftp", "ftp://127.0.0.1/file", false, nil, result.ReasonConnectError, false},
		{"closed port", "http://" + testbin.FreeAddr(t) + "/", false, nil, result.ReasonConnectRefused, false},
		{"other host, silent", "http://web.vantage.test:" + silentPort + "/", false, nil, result.ReasonTimeout, true},
		{"unknown host", "http://nx.vantage.test/", false, nil, result.ReasonDNSError, false},
		{"https to http", plain.URL + "/", true, func(p *config.HTTPProbe) { p.FailIfNotSSL = true }, result.ReasonSSLPolicy, false},
		{"https to http allowed", plain.URL + "/", true, nil, result.ReasonNone, false},
		{"endless redirect body", "http://" + endlessRedirect.addr + "/", false, nil, result.ReasonNone, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tc.location, http.StatusFound)
			})
			var first *httptest.Server
			m := httpTestModule(tc.edit)
			if tc.tls {
				first = newHTTPTestTLSServer(t, cert, false, h)
				m.HTTP.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
			} else {
				first = newHTTPTestServer(t, h)
			}
			o := probeHostile(t, m, first.URL+"/", deadlineFor(tc.stalls))
			if tc.want == result.ReasonNone {
				requireReason(t, o.r, result.ReasonNone)
			} else {
				o.requireBounded(t, tc.want, hostileHeapFloor)
			}
			o.requireTiming(t, tc.stalls)
			wantRedirects := 1
			if tc.location == "http://"+endlessRedirect.addr+"/" {
				wantRedirects = 2 // and then to plain
			}
			if o.r.HTTP.Redirects != wantRedirects {
				t.Errorf("redirects %d, want %d", o.r.HTTP.Redirects, wantRedirects)
			}
			if failedHop := tc.want != result.ReasonNone && tc.want != result.ReasonSSLPolicy; failedHop && o.r.HTTP.StatusCode != 0 {
				t.Errorf("status code %d without a final response", o.r.HTTP.StatusCode)
			}
			if tc.want == result.ReasonSSLPolicy && (o.r.HTTP.SSL || seriesOfResult(o.r)["probe_http_ssl"] != 0) {
				t.Error("probe_http_ssl set for a final response over plain HTTP")
			}
		})
	}
	endlessRedirect.waitClosed(t)
	silent.waitClosed(t)
}
