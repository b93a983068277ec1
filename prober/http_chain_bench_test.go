package prober

import (
	"context"
	"fmt"
	"net/http"
	"syscall"
	"testing"
	"time"

	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
)

// benchmarkProbe probes target with m until the benchmark ends; every
// probe must succeed. Besides the wall time it reports cpu-ns/op, the
// process's CPU time (user and system) per probe: the test server's share
// is in it too, the same on every code path.
func benchmarkProbe(b *testing.B, m config.Module, target string) {
	b.Helper()
	mod, err := Prepare("bench", m)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	start := processCPU(b)
	for b.Loop() {
		if r := mod.Probe(ctx, target, Params{}); !r.Success {
			b.Fatal(r.Error)
		}
	}
	b.ReportMetric(float64(processCPU(b)-start)/float64(b.N), "cpu-ns/op")
}

// processCPU returns the CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// An https module (tls_config.ca_file; HTTP/2 offered and taken): a fresh
// connection and a full handshake per probe.
func BenchmarkHTTPProbeHTTPS(b *testing.B) {
	cert := newValidHTTPTestCert(b)
	srv := newHTTPTestTLSServer(b, cert, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	benchmarkProbe(b, httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.TLSConfig.CAFile = cert.caFile
	}), srv.URL)
}

// A plain-HTTP module with basic auth and a header from http_headers.
func BenchmarkHTTPProbeAuth(b *testing.B) {
	srv := newHTTPTestServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	benchmarkProbe(b, httpTestModule(func(p *config.HTTPProbe) {
		p.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "user", Password: "pass"}
		p.HTTPClientConfig.HTTPHeaders = &promconfig.Headers{Headers: map[string]promconfig.Header{
			"X-Probe": {Values: []string{"vantage"}},
		}}
	}), srv.URL)
}
