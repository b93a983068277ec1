package prober

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/alecthomas/units"
	"github.com/andybalholm/brotli"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

func TestHTTPSuccessSeries(t *testing.T) {
	lastModified := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasPrefix(r.UserAgent(), "Vantage Exporter/") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Last-Modified", lastModified.Format(http.TimeFormat))
		fmt.Fprint(w, "hello")
	}))
	r := httpTestProbe(t, httpTestModule(nil), srv.URL, Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)

	got := seriesOfResult(r)
	want := map[string]float64{
		"probe_http_status_code":                     200,
		"probe_http_content_length":                  5,
		"probe_http_uncompressed_body_length":        5,
		"probe_http_redirects":                       0,
		"probe_http_ssl":                             0,
		"probe_http_version":                         1.1,
		"probe_failed_due_to_regex":                  0,
		"probe_http_last_modified_timestamp_seconds": float64(lastModified.Unix()),
		"probe_ip_protocol":                          4,
		"probe_success":                              1,
		"probe_timeout_seconds":                      5,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	wantNames := []string{
		"probe_dns_lookup_time_seconds{}",
		"probe_duration_seconds{}",
		"probe_failed_due_to_regex{}",
		"probe_http_content_length{}",
		"probe_http_duration_seconds{phase}",
		"probe_http_last_modified_timestamp_seconds{}",
		"probe_http_redirects{}",
		"probe_http_ssl{}",
		"probe_http_status_code{}",
		"probe_http_uncompressed_body_length{}",
		"probe_http_version{}",
		"probe_ip_addr_hash{}",
		"probe_ip_protocol{}",
		"probe_success{}",
		"probe_timeout_seconds{}",
	}
	if names := httpSeriesNames(r); !slices.Equal(names, wantNames) {
		t.Errorf("series:\n got %v\nwant %v", names, wantNames)
	}
	for _, phase := range httpPhases {
		if _, ok := got[fmt.Sprintf("probe_http_duration_seconds{phase=%q}", phase)]; !ok {
			t.Errorf("phase %s missing", phase)
		}
	}
}

func TestHTTPFailedProbeKeepsSeries(t *testing.T) {
	r := httpTestProbe(t, httpTestModule(func(p *config.HTTPProbe) {
		p.FailIfBodyJSONMatchesCEL = httpMustCEL(t, "body.x == 1")
	}), "http://%zz", Params{}, time.Second)
	requireReason(t, r, result.ReasonInvalidTarget)
	got := seriesOfResult(r)
	for _, name := range []string{
		"probe_http_status_code", "probe_http_content_length", "probe_http_uncompressed_body_length",
		"probe_http_redirects", "probe_http_ssl", "probe_http_version", "probe_failed_due_to_regex",
		"probe_failed_due_to_cel", `probe_failure_info{reason="invalid_target"}`,
		`probe_http_duration_seconds{phase="resolve"}`, `probe_http_duration_seconds{phase="transfer"}`,
	} {
		if _, ok := got[name]; !ok {
			t.Errorf("series %s missing from a failed probe", name)
		}
	}
	if _, ok := got["probe_http_last_modified_timestamp_seconds"]; ok {
		t.Error("probe_http_last_modified_timestamp_seconds without a Last-Modified header")
	}
}

func TestHTTPTLSPhasesAndDetails(t *testing.T) {
	useHTTPTestDNS(t, map[string]string{"web.vantage.test.": "127.0.0.1"})
	cert := newValidHTTPTestCert(t)
	srv := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		w.(http.Flusher).Flush()
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, strings.Repeat("x", 1000))
	}))
	m := httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile })
	r := httpTestProbe(t, m, "https://web.vantage.test:"+serverPort(t, srv)+"/", Params{}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	for _, phase := range httpPhases {
		if d := r.PhaseDuration(phase); d <= 0 {
			t.Errorf("phase %s = %v, want > 0", phase, d)
		}
	}
	if r.PhaseDuration("processing") < 5*time.Millisecond || r.PhaseDuration("transfer") < 5*time.Millisecond {
		t.Errorf("processing %v / transfer %v do not include the server's delays", r.PhaseDuration("processing"), r.PhaseDuration("transfer"))
	}
	if !r.HTTP.SSL || r.TLS == nil {
		t.Fatalf("ssl = %v, tls = %v", r.HTTP.SSL, r.TLS)
	}
	if !r.TLS.EarliestCertExpiry.Equal(cert.cert.Leaf.NotAfter) {
		t.Errorf("earliest expiry %v, want %v", r.TLS.EarliestCertExpiry, cert.cert.Leaf.NotAfter)
	}
	got := seriesOfResult(r)
	if got["probe_http_ssl"] != 1 || got["probe_ssl_earliest_cert_expiry"] != float64(cert.cert.Leaf.NotAfter.Unix()) {
		t.Errorf("TLS series: %v", got)
	}
	if r.Resolve == nil || r.Resolve.IP != "127.0.0.1" {
		t.Errorf("resolve = %+v", r.Resolve)
	}
}

func TestHTTP2OverTLS(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	srv := newHTTPTestTLSServer(t, cert, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	for _, tc := range []struct {
		http2 bool
		want  float64
	}{{true, 2}, {false, 1.1}} {
		m := httpTestModule(func(p *config.HTTPProbe) {
			p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
			p.HTTPClientConfig.EnableHTTP2 = tc.http2
		})
		r := httpTestProbe(t, m, srv.URL, Params{}, 5*time.Second)
		requireReason(t, r, result.ReasonNone)
		if got := seriesOfResult(r)["probe_http_version"]; got != tc.want {
			t.Errorf("enable_http2=%v: probe_http_version = %v, want %v", tc.http2, got, tc.want)
		}
	}
}

func TestHTTPFailureReasons(t *testing.T) {
	useHTTPTestDNS(t, map[string]string{"web.vantage.test.": "127.0.0.1"})
	cert := newValidHTTPTestCert(t)
	expired := newHTTPTestCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "127.0.0.1")
	tlsSrv := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	expiredSrv := newHTTPTestTLSServer(t, expired, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	plain := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/404":
			w.WriteHeader(http.StatusNotFound)
		case "/json":
			fmt.Fprint(w, `{"status":"degraded","checks":[1,2]}`)
		case "/headers":
			w.Header().Add("X-Version", "1.0")
			w.Header().Add("X-Version", "2.0")
		case "/garbage":
			conn, _, _ := w.(http.Hijacker).Hijack()
			fmt.Fprint(conn, "SMTP ready\r\n\r\n")
			conn.Close()
		default:
			fmt.Fprint(w, "service is up")
		}
	}))
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name   string
		target string
		edit   func(*config.HTTPProbe)
		want   result.Reason
	}{
		{"invalid target", "http://%zz", nil, result.ReasonInvalidTarget},
		{"no scheme gets http", strings.TrimPrefix(plain.URL, "http://"), nil, result.ReasonNone},
		{"dns error", "http://nx.vantage.test/", nil, result.ReasonDNSError},
		{"connect refused", closedURL, nil, result.ReasonConnectRefused},
		{"tls unknown authority", tlsSrv.URL, nil, result.ReasonTLSError},
		{"tls expired", expiredSrv.URL, func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = expired.caFile }, result.ReasonTLSError},
		{"tls to plain server", strings.Replace(plain.URL, "http:", "https:", 1), nil, result.ReasonTLSError},
		{"status code", plain.URL + "/404", nil, result.ReasonStatusCode},
		{"valid status code", plain.URL + "/404", func(p *config.HTTPProbe) { p.ValidStatusCodes = []int{404} }, result.ReasonNone},
		{"http version", plain.URL, func(p *config.HTTPProbe) { p.ValidHTTPVersions = []string{"HTTP/2.0"} }, result.ReasonHTTPVersion},
		{"valid http version", plain.URL, func(p *config.HTTPProbe) { p.ValidHTTPVersions = []string{"HTTP/1.1"} }, result.ReasonNone},
		{"fail if ssl", tlsSrv.URL, func(p *config.HTTPProbe) {
			p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
			p.FailIfSSL = true
		}, result.ReasonSSLPolicy},
		{"fail if not ssl", plain.URL, func(p *config.HTTPProbe) { p.FailIfNotSSL = true }, result.ReasonSSLPolicy},
		{"fail if not ssl over tls", tlsSrv.URL, func(p *config.HTTPProbe) {
			p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
			p.FailIfNotSSL = true
		}, result.ReasonNone},
		{"body matches", plain.URL, func(p *config.HTTPProbe) {
			p.FailIfBodyMatchesRegexp = []config.Regexp{mustRegexp(t, "is up")}
		}, result.ReasonBodyMismatch},
		{"body not matches", plain.URL, func(p *config.HTTPProbe) {
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "is down")}
		}, result.ReasonBodyMismatch},
		{"body regexps pass", plain.URL, func(p *config.HTTPProbe) {
			p.FailIfBodyMatchesRegexp = []config.Regexp{mustRegexp(t, "is down")}
			p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "^service")}
		}, result.ReasonNone},
		{"body too large", plain.URL, func(p *config.HTTPProbe) { p.BodySizeLimit = 4 }, result.ReasonBodyTooLarge},
		{"body within limit", plain.URL, func(p *config.HTTPProbe) { p.BodySizeLimit = units.KiB }, result.ReasonNone},
		{"protocol error", plain.URL + "/garbage", nil, result.ReasonProtocolError},
		{"gzip expected, plain sent", plain.URL, func(p *config.HTTPProbe) { p.Compression = "gzip" }, result.ReasonProtocolError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httpTestProbe(t, httpTestModule(tc.edit), tc.target, Params{}, 5*time.Second)
			requireReason(t, r, tc.want)
		})
	}
}

func TestHTTPBodyAndHeaderChecksSetRegexSeries(t *testing.T) {
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Version", "1.0")
		w.Header().Add("X-Version", "2.0")
		fmt.Fprint(w, "ok")
	}))
	hm := func(header, re string, allowMissing bool) []config.HeaderMatch {
		return []config.HeaderMatch{{Header: header, Regexp: mustRegexp(t, re), AllowMissing: allowMissing}}
	}
	tests := []struct {
		name string
		edit func(*config.HTTPProbe)
		want result.Reason
	}{
		{"matches any value fails", func(p *config.HTTPProbe) { p.FailIfHeaderMatchesRegexp = hm("X-Version", `^2\.`, false) }, result.ReasonHeaderMismatch},
		{"matches no value passes", func(p *config.HTTPProbe) { p.FailIfHeaderMatchesRegexp = hm("x-version", `^3\.`, false) }, result.ReasonNone},
		{"not matches: one value matching passes", func(p *config.HTTPProbe) { p.FailIfHeaderNotMatchesRegexp = hm("X-Version", `^1\.`, false) }, result.ReasonNone},
		{"not matches: no value matching fails", func(p *config.HTTPProbe) { p.FailIfHeaderNotMatchesRegexp = hm("X-Version", `^3\.`, false) }, result.ReasonHeaderMismatch},
		{"missing header fails", func(p *config.HTTPProbe) { p.FailIfHeaderMatchesRegexp = hm("X-Missing", `.`, false) }, result.ReasonHeaderMismatch},
		{"missing header allowed", func(p *config.HTTPProbe) { p.FailIfHeaderMatchesRegexp = hm("X-Missing", `.`, true) }, result.ReasonNone},
		{"missing header allowed (not matches)", func(p *config.HTTPProbe) { p.FailIfHeaderNotMatchesRegexp = hm("X-Missing", `.`, true) }, result.ReasonNone},
		{"missing header fails (not matches)", func(p *config.HTTPProbe) { p.FailIfHeaderNotMatchesRegexp = hm("X-Missing", `.`, false) }, result.ReasonHeaderMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httpTestProbe(t, httpTestModule(tc.edit), srv.URL, Params{}, 5*time.Second)
			requireReason(t, r, tc.want)
			want := 0.0
			if tc.want != result.ReasonNone {
				want = 1
			}
			if got := seriesOfResult(r)["probe_failed_due_to_regex"]; got != want {
				t.Errorf("probe_failed_due_to_regex = %v, want %v", got, want)
			}
		})
	}
}

func httpMustCEL(tb testing.TB, expr string) *config.CELProgram {
	tb.Helper()
	p, err := config.NewCELProgram(expr)
	if err != nil {
		tb.Fatal(err)
	}
	return &p
}

func TestHTTPCEL(t *testing.T) {
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/text" {
			fmt.Fprint(w, "not json")
			return
		}
		fmt.Fprint(w, `{"status":"ok","checks":[{"name":"db","up":true}]}`)
	}))
	tests := []struct {
		name, path string
		edit       func(*config.HTTPProbe)
		want       result.Reason
	}{
		{"not matches passes", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONNotMatchesCEL = httpMustCEL(t, `body.status == "ok" && body.checks[0].up`)
		}, result.ReasonNone},
		{"not matches fails", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONNotMatchesCEL = httpMustCEL(t, `body.status == "down"`)
		}, result.ReasonCELMismatch},
		{"matches fails", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONMatchesCEL = httpMustCEL(t, `body.checks.exists(c, c.name == "db")`)
		}, result.ReasonCELMismatch},
		{"matches passes", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONMatchesCEL = httpMustCEL(t, `body.status == "down"`)
		}, result.ReasonNone},
		{"non-boolean result fails", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONMatchesCEL = httpMustCEL(t, `body.status`)
		}, result.ReasonCELMismatch},
		{"non-JSON body fails", "/text", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONMatchesCEL = httpMustCEL(t, `body.status == "down"`)
		}, result.ReasonCELMismatch},
		{"uncompiled program is compiled at prepare", "/", func(p *config.HTTPProbe) {
			p.FailIfBodyJSONNotMatchesCEL = new(config.CELProgram)
			*p.FailIfBodyJSONNotMatchesCEL = *httpMustCEL(t, `body.status == "ok"`)
		}, result.ReasonNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httpTestProbe(t, httpTestModule(tc.edit), srv.URL+tc.path, Params{}, 5*time.Second)
			requireReason(t, r, tc.want)
			got := seriesOfResult(r)
			want := 0.0
			if tc.want != result.ReasonNone {
				want = 1
			}
			if v, ok := got["probe_failed_due_to_cel"]; !ok || v != want {
				t.Errorf("probe_failed_due_to_cel = %v (present %v), want %v", v, ok, want)
			}
			if got["probe_failed_due_to_regex"] != 0 {
				t.Error("probe_failed_due_to_regex set by a CEL check")
			}
		})
	}
}

func TestHTTPCompression(t *testing.T) {
	plainBody := strings.Repeat("compressible vantage body ", 100)
	encode := map[string]func(io.Writer) io.WriteCloser{
		"gzip":    func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
		"br":      func(w io.Writer) io.WriteCloser { return brotli.NewWriter(w) },
		"deflate": func(w io.Writer) io.WriteCloser { fw, _ := flate.NewWriter(w, flate.DefaultCompression); return fw },
	}
	var mu sync.Mutex
	var gotAccept string
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotAccept = r.Header.Get("Accept-Encoding")
		mu.Unlock()
		enc := strings.TrimPrefix(r.URL.Path, "/")
		if enc == "empty" {
			return
		}
		var b bytes.Buffer
		cw := encode[enc](&b)
		io.WriteString(cw, plainBody)
		cw.Close()
		w.Header().Set("Content-Encoding", enc)
		w.Write(b.Bytes())
	}))
	for enc := range encode {
		t.Run(enc, func(t *testing.T) {
			m := httpTestModule(func(p *config.HTTPProbe) {
				p.Compression = enc
				p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(t, "^compressible vantage body")}
			})
			r := httpTestProbe(t, m, srv.URL+"/"+enc, Params{}, 5*time.Second)
			requireReason(t, r, result.ReasonNone)
			if r.HTTP.UncompressedBodyLength != int64(len(plainBody)) {
				t.Errorf("uncompressed length %d, want %d", r.HTTP.UncompressedBodyLength, len(plainBody))
			}
			if r.HTTP.ContentLength >= int64(len(plainBody)) {
				t.Errorf("content length %d is not the compressed length", r.HTTP.ContentLength)
			}
			mu.Lock()
			defer mu.Unlock()
			if gotAccept != enc {
				t.Errorf("Accept-Encoding = %q, want %q", gotAccept, enc)
			}
		})
	}
	t.Run("limit applies after decompression", func(t *testing.T) {
		m := httpTestModule(func(p *config.HTTPProbe) {
			p.Compression = "gzip"
			p.BodySizeLimit = units.Base2Bytes(len(plainBody) - 1)
		})
		requireReason(t, httpTestProbe(t, m, srv.URL+"/gzip", Params{}, 5*time.Second), result.ReasonBodyTooLarge)
	})
	t.Run("configured header wins", func(t *testing.T) {
		m := httpTestModule(func(p *config.HTTPProbe) {
			p.Compression = "gzip"
			p.Headers = map[string]string{"accept-encoding": "gzip, br"}
		})
		requireReason(t, httpTestProbe(t, m, srv.URL+"/gzip", Params{}, 5*time.Second), result.ReasonNone)
		mu.Lock()
		defer mu.Unlock()
		if gotAccept != "gzip, br" {
			t.Errorf("Accept-Encoding = %q", gotAccept)
		}
	})
	t.Run("empty body", func(t *testing.T) {
		m := httpTestModule(func(p *config.HTTPProbe) { p.Compression = "br" })
		requireReason(t, httpTestProbe(t, m, srv.URL+"/empty", Params{}, 5*time.Second), result.ReasonNone)
	})
}

func TestHTTPFreshConnectionPerProbe(t *testing.T) {
	var conns connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = conns.hook
	srv.Start()
	t.Cleanup(srv.Close)
	mod, err := Prepare("fresh", httpTestModule(nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r := mod.Probe(ctx, srv.URL, Params{})
		cancel()
		requireReason(t, r, result.ReasonNone)
		if r.PhaseDuration("connect") <= 0 {
			t.Errorf("probe %d: connect phase %v; a reused connection?", i, r.PhaseDuration("connect"))
		}
	}
	if n := conns.count(); n != 3 {
		t.Errorf("3 probes opened %d connections", n)
	}
}

func TestHTTPDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	const deadline = 300 * time.Millisecond
	start := time.Now()
	r := httpTestProbe(t, httpTestModule(nil), srv.URL, Params{}, deadline)
	elapsed := time.Since(start)
	requireReason(t, r, result.ReasonTimeout)
	if elapsed < deadline || elapsed > deadline+time.Second {
		t.Errorf("probe took %v with a %v deadline", elapsed, deadline)
	}
	if r.PhaseDuration("connect") <= 0 {
		t.Error("connect phase not recorded before the timeout")
	}
	if p := r.PhaseDuration("processing"); p < deadline/2 {
		t.Errorf("processing %v; the probe waited for the first byte until its deadline", p)
	}
	if r.PhaseDuration("transfer") != 0 {
		t.Errorf("transfer %v without a response", r.PhaseDuration("transfer"))
	}
}

func TestHTTPNoGoroutineLeak(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	release := make(chan struct{})
	tlsSrv := newHTTPTestTLSServer(t, cert, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	slow := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	// A peer that accepts TCP but never answers the TLS ClientHello.
	stall, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stall.Close() })
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	mTLS := httpTestModule(func(p *config.HTTPProbe) { p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile })
	// Warm up lazily started runtime goroutines before counting.
	httpTestProbe(t, mTLS, tlsSrv.URL, Params{}, 5*time.Second)
	before := runtime.NumGoroutine()
	for range 5 {
		requireReason(t, httpTestProbe(t, mTLS, tlsSrv.URL, Params{}, 5*time.Second), result.ReasonNone)
		requireReason(t, httpTestProbe(t, httpTestModule(nil), slow.URL, Params{}, 50*time.Millisecond), result.ReasonTimeout)
		requireReason(t, httpTestProbe(t, httpTestModule(nil), tlsSrv.URL, Params{}, 5*time.Second), result.ReasonTLSError)
		r := httpTestProbe(t, mTLS, "https://"+stall.Addr().String(), Params{}, 200*time.Millisecond)
		requireReason(t, r, result.ReasonTimeout)
		if r.PhaseDuration("tls") < 100*time.Millisecond {
			t.Errorf("tls phase %v; the probe waited in the handshake until its deadline", r.PhaseDuration("tls"))
		}
	}
	waitForGoroutinesAtMost(t, before)
}

func BenchmarkHTTPProbe(b *testing.B) {
	srv := newHTTPTestServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	mod, err := Prepare("bench", httpTestModule(func(p *config.HTTPProbe) {
		p.FailIfBodyNotMatchesRegexp = []config.Regexp{mustRegexp(b, "ok")}
	}))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := mod.Probe(ctx, srv.URL, Params{}); !r.Success {
			b.Fatal(r.Error)
		}
	}
}

func TestHTTPConcurrentProbesShareModule(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	srv, conns := newCountingTLSServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Each probe's SNI must be its own Host, whatever runs beside it.
		if r.TLS.ServerName != r.Host {
			w.WriteHeader(http.StatusMisdirectedRequest)
		}
	}))
	mod, err := Prepare("shared", httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
		p.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "u", Password: "p"}
	}))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 5 {
				host := fmt.Sprintf("vhost%d-%d.shared.vantage.test", i, j)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				r := mod.Probe(ctx, srv.URL, Params{Hostname: host, Logger: nil})
				cancel()
				if !r.Success || r.HTTP.Version != 2 {
					t.Errorf("probe %s: %s %s (version %v)", host, r.Reason, r.Error, r.HTTP.Version)
				}
			}
		})
	}
	wg.Wait()
	if n := conns.count(); n != 40 {
		t.Errorf("40 probes opened %d connections", n)
	}
}

func TestHTTPModuleFromYAML(t *testing.T) {
	var mu sync.Mutex
	var auth, method, accept string
	srv := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, method, accept = r.Header.Get("Authorization"), r.Method, r.Header.Get("Accept-Encoding")
		mu.Unlock()
		w.Header().Set("X-Ready", "yes")
		fmt.Fprint(w, `{"ready":true}`)
	}))
	cfg, err := config.Parse([]byte(`
modules:
  api:
    prober: http
    timeout: 2s
    http:
      method: HEAD
      preferred_ip_protocol: ip4
      bearer_token: from-yaml
      compression: identity
      valid_status_codes: [200]
      fail_if_header_not_matches:
        - header: X-Ready
          regexp: '^yes$'
  api_body:
    prober: http
    http:
      no_follow_redirects: true
      fail_if_body_not_matches_regexp: ['"ready":true']
      fail_if_body_json_not_matches_cel: 'body.ready == true'
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	mods, err := PrepareAll(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := mods["api"].Probe(context.Background(), srv.URL, Params{})
	requireReason(t, r, result.ReasonNone)
	mu.Lock()
	if auth != "Bearer from-yaml" || method != http.MethodHead || accept != "identity" {
		t.Errorf("server saw Authorization %q, method %s, Accept-Encoding %q", auth, method, accept)
	}
	mu.Unlock()
	r = mods["api_body"].Probe(context.Background(), srv.URL, Params{})
	requireReason(t, r, result.ReasonNone)
	if _, ok := seriesOfResult(r)["probe_failed_due_to_cel"]; !ok {
		t.Error("probe_failed_due_to_cel missing with a CEL check configured")
	}
}
