package prober

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/config"
)

// headerRecorder records a header of every request a test server gets, by
// path.
type headerRecorder struct {
	mu   sync.Mutex
	seen map[string][]string
}

func (h *headerRecorder) record(r *http.Request, name string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string][]string{}
	}
	h.seen[r.URL.Path] = append(h.seen[r.URL.Path], r.Header.Get(name))
}

func (h *headerRecorder) get(path string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[path]
}

// redirectingHandler redirects /start to /final and records traceparent.
func redirectingHandler(rec *headerRecorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.record(r, "Traceparent")
		if r.URL.Path == "/start" {
			http.Redirect(w, r, "/final", http.StatusFound)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
}

func testSpanContext() trace.SpanContext {
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:     trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
		TraceFlags: trace.FlagsSampled,
	})
}

const testTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// The http prober sends the trace context of the check's span with every
// request, redirects included, over the direct HTTP/1.1 path and net/http's
// Transport (TLS) alike, and only when Params.Tracing asks for it.
func TestHTTPSendsTraceparentOnlyWhenTracing(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	plainRec, tlsRec := &headerRecorder{}, &headerRecorder{}
	plain := newHTTPTestServer(t, redirectingHandler(plainRec))
	secure := newHTTPTestTLSServer(t, cert, true, redirectingHandler(tlsRec))
	m := httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile })
	mod, err := Prepare("http_test", m)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tracing bool
		span    bool
		want    string
	}{
		{"tracing, a span", true, true, testTraceparent},
		{"tracing off, a span", false, true, ""},
		{"tracing, no span", true, false, ""},
	} {
		for _, srv := range []struct {
			url string
			rec *headerRecorder
		}{{plain.URL, plainRec}, {secure.URL, tlsRec}} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if tc.span {
				ctx = trace.ContextWithSpanContext(ctx, testSpanContext())
			}
			before := len(srv.rec.get("/final"))
			r := mod.Probe(ctx, srv.url+"/start", Params{Tracing: tc.tracing, Logger: slog.New(slog.DiscardHandler)})
			cancel()
			requireReason(t, r, result.ReasonNone)
			if r.HTTP.Redirects != 1 {
				t.Fatalf("%s, %s: %d redirects, want 1", tc.name, srv.url, r.HTTP.Redirects)
			}
			starts, finals := srv.rec.get("/start"), srv.rec.get("/final")
			if len(finals) != before+1 {
				t.Fatalf("%s: the final URL was requested %d times", tc.name, len(finals)-before)
			}
			if got1, got2 := starts[len(starts)-1], finals[len(finals)-1]; got1 != tc.want || got2 != tc.want {
				t.Errorf("%s, %s: traceparent %q then %q (after the redirect), want %q on both", tc.name, srv.url, got1, got2, tc.want)
			}
		}
	}
}

// Timeline holds every measured phase occurrence with real start offsets,
// and agrees with Phases: the durations of a phase's occurrences sum to
// its Phases duration (HTTP redirects sum up).
func TestTimelineAgreesWithPhases(t *testing.T) {
	useHTTPTestDNS(t, map[string]string{"web.vantage.test.": "127.0.0.1"})
	srv := newHTTPTestServer(t, redirectingHandler(&headerRecorder{}))
	target := "http://web.vantage.test:" + serverPort(t, srv) + "/start"

	off := httpTestProbe(t, httpTestModule(nil), target, Params{}, 5*time.Second)
	requireReason(t, off, result.ReasonNone)
	if off.Timeline != nil {
		t.Errorf("Timeline recorded without Params.Tracing: %+v", off.Timeline)
	}

	r := httpTestProbe(t, httpTestModule(nil), target, Params{Tracing: true}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	assertTimeline(t, r)
	counts := map[string]int{}
	for _, pt := range r.Timeline {
		counts[pt.Name]++
	}
	// Two round trips: connect and processing twice; transfer of the
	// final response only; one lookup (resolveTarget's; the redirect
	// stays on the same host).
	if counts["connect"] != 2 || counts["processing"] != 2 || counts["transfer"] != 1 || counts["resolve"] != 1 {
		t.Errorf("phase occurrences %v, want resolve once, connect and processing twice, transfer once", counts)
	}
}

// assertTimeline checks r's timeline against its phases and its duration.
func assertTimeline(t *testing.T, r *result.Result) {
	t.Helper()
	if len(r.Timeline) == 0 {
		t.Fatal("no timeline")
	}
	sums := map[string]time.Duration{}
	for _, pt := range r.Timeline {
		if pt.Start < 0 || pt.Duration <= 0 || pt.Start+pt.Duration > r.Duration {
			t.Errorf("phase %s at %v for %v is outside the probe's %v", pt.Name, pt.Start, pt.Duration, r.Duration)
		}
		sums[pt.Name] += pt.Duration
	}
	for _, p := range r.Phases {
		if sums[p.Name] != p.Duration {
			t.Errorf("phase %s: timeline sums to %v, Phases says %v", p.Name, sums[p.Name], p.Duration)
		}
	}
}

// The other probers record their protocol phases in the timeline too.
func TestTimelineOfOtherProbers(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dnsSrv := newDNSTestServer(t, "udp", nil, zoneHandler(t))
	for _, tc := range []struct {
		name   string
		m      config.Module
		target string
		want   []string
	}{
		{"tcp", tcpModule(), l.Addr().String(), []string{"connect"}},
		{"dns", dnsModule("A"), dnsSrv.addr, []string{"connect", "request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mod, err := Prepare("test", tc.m)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r := mod.Probe(ctx, tc.target, Params{Tracing: true})
			requireReason(t, r, result.ReasonNone)
			assertTimeline(t, r)
			var got []string
			for _, pt := range r.Timeline {
				got = append(got, pt.Name)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("timeline phases %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("timeline phases %v, want %v", got, tc.want)
				}
			}
		})
	}
}
