package prober

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// A plain-HTTP probe in flight costs one goroutine on the client side (its
// own): net/http's Transport would add a read and a write loop per
// connection, which is what dominated memory with thousands of checks in
// flight.
func TestDirectRoundTripGoroutinesPerProbe(t *testing.T) {
	const n = 40
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	mod, err := Prepare("direct", config.Module{Prober: "http", HTTP: config.DefaultHTTPProbe})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	results := make([]*result.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			results[i] = mod.Probe(ctx, srv.URL, Params{})
		}()
	}
	for range n {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("probes did not reach the server")
		}
	}
	// Per probe in flight: the probe's goroutine, and the server's
	// connection goroutine and background reader.
	perProbe := float64(runtime.NumGoroutine()-before) / n
	close(release)
	wg.Wait()
	if perProbe > 3.5 {
		t.Errorf("%.1f goroutines per plain-HTTP probe in flight, want 3 (1 client + 2 server)", perProbe)
	}
	for i, r := range results {
		if !r.Success || r.HTTP.StatusCode != 200 {
			t.Fatalf("probe %d: success %v reason %q (%s)", i, r.Success, r.Reason, r.Error)
		}
		if r.PhaseDuration("connect") <= 0 {
			t.Errorf("probe %d: connect phase not measured", i)
		}
	}
	if p := results[0].PhaseDuration("processing"); p <= 0 {
		t.Errorf("processing phase %s, want the time the server held the request", p)
	}
}

// The direct path and the module's prometheus/common chain give the same
// series (timings apart: status, phases present, redirects...) and the same
// failure reason for the same module and target.
func TestDirectPathMatchesTransport(t *testing.T) {
	lastModified := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Last-Modified", lastModified.Format(http.TimeFormat))
		_, _ = w.Write([]byte("hello direct"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusFound) })
	mux.HandleFunc("/missing", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, _ *http.Request) {
		for range 3 {
			_, _ = w.Write([]byte("chunk "))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/gzip", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(gzipOfZeros(t, 1000))
	})
	mux.HandleFunc("/cut", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte("short"))
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	srv := newHTTPTestServer(t, mux)
	refused := testbin.RefusedAddr(t)

	modules := map[string]config.Module{
		"default": httpTestModule(nil),
		"checks": httpTestModule(func(p *config.HTTPProbe) {
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "hello")}
			p.ValidHTTPVersions = []string{"HTTP/1.1"}
		}),
		"gzip":        httpTestModule(func(p *config.HTTPProbe) { p.Compression = "gzip" }),
		"no_redirect": httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.FollowRedirects = false }),
	}
	timing := func(name string) bool {
		return strings.Contains(name, "_duration_seconds") || strings.HasPrefix(name, "probe_dns_lookup_time_seconds") || strings.HasPrefix(name, "probe_timeout_seconds")
	}
	probe := func(m config.Module, target string, direct bool) (map[string]float64, result.Reason) {
		old := directHTTP
		directHTTP = direct
		defer func() { directHTTP = old }()
		dials := chainDials(t)
		r := httpTestProbe(t, m, target, Params{}, 5*time.Second)
		if viaChain := chainDials(t) > dials; viaChain == direct {
			t.Errorf("%s: direct %v, but the chain dialed: %v", target, direct, viaChain)
		}
		out := map[string]float64{}
		for name, v := range seriesOfResult(r) {
			if timing(name) {
				v = 0 // present, value not compared
			}
			out[name] = v
		}
		return out, r.Reason
	}
	for mname, m := range modules {
		for _, target := range []string{srv.URL + "/", srv.URL + "/redirect", srv.URL + "/missing", srv.URL + "/chunked",
			srv.URL + "/gzip", srv.URL + "/cut", "http://" + refused + "/"} {
			direct, dReason := probe(m, target, true)
			viaTransport, tReason := probe(m, target, false)
			if dReason != tReason {
				t.Errorf("%s %s: reason direct %q, Transport %q", mname, target, dReason, tReason)
			}
			for name, v := range viaTransport {
				if got, ok := direct[name]; !ok || got != v {
					t.Errorf("%s %s: %s direct %v (present %v), Transport %v", mname, target, name, got, ok, v)
				}
			}
			for name := range direct {
				if _, ok := viaTransport[name]; !ok {
					t.Errorf("%s %s: %s only on the direct path", mname, target, name)
				}
			}
		}
	}
}
