package exporter

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestSecretsStayHidden uses a module's password and bearer token for
// real (the target checks them), with debug logging and tracing on, and
// looks for the secrets everywhere the exporter shows something: its
// logs, /config, /probe?debug=true, the landing page and probe history,
// and the exported spans.
func TestSecretsStayHidden(t *testing.T) {
	const password, token = "hunter2-pw-secret", "tok-0123-secret"
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pw, ok := r.BasicAuth(); r.URL.Path == "/basic" && (!ok || user != "probe" || pw != password) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/bearer" && r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusTeapot) // a failure, so the check is traced and logged
	}))
	defer target.Close()
	var logs testbin.Output
	spans := tracetest.NewInMemoryExporter()
	ts := mustStart(t, fmt.Sprintf(`modules:
  with_password:
    prober: http
    timeout: 1s
    http:
      basic_auth: {username: probe, password: %s}
  with_token:
    prober: http
    timeout: 1s
    http:
      authorization: {credentials: %s}
targets:
  - module: with_password
    interval: 1s
    targets: [%[3]s/basic]
  - module: with_token
    interval: 1s
    targets: [%[3]s/bearer]
`, password, token, target.URL), func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Tracing.SpanExporter = spans
		o.Tracing.BatchTimeout = 100 * time.Millisecond
	})

	var shown []string
	for _, path := range []string{
		"/config",
		"/probe?debug=true&module=with_password&target=" + target.URL + "/basic",
		"/probe?debug=true&module=with_token&target=" + target.URL + "/bearer",
		"/",
		"/history/0", "/history/1",
	} {
		code, body := mustGet(t, ts.url+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		shown = append(shown, path+":\n"+body)
	}
	// The secrets were really used: the target answered 418, not 401.
	if !strings.Contains(shown[1], "probe_http_status_code 418") || !strings.Contains(shown[2], "probe_http_status_code 418") {
		t.Fatalf("the probes did not authenticate:\n%s\n%s", shown[1], shown[2])
	}
	if !strings.Contains(shown[0], "<secret>") {
		t.Errorf("/config shows no hidden secret:\n%s", shown[0])
	}
	// Scheduled checks fail every second; their traces are exported.
	var got tracetest.SpanStubs
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = spans.GetSpans()
		scheduled := 0
		for _, s := range got {
			if strings.HasPrefix(s.Name, "check ") && !s.Parent.SpanID().IsValid() {
				scheduled++
			}
		}
		if scheduled >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d check spans exported within 10s", scheduled)
		}
	}
	for _, s := range got {
		shown = append(shown, fmt.Sprintf("span %s: %v %v %v", s.Name, s.Attributes, s.Events, s.Status))
	}
	shown = append(shown, "logs:\n"+logs.String())
	for _, text := range shown {
		for _, secret := range []string{password, token} {
			if strings.Contains(text, secret) {
				t.Errorf("a secret shows in %s", text)
			}
		}
	}
}

func TestPprofOnlyWithTheFlag(t *testing.T) {
	off := mustStart(t, httpConfig)
	if code, _ := mustGet(t, off.url+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --web.enable-pprof: %d, want 404", code)
	}
	on := mustStart(t, httpConfig, func(o *Options) { o.EnablePprof = true })
	if code, body := mustGet(t, on.url+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with --web.enable-pprof: %d", code)
	}
}

func TestProbeStepsLogAtProberLevel(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	for _, tc := range []struct {
		logLevel    slog.Level
		proberLevel string
		want        string // "" for none of the probe's steps
	}{
		{slog.LevelInfo, "info", `level=INFO msg="Making HTTP request"`},
		{slog.LevelInfo, "debug", ""},
		{slog.LevelDebug, "debug", `level=DEBUG msg="Beginning probe"`},
		{slog.LevelDebug, "none", ""},
	} {
		var logs testbin.Output
		ts := mustStart(t, httpConfig, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tc.logLevel}))
			o.ProbeLogLevel = tc.proberLevel
		})
		if code, body := mustGet(t, ts.url+"/probe?module=http_2xx&target="+target.URL); code != http.StatusOK || !strings.Contains(body, "probe_success 1") {
			t.Fatalf("probe: %d %s", code, body)
		}
		got := logs.String()
		switch {
		case tc.want == "" && strings.Contains(got, "Beginning probe"):
			t.Errorf("--log.level=%s --log.prober=%s: the log has the probe's steps:\n%s", tc.logLevel, tc.proberLevel, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("--log.level=%s --log.prober=%s: the log lacks %s:\n%s", tc.logLevel, tc.proberLevel, tc.want, got)
		}
	}
}
