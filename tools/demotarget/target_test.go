package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// testLookup resolves exporter-ams and exporter-fra to loopback addresses.
func testLookup(_ context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "exporter-ams":
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, nil
	case "exporter-fra":
		return []netip.Addr{netip.MustParseAddr("127.0.0.3")}, nil
	}
	return nil, errors.New("no such host")
}

func mustServer(tb testing.TB) *httptest.Server {
	tb.Helper()
	ts := httptest.NewServer(newTarget(slog.New(slog.DiscardHandler), testLookup).handler())
	tb.Cleanup(ts.Close)
	return ts
}

// clientFrom returns a client whose connections come from the local address ip.
func clientFrom(tb testing.TB, ip string) *http.Client {
	tb.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	// Loopback addresses other than 127.0.0.1 work on Linux.
	conn, err := d.Dial("tcp", "127.0.0.1:1")
	if err != nil && strings.Contains(err.Error(), "assign requested address") {
		tb.Fatalf("cannot bind %s (Linux routes all of 127.0.0.0/8 to loopback): %v", ip, err)
	}
	if conn != nil {
		conn.Close()
	}
	return c
}

// mustStatus GETs / with c and returns the status code.
func mustStatus(tb testing.TB, c *http.Client, url string) int {
	tb.Helper()
	resp, err := c.Get(url + "/")
	if err != nil {
		tb.Fatalf("GET %s/: %v", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// mustPost POSTs to path and returns the decoded state; it fails the test
// unless the answer has wantCode.
func mustPost(tb testing.TB, url, path string, wantCode int) stateJSON {
	tb.Helper()
	resp, err := http.Post(url+path, "", nil)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantCode {
		tb.Fatalf("POST %s: status %d, want %d (%s)", path, resp.StatusCode, wantCode, body)
	}
	var s stateJSON
	if wantCode == http.StatusOK {
		if err := json.Unmarshal(body, &s); err != nil {
			tb.Fatalf("POST %s: %v in %s", path, err, body)
		}
	}
	return s
}

func TestDownAndUp(t *testing.T) {
	ts := mustServer(t)
	c := ts.Client()

	resp, err := c.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "vantage demo target") {
		t.Fatalf("GET / while up: %d %q", resp.StatusCode, body)
	}

	if s := mustPost(t, ts.URL, "/down", http.StatusOK); !s.Down || s.Mode != modeStatus {
		t.Errorf("state after /down = %+v", s)
	}
	if code := mustStatus(t, c, ts.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET / while down: %d, want 503", code)
	}
	// Health checks of the demo target itself are not switched.
	if resp, err := c.Get(ts.URL + "/-/healthy"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /-/healthy while down: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	if s := mustPost(t, ts.URL, "/up", http.StatusOK); s.Down || len(s.From) != 0 {
		t.Errorf("state after /up = %+v", s)
	}
	if code := mustStatus(t, c, ts.URL); code != http.StatusOK {
		t.Errorf("GET / after /up: %d, want 200", code)
	}
}

func TestDownOnlyFromSource(t *testing.T) {
	ts := mustServer(t)
	ams := clientFrom(t, "127.0.0.2")
	fra := clientFrom(t, "127.0.0.3")
	local := clientFrom(t, "127.0.0.1")

	s := mustPost(t, ts.URL, "/down?from=exporter-ams", http.StatusOK)
	if s.Down || len(s.From) != 1 || s.From[0] != "127.0.0.2/32" {
		t.Fatalf("state after /down?from=exporter-ams = %+v", s)
	}
	if code := mustStatus(t, ams, ts.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET / from 127.0.0.2 (down for it): %d, want 503", code)
	}
	if code := mustStatus(t, fra, ts.URL); code != http.StatusOK {
		t.Errorf("GET / from 127.0.0.3: %d, want 200", code)
	}

	// A CIDR prefix covers fra too, but not 127.0.0.1.
	mustPost(t, ts.URL, "/down?from=127.0.0.2/31", http.StatusOK)
	if code := mustStatus(t, fra, ts.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET / from 127.0.0.3 inside 127.0.0.2/31: %d, want 503", code)
	}
	if code := mustStatus(t, local, ts.URL); code != http.StatusOK {
		t.Errorf("GET / from 127.0.0.1: %d, want 200", code)
	}

	// Up for one source leaves the others failing.
	s = mustPost(t, ts.URL, "/up?from=127.0.0.2/31", http.StatusOK)
	if len(s.From) != 1 || s.From[0] != "127.0.0.2/32" {
		t.Fatalf("state after /up?from=127.0.0.2/31 = %+v", s)
	}
	if code := mustStatus(t, fra, ts.URL); code != http.StatusOK {
		t.Errorf("GET / from 127.0.0.3 after its /up: %d, want 200", code)
	}
	if code := mustStatus(t, ams, ts.URL); code != http.StatusServiceUnavailable {
		t.Errorf("GET / from 127.0.0.2, still down: %d, want 503", code)
	}
}

func TestDropMode(t *testing.T) {
	ts := mustServer(t)
	if s := mustPost(t, ts.URL, "/down?mode=drop", http.StatusOK); s.Mode != modeDrop {
		t.Fatalf("mode = %q", s.Mode)
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get(ts.URL + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET / in drop mode answered %d, want a failed request", resp.StatusCode)
	}
}

func TestBadSwitches(t *testing.T) {
	ts := mustServer(t)
	for _, path := range []string{
		"/down?mode=teapot",
		"/down?from=no-such-host",
		"/slow?delay=-1s",
		"/slow?delay=soon",
		"/slow?delay=1h",
		"/up?from=no-such-host",
	} {
		mustPost(t, ts.URL, path, http.StatusBadRequest)
	}
	if code := mustStatus(t, ts.Client(), ts.URL); code != http.StatusOK {
		t.Errorf("GET / after rejected switches: %d, want 200", code)
	}
	resp, err := ts.Client().Get(ts.URL + "/down")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /down: %d, want 405", resp.StatusCode)
	}
}

func TestSlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTarget(slog.New(slog.DiscardHandler), testLookup).handler()
		serve := func(method, target string) *httptest.ResponseRecorder {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
			return rec
		}
		if rec := serve(http.MethodPost, "/slow?delay=2s"); rec.Code != http.StatusOK {
			t.Fatalf("POST /slow: %d %s", rec.Code, rec.Body)
		}
		start := time.Now()
		if rec := serve(http.MethodGet, "/"); rec.Code != http.StatusOK {
			t.Fatalf("GET / while slow: %d", rec.Code)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("GET / took %s, want 2s", got)
		}

		// A request whose client gives up ends at once.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start = time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		if got := time.Since(start); got != 500*time.Millisecond {
			t.Errorf("cancelled GET / took %s, want 500ms", got)
		}

		// /up makes it fast again.
		serve(http.MethodPost, "/up")
		start = time.Now()
		serve(http.MethodGet, "/")
		if got := time.Since(start); got != 0 {
			t.Errorf("GET / after /up took %s, want 0s", got)
		}
	})
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--web.listen-address=127.0.0.1:0", "--log.level=error"}, io.Discard, func(a net.Addr) { addrs <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrs:
	case code := <-done:
		t.Fatalf("run exited with %d before listening", code)
	}
	if code := mustStatus(t, http.DefaultClient, "http://"+addr.String()); code != http.StatusOK {
		t.Errorf("GET /: %d", code)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("run returned %d after cancel, want 0", code)
	}

	if code := run(context.Background(), []string{"--no-such-flag"}, io.Discard, nil); code != 2 {
		t.Errorf("run with an unknown flag returned %d, want 2", code)
	}
}
