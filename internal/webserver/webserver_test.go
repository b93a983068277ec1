package webserver

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vantageprobe/vantage/internal/testbin"
)

func TestRecoverAnswers500AndCounts(t *testing.T) {
	var logs bytes.Buffer
	panics := prometheus.NewCounter(prometheus.CounterOpts{Name: "panics_total", Help: "h"})
	h := Recover(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/boom" {
			panic("boom")
		}
		w.WriteHeader(http.StatusNoContent)
	}), slog.New(slog.NewTextHandler(&logs, nil)), panics)

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "request handler failed") {
		t.Errorf("panicking handler answered %d %q", rec.Code, rec.Body.String())
	}
	if v := testutil.ToFloat64(panics); v != 1 {
		t.Errorf("panics counted = %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "panic=boom") || !strings.Contains(logs.String(), "path=/boom") {
		t.Errorf("log %q lacks the panic and path", logs.String())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/fine", nil))
	if rec.Code != http.StatusNoContent || testutil.ToFloat64(panics) != 1 {
		t.Errorf("a normal request: %d, panics %v", rec.Code, testutil.ToFloat64(panics))
	}
}

func TestServeStopsDespiteASilentConnection(t *testing.T) {
	srv := testbin.Serve(t, "webserver", func(ctx context.Context, started func([]net.Addr)) error {
		return Serve(ctx, http.NotFoundHandler(), Config{FlagConfig: web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}}, ShutdownGrace: 200 * time.Millisecond,
			Started: started}, slog.New(slog.DiscardHandler))
	})
	// A connection that never sends a request keeps a plain Shutdown
	// waiting for 5s.
	conn, err := net.Dial("tcp", srv.Addrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond)
	stopping := time.Now()
	err = srv.Stop() // cancels Serve's context and waits, at most testbin.StopGrace
	if took := time.Since(stopping); took > 3*time.Second {
		t.Fatalf("Serve did not return within 3s of its context ending (%s: %v)", took.Round(time.Millisecond), err)
	}
	if err != nil {
		t.Errorf("Serve returned %v, want nil after closing the silent connection", err)
	}
}

func TestValidateFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "web.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("http_server_config:\n  http2: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("colour: blue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.yml")
	for _, tc := range []struct {
		name  string
		flags web.FlagConfig
		err   string // prefix of the error; "" for none
	}{
		{"an address", web.FlagConfig{WebListenAddresses: &[]string{":9715"}, WebSystemdSocket: new(false), WebConfigFile: new("")}, ""},
		{"no address", web.FlagConfig{WebListenAddresses: &[]string{}, WebSystemdSocket: new(false), WebConfigFile: new("")}, "at least one --web.listen-address is needed"},
		{"unset", web.FlagConfig{}, "at least one --web.listen-address is needed"},
		{"systemd sockets need no address", web.FlagConfig{WebListenAddresses: &[]string{}, WebSystemdSocket: new(true)}, ""},
		{"a web configuration that loads", web.FlagConfig{WebListenAddresses: &[]string{":9715"}, WebConfigFile: &good}, ""},
		{"an unknown key", web.FlagConfig{WebListenAddresses: &[]string{":9715"}, WebConfigFile: &bad}, "--web.config.file " + bad + ": "},
		{"a missing file", web.FlagConfig{WebListenAddresses: &[]string{":9715"}, WebConfigFile: &missing}, "--web.config.file " + missing + ": "},
	} {
		err := ValidateFlags(tc.flags)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v, want no error", tc.name, err)
		case tc.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one starting %q", tc.name, err, tc.err)
		}
	}
}

func TestHealthyNamesWhatIsWrong(t *testing.T) {
	var problems []string
	mux := http.NewServeMux()
	HandleOperational(mux, nil, func() []string { return problems })
	get := func() (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/healthy", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get(); code != http.StatusOK || body != "Healthy\n" {
		t.Errorf("nothing wrong: %d %q", code, body)
	}
	problems = []string{"store_commit: no progress for 12s", "verification_round: no progress for 41s"}
	if code, body := get(); code != http.StatusServiceUnavailable || body != "Unhealthy: stalled clocks\nstore_commit: no progress for 12s\nverification_round: no progress for 41s\n" {
		t.Errorf("two clocks stalled: %d %q", code, body)
	}
	problems = nil
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("recovered: %d, want 200", code)
	}
	// Without a health check, the process answering is healthy.
	bare := http.NewServeMux()
	HandleOperational(bare, nil, nil)
	rec := httptest.NewRecorder()
	bare.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/healthy", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("no health check: %d", rec.Code)
	}
}
