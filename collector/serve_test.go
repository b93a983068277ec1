package collector

import (
	"net/http/httptest"
	"testing"
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
