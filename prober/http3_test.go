package prober

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/quic-go/quic-go/http3"

	"github.com/vantageprobe/vantage/config"
)

// newHTTP3TestServer serves h over HTTP/3 on a UDP socket of 127.0.0.1 and
// returns its https URL.
func newHTTP3TestServer(tb testing.TB, cert httpTestCert, h http.Handler) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http3.Server{
		Handler:   h,
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert.cert}}),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(pc)
	}()
	tb.Cleanup(func() {
		_ = srv.Close()
		_ = pc.Close()
		<-done
	})
	return "https://" + pc.LocalAddr().String()
}

func http3TestModule(caFile string) config.Module {
	return httpTestModule(func(p *config.HTTPProbe) {
		p.EnableHTTP3 = true
		p.HTTPClientConfig.EnableHTTP2 = false
		p.ValidHTTPVersions = []string{"HTTP/3.0"}
		p.HTTPClientConfig.TLSConfig.CAFile = caFile
	})
}

func TestHTTP3(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	var mu sync.Mutex
	var proto, sni string
	target := newHTTP3TestServer(t, cert, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		proto, sni = r.Proto, r.TLS.ServerName
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		fmt.Fprint(w, "over quic")
	}))

	r := httpTestProbe(t, http3TestModule(cert.caFile), target, Params{Hostname: "web.vantage.test"}, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	got := seriesOfResult(r)
	if got["probe_http_version"] != 3 || got["probe_http_ssl"] != 1 || got["probe_http_uncompressed_body_length"] != 9 {
		t.Errorf("series: version %v ssl %v body %v", got["probe_http_version"], got["probe_http_ssl"], got["probe_http_uncompressed_body_length"])
	}
	for _, phase := range []string{"connect", "tls", "processing", "transfer"} {
		if r.PhaseDuration(phase) <= 0 {
			t.Errorf("phase %s = %v", phase, r.PhaseDuration(phase))
		}
	}
	if r.PhaseDuration("processing") < 5*time.Millisecond {
		t.Errorf("processing %v misses the server's delay", r.PhaseDuration("processing"))
	}
	if r.TLS == nil || r.TLS.Version != "TLS 1.3" {
		t.Errorf("TLS details %+v", r.TLS)
	}
	mu.Lock()
	if proto != "HTTP/3.0" || sni != "web.vantage.test" {
		t.Errorf("server saw %s with SNI %q", proto, sni)
	}
	mu.Unlock()

	t.Run("unknown authority", func(t *testing.T) {
		r := httpTestProbe(t, http3TestModule(""), target, Params{}, 5*time.Second)
		requireReason(t, r, result.ReasonTLSError)
	})
	t.Run("http and bare targets go over https", func(t *testing.T) {
		hostport := strings.TrimPrefix(target, "https://")
		for _, tgt := range []string{"http://" + hostport, hostport} {
			r := httpTestProbe(t, http3TestModule(cert.caFile), tgt, Params{Hostname: "web.vantage.test"}, 5*time.Second)
			requireReason(t, r, result.ReasonNone)
			if got := seriesOfResult(r); got["probe_http_version"] != 3 || got["probe_http_ssl"] != 1 {
				t.Errorf("%s: version %v ssl %v, want 3 over TLS", tgt, got["probe_http_version"], got["probe_http_ssl"])
			}
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		start := time.Now()
		r := httpTestProbe(t, http3TestModule(cert.caFile), "https://"+addr+"/", Params{}, 300*time.Millisecond)
		if r.Reason != result.ReasonConnectTimeout && r.Reason != result.ReasonConnectRefused {
			t.Errorf("reason %q (%s), want connect_timeout or connect_refused", r.Reason, r.Error)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("probe outlived its deadline: %v", time.Since(start))
		}
	})
	t.Run("no goroutine leak", func(t *testing.T) {
		m := http3TestModule(cert.caFile)
		httpTestProbe(t, m, target, Params{}, 5*time.Second)
		before := runtime.NumGoroutine()
		for range 5 {
			requireReason(t, httpTestProbe(t, m, target, Params{}, 5*time.Second), result.ReasonNone)
		}
		waitForGoroutinesAtMost(t, before)
	})
}
