package exporter

import (
	"testing"

	"github.com/vantageprobe/vantage/prober/result"
)

// Phase spans carry the semantic conventions' attributes: the name a
// resolve phase looks up, the TLS version a tls phase negotiated.
func TestPhaseAttributes(t *testing.T) {
	withTLS := &result.Result{TLS: &result.TLSDetails{Version: "TLS 1.3"}}
	for _, tc := range []struct {
		phase, target string
		r             *result.Result
		want          map[string]string
	}{
		{"resolve", "https://shop.example:8443/health", &result.Result{}, map[string]string{"dns.question.name": "shop.example"}},
		{"resolve", "db.example:5432", &result.Result{}, map[string]string{"dns.question.name": "db.example"}},
		{"resolve", "gateway.example", &result.Result{}, map[string]string{"dns.question.name": "gateway.example"}},
		{"resolve", "http://127.0.0.1:8080/", &result.Result{}, map[string]string{}}, // nothing looked up
		{"tls", "https://shop.example/", withTLS, map[string]string{"tls.protocol.name": "tls", "tls.protocol.version": "1.3"}},
		{"tls", "https://shop.example/", &result.Result{}, map[string]string{}}, // handshake failed
		{"connect", "https://shop.example/", withTLS, map[string]string{}},
	} {
		got := attrs(phaseAttributes(tc.phase, tc.target, tc.r))
		if len(got) != len(tc.want) {
			t.Errorf("%s of %s: %v, want %v", tc.phase, tc.target, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s of %s: %s = %q, want %q", tc.phase, tc.target, k, got[k], v)
			}
		}
	}
}
