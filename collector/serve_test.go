package collector

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Accept-Encoding decides whether /metrics is gzipped: gzip with a
// non-zero quality, in any case and position.
func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                       false,
		"gzip":                   true,
		"GZIP":                   true,
		"identity, gzip;q=0.5":   true,
		"gzip;q=0":               false,
		"gzip; q=0.0, identity":  false,
		"deflate, br":            false,
		"x-gzip":                 false,
		"br;q=1.0, gzip ; q=0.1": true,
	} {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if header != "" {
			r.Header.Set("Accept-Encoding", header)
		}
		if got := acceptsGzip(r); got != want {
			t.Errorf("Accept-Encoding %q: gzip %t, want %t", header, got, want)
		}
	}
}

// discardResponse is a ResponseWriter that counts and drops the body.
type discardResponse struct {
	header http.Header
	n      int64
}

func (d *discardResponse) Header() http.Header { return d.header }
func (d *discardResponse) WriteHeader(int)     {}
func (d *discardResponse) Write(p []byte) (int, error) {
	d.n += int64(len(p))
	return len(p), nil
}

// BenchmarkServeMetrics100k measures answering a scrape of 100,000
// targets as the exporter does, plain and gzip, into a response that
// drops the bytes (the socket's cost is not in it).
func BenchmarkServeMetrics100k(b *testing.B) {
	tab := tableOf(b, 100_000)
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	for _, enc := range []string{"plain", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/metrics", nil)
			if enc == "gzip" {
				r.Header.Set("Accept-Encoding", "gzip")
			}
			b.ReportAllocs()
			var n int64
			cpu := cpuTime(b)
			for b.Loop() {
				w := &discardResponse{header: http.Header{}}
				ServeMetrics(w, r, reg, tab, expfmt.NewFormat(expfmt.TypeTextPlain), logger)
				n = w.n
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(n)/(1<<20), "MiB/scrape")
		})
	}
}
