package exporter

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// FuzzProbeParams sends arbitrary /probe parameters and scrape timeout
// headers through the whole handler: never a panic; the answer is a 400
// with a message, or a 200 whose body is valid exposition with
// probe_success. The one module sends its requests to a proxy on a closed
// loopback port and skips resolving the target, so no fuzzed target
// reaches the network or a DNS server.
func FuzzProbeParams(f *testing.F) {
	for _, seed := range [][4]string{
		{"http://a.example/", "fuzz_http", "", "10"},
		{"https://a.example:8443/x?y=z", "fuzz_http", "b.example", "0.5"},
		{"", "fuzz_http", "", ""},
		{"http://a.example/", "nope", "", ""},
		{"http://a.example/", "fuzz_http", "", "-1"},
		{"http://a.example/", "fuzz_http", "", "NaN"},
		{"ftp://a.example/", "fuzz_http", "", "1e308"},
		{"http://[::1", "fuzz_http", "h\nx", "3"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "vantage.yml")
	mustWriteFile(f, path, fmt.Sprintf("modules:\n  fuzz_http:\n    prober: http\n    timeout: 1s\n    http:\n      proxy_url: http://%s\n      skip_resolve_phase_with_proxy: true\n", testbin.FreeAddr(f)))
	opts := DefaultOptions()
	opts.ConfigFile = path
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	e, err := New(opts)
	if err != nil {
		f.Fatal(err)
	}
	h := e.Handler()
	f.Fuzz(func(t *testing.T, target, module, hostname, timeout string) {
		q := url.Values{"target": {target}, "module": {module}, "hostname": {hostname}}
		r := httptest.NewRequest(http.MethodGet, "/probe?"+q.Encode(), nil)
		if timeout != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		switch rec.Code {
		case http.StatusBadRequest:
			if strings.TrimSpace(rec.Body.String()) == "" {
				t.Fatal("400 without a message")
			}
		case http.StatusOK:
			parser := expfmt.NewTextParser(model.UTF8Validation)
			fams, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
			if err != nil {
				t.Fatalf("invalid exposition: %v\n%s", err, rec.Body)
			}
			if _, ok := fams["probe_success"]; !ok {
				t.Fatalf("no probe_success in\n%s", rec.Body)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	})
}
