package prober

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

// probeAsync runs mod.ProbeAsync with resume running the rest on a new
// goroutine (as the scheduler's workers would) once ProbeAsync has
// returned, and reports whether the result was done after ProbeAsync
// returned (the probe waited off the caller), and the result.
func probeAsync(tb testing.TB, mod *Module, target string, timeout time.Duration) (waited bool, r *result.Result) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	returned := make(chan struct{})
	type outcome struct {
		r      *result.Result
		waited bool
	}
	done := make(chan outcome, 1)
	resume := func(f func()) {
		go func() {
			<-returned
			f()
		}()
	}
	mod.ProbeAsync(ctx, target, Params{}, resume, func(r *result.Result) {
		select {
		case <-returned:
			done <- outcome{r, true}
		default:
			done <- outcome{r, false}
		}
	})
	close(returned)
	select {
	case o := <-done:
		return o.waited, o.r
	case <-time.After(timeout + 5*time.Second):
		tb.Fatalf("%s: ProbeAsync never called done", target)
		return false, nil
	}
}

// neverAnswer holds a request until the client goes away (its body read,
// so that the server notices), or 10 s.
func neverAnswer(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

// A plain-HTTP probe waits for its answer after ProbeAsync returned, and
// gives the series (timings apart) and failure reason Probe gives: for
// answers, redirects, a request body, a slow server, a reset, a timeout.
func TestProbeAsyncMatchesProbe(t *testing.T) {
	checkNoLeaks(t) // no waiting goroutine or connection outlives its probe
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).Format(http.TimeFormat))
		_, _ = w.Write([]byte("hello async " + r.Method))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(150 * time.Millisecond)
		_, _ = w.Write([]byte("hello, late"))
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/", http.StatusFound) })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/reset", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(50 * time.Millisecond)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
		conn.Close()
	})
	mux.HandleFunc("/never", neverAnswer)
	srv := newHTTPTestServer(t, mux)
	refused := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return "http://" + addr + "/"
	}()

	modules := map[string]config.Module{
		"default": httpTestModule(nil),
		"checks": httpTestModule(func(p *config.HTTPProbe) {
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "hello")}
			p.ValidStatusCodes = []int{200}
		}),
		"post": httpTestModule(func(p *config.HTTPProbe) {
			p.Method = http.MethodPost
			p.Body = "ping"
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "POST")}
		}),
		"no_redirect": httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.FollowRedirects = false }),
	}
	timing := func(name string) bool {
		return strings.Contains(name, "_duration_seconds") || strings.HasPrefix(name, "probe_dns_lookup_time_seconds") || strings.HasPrefix(name, "probe_timeout_seconds")
	}
	series := func(r *result.Result) map[string]float64 {
		out := map[string]float64{}
		for name, v := range seriesOfResult(r) {
			if timing(name) {
				v = 0 // present, value not compared
			}
			out[name] = v
		}
		return out
	}
	targets := []struct {
		path    string
		waits   bool // ProbeAsync returns before the answer
		timeout time.Duration
	}{
		{srv.URL + "/", true, 5 * time.Second},
		{srv.URL + "/slow", true, 5 * time.Second},
		{srv.URL + "/redirect", true, 5 * time.Second},
		{srv.URL + "/missing", true, 5 * time.Second},
		{srv.URL + "/reset", true, 5 * time.Second},
		{srv.URL + "/never", true, 300 * time.Millisecond},
		{refused, false, 5 * time.Second},
	}
	for mname, m := range modules {
		mod, err := Prepare(mname, m)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range targets {
			ctx, cancel := context.WithTimeout(context.Background(), tg.timeout)
			sync := mod.Probe(ctx, tg.path, Params{})
			cancel()
			waited, async := probeAsync(t, mod, tg.path, tg.timeout)
			if waited != tg.waits {
				t.Errorf("%s %s: ProbeAsync returned before the result %v, want %v", mname, tg.path, waited, tg.waits)
			}
			if async.Reason != sync.Reason || async.Success != sync.Success {
				t.Errorf("%s %s: async success %v reason %q (%s), Probe %v %q (%s)", mname, tg.path,
					async.Success, async.Reason, async.Error, sync.Success, sync.Reason, sync.Error)
			}
			want, got := series(sync), series(async)
			for name, v := range want {
				if g, ok := got[name]; !ok || g != v {
					t.Errorf("%s %s: %s async %v (present %v), Probe %v", mname, tg.path, name, g, ok, v)
				}
			}
			for name := range got {
				if _, ok := want[name]; !ok {
					t.Errorf("%s %s: %s only from ProbeAsync", mname, tg.path, name)
				}
			}
		}
	}
}

// The phases of a probe that waited are measured as Probe measures them:
// processing is the time the server held the request, a timeout counts
// until the deadline.
func TestProbeAsyncPhases(t *testing.T) {
	checkNoLeaks(t)
	const hold = 200 * time.Millisecond
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, _ *http.Request) {
		time.Sleep(hold)
		_, _ = w.Write([]byte("late"))
	})
	mux.HandleFunc("/never", neverAnswer)
	srv := newHTTPTestServer(t, mux)
	mod, err := Prepare("async", httpTestModule(nil))
	if err != nil {
		t.Fatal(err)
	}
	waited, r := probeAsync(t, mod, srv.URL+"/slow", 5*time.Second)
	if !waited || !r.Success {
		t.Fatalf("slow: waited %v, success %v reason %q (%s)", waited, r.Success, r.Reason, r.Error)
	}
	if p := r.PhaseDuration("processing"); p < hold || p > hold+time.Second {
		t.Errorf("slow: processing %s, want about %s", p, hold)
	}
	if r.PhaseDuration("connect") <= 0 {
		t.Error("slow: connect phase not measured")
	}

	const deadline = 300 * time.Millisecond
	waited, r = probeAsync(t, mod, srv.URL+"/never", deadline)
	if !waited || r.Reason != result.ReasonTimeout {
		t.Fatalf("never: waited %v, reason %q (%s), want %q", waited, r.Reason, r.Error, result.ReasonTimeout)
	}
	if p := r.PhaseDuration("processing"); p < deadline-50*time.Millisecond || p > deadline+time.Second {
		t.Errorf("never: processing %s, want about the deadline %s", p, deadline)
	}
	if r.Duration < deadline-50*time.Millisecond {
		t.Errorf("never: duration %s, want at least the deadline %s", r.Duration, deadline)
	}
}

// Modules the waiting path does not handle run to their end before
// ProbeAsync returns, with the result Probe gives: a round tripper
// between the client and the connection (basic_auth), credentials in the
// target's URL.
func TestProbeAsyncFallsBack(t *testing.T) {
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	m := httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "u", Password: "p"}
	})
	mod, err := Prepare("auth", m)
	if err != nil {
		t.Fatal(err)
	}
	waited, r := probeAsync(t, mod, srv.URL, 5*time.Second)
	if waited {
		t.Error("basic_auth: ProbeAsync returned before the result")
	}
	if !r.Success || r.HTTP.StatusCode != 200 {
		t.Errorf("basic_auth: success %v status %d reason %q (%s)", r.Success, r.HTTP.StatusCode, r.Reason, r.Error)
	}
	// Credentials in the URL are added by the client: the same fallback.
	bare, err := Prepare("bare", httpTestModule(nil))
	if err != nil {
		t.Fatal(err)
	}
	waited, r = probeAsync(t, bare, strings.Replace(srv.URL, "http://", "http://u:p@", 1), 5*time.Second)
	if waited || !r.Success {
		t.Errorf("userinfo: waited %v, success %v reason %q (%s)", waited, r.Success, r.Reason, r.Error)
	}
}

// A probe that waits off the caller connects as Probe does: from
// source_ip_address, and never to an address the module's destinations
// deny.
func TestProbeAsyncSourceAndDestinations(t *testing.T) {
	requireSecondLoopback(t)
	from := make(chan string, 1)
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		select {
		case from <- host:
		default:
		}
		time.Sleep(50 * time.Millisecond) // answer after ProbeAsync returned
		_, _ = w.Write([]byte("ok"))
	}))
	mod, err := Prepare("source", guardModule(t, `
prober: http
http:
  source_ip_address: 127.0.0.2`))
	if err != nil {
		t.Fatal(err)
	}
	waited, r := probeAsync(t, mod, srv.URL, 5*time.Second)
	if !waited || !r.Success {
		t.Fatalf("source: waited %v, success %v reason %q (%s)", waited, r.Success, r.Reason, r.Error)
	}
	if got := <-from; got != "127.0.0.2" {
		t.Errorf("connected from %s, want source_ip_address 127.0.0.2", got)
	}

	denied, err := Prepare("denied", guardModule(t, `
prober: http
destinations:
  denied_networks: [127.0.0.0/8]`))
	if err != nil {
		t.Fatal(err)
	}
	waited, r = probeAsync(t, denied, srv.URL, 5*time.Second)
	if waited {
		t.Error("denied: ProbeAsync returned before the result")
	}
	requireDestinationDenied(t, r, "127.0.0.1", "127.0.0.0/8")
	select {
	case got := <-from:
		t.Errorf("denied: the server was reached from %s", got)
	default:
	}
}
