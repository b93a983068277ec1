package exporter

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// testServer is a running exporter on a loopback port.
type testServer struct {
	url        string
	configPath string
	reload     chan struct{}
}

func mustWriteFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// mustStart runs an exporter with the given configuration until the test ends.
func mustStart(tb testing.TB, configYAML string, tweak ...func(*Options)) *testServer {
	tb.Helper()
	dir := tb.TempDir()
	ts := &testServer{configPath: filepath.Join(dir, "vantage.yml"), reload: make(chan struct{})}
	mustWriteFile(tb, ts.configPath, configYAML)
	opts := DefaultOptions()
	opts.ConfigFile = ts.configPath
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	opts.Reload = ts.reload
	for _, f := range tweak {
		f(&opts)
	}
	ts.url = testbin.Serve(tb, "exporter", func(ctx context.Context, started func([]net.Addr)) error {
		opts.Started = started
		return Run(ctx, opts)
	}).URL
	return ts
}

func mustGet(tb testing.TB, url string, header ...string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return mustDo(tb, req)
}

func mustDo(tb testing.TB, req *http.Request) (int, string) {
	tb.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// mustParse parses a text exposition into families by name.
func mustParse(tb testing.TB, text string) map[string]*familyView {
	tb.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		tb.Fatalf("parsing exposition: %v\n%s", err, text)
	}
	out := map[string]*familyView{}
	for name, mf := range mfs {
		fv := &familyView{}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			if m.GetUntyped() != nil {
				v = m.GetUntyped().GetValue()
			}
			fv.samples = append(fv.samples, sampleView{labels: labels, value: v})
		}
		out[name] = fv
	}
	return out
}

type sampleView struct {
	labels map[string]string
	value  float64
}

type familyView struct{ samples []sampleView }

// value returns the value of the sample whose labels include want.
func (f *familyView) value(tb testing.TB, want ...string) float64 {
	tb.Helper()
	for _, s := range f.samples {
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			if s.labels[want[i]] != want[i+1] {
				ok = false
			}
		}
		if ok {
			return s.value
		}
	}
	tb.Fatalf("no sample with labels %v", want)
	return 0
}

func mustFamily(tb testing.TB, fams map[string]*familyView, name string) *familyView {
	tb.Helper()
	f, ok := fams[name]
	if !ok {
		tb.Fatalf("series %s missing", name)
	}
	return f
}

const httpConfig = `
modules:
  http_2xx:
    prober: http
    timeout: 5s
  http_slow:
    prober: http
  http_secret:
    prober: http
    http:
      basic_auth:
        username: probe
        password: hunter2-secret
`

func TestProbeHTTP(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer target.Close()
	ts := mustStart(t, httpConfig)

	code, body := mustGet(t, ts.url+"/probe?module=http_2xx&target="+target.URL)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	fams := mustParse(t, body)
	if v := mustFamily(t, fams, "probe_success").value(t); v != 1 {
		t.Errorf("probe_success = %v, want 1\n%s", v, body)
	}
	if v := mustFamily(t, fams, "probe_http_status_code").value(t); v != 200 {
		t.Errorf("probe_http_status_code = %v, want 200", v)
	}
	for _, phase := range []string{"resolve", "connect", "tls", "processing", "transfer"} {
		mustFamily(t, fams, "probe_http_duration_seconds").value(t, "phase", phase)
	}
	if _, ok := fams["probe_failure_info"]; ok {
		t.Errorf("probe_failure_info present on success")
	}

	// The probe shows up on the landing page and in the exporter's counters.
	_, landing := mustGet(t, ts.url+"/")
	if !strings.Contains(landing, target.URL) || !strings.Contains(landing, "success") {
		t.Errorf("landing page does not list the probe:\n%s", landing)
	}
	_, metrics := mustGet(t, ts.url+"/metrics")
	if !strings.Contains(metrics, `vantage_exporter_probes_total{module="http_2xx",result="success"} 1`) {
		t.Errorf("probe counter missing from /metrics:\n%s", metrics)
	}
}

func TestProbeFailureReason(t *testing.T) {
	refused := testbin.FreeAddr(t)
	ts := mustStart(t, httpConfig)

	_, body := mustGet(t, ts.url+"/probe?module=http_2xx&target=http://"+refused)
	fams := mustParse(t, body)
	if v := mustFamily(t, fams, "probe_success").value(t); v != 0 {
		t.Errorf("probe_success = %v, want 0", v)
	}
	if v := mustFamily(t, fams, "probe_failure_info").value(t, "reason", "connect_refused"); v != 1 {
		t.Errorf("probe_failure_info{reason=connect_refused} = %v, want 1\n%s", v, body)
	}
}

func TestProbeBadRequests(t *testing.T) {
	ts := mustStart(t, httpConfig)
	for _, tc := range []struct {
		query, want string
	}{
		{"module=nope&target=http://127.0.0.1", `Unknown module "nope"`},
		{"module=http_2xx", "Target parameter is missing"},
	} {
		code, body := mustGet(t, ts.url+"/probe?"+tc.query)
		if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("/probe?%s: got %d %q, want 400 containing %q", tc.query, code, body, tc.want)
		}
	}
	code, body := mustGet(t, ts.url+"/probe?module=http_2xx&target=http://127.0.0.1", "X-Prometheus-Scrape-Timeout-Seconds", "soon")
	if code != http.StatusBadRequest || !strings.Contains(body, `"soon"`) {
		t.Errorf("bad timeout header: got %d %q", code, body)
	}
}

// A module without its own timeout is bounded by the scrape timeout header
// minus the offset.
func TestProbeTimeoutFromScrapeHeader(t *testing.T) {
	release := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer target.Close()
	defer close(release)
	ts := mustStart(t, httpConfig)

	_, body := mustGet(t, ts.url+"/probe?module=http_slow&target="+target.URL, "X-Prometheus-Scrape-Timeout-Seconds", "1.5")
	fams := mustParse(t, body)
	if v := mustFamily(t, fams, "probe_success").value(t); v != 0 {
		t.Errorf("probe_success = %v, want 0", v)
	}
	// 1.5s scrape timeout minus the 0.5s default offset.
	if d := mustFamily(t, fams, "probe_duration_seconds").value(t); d < 0.9 || d > 1.4 {
		t.Errorf("probe_duration_seconds = %v, want about 1s", d)
	}
}

func TestProbeTimeoutDerivation(t *testing.T) {
	for _, tc := range []struct {
		name           string
		header         string
		module, offset time.Duration
		want           time.Duration
	}{
		{"no header uses the default", "", 0, 500 * time.Millisecond, 120*time.Second - 500*time.Millisecond},
		{"header minus offset", "10", 0, 500 * time.Millisecond, 9500 * time.Millisecond},
		{"module timeout caps", "10", 5 * time.Second, 500 * time.Millisecond, 5 * time.Second},
		{"module timeout above the scrape budget", "3", 5 * time.Second, 500 * time.Millisecond, 2500 * time.Millisecond},
		{"offset larger than the scrape timeout", "1", 0, 2 * time.Second, time.Second},
		{"offset larger, module set", "1", 300 * time.Millisecond, 2 * time.Second, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/probe", nil)
			if tc.header != "" {
				r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tc.header)
			}
			got, err := probeTimeout(r, tc.module, tc.offset)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestProbeDebug(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, httpConfig)
	code, body := mustGet(t, ts.url+"/probe?debug=true&module=http_2xx&target="+target.URL)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{"Logs for the probe:", "Probe succeeded", "Metrics that would have been returned:", "probe_success 1", "Module configuration:", "prober: http"} {
		if !strings.Contains(body, want) {
			t.Errorf("debug output lacks %q:\n%s", want, body)
		}
	}
}

func TestConfigHidesSecrets(t *testing.T) {
	ts := mustStart(t, httpConfig)
	code, body := mustGet(t, ts.url+"/config")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if strings.Contains(body, "hunter2-secret") {
		t.Errorf("/config shows a secret:\n%s", body)
	}
	if !strings.Contains(body, "password: <secret>") || !strings.Contains(body, "username: probe") {
		t.Errorf("/config does not show the module with its secret hidden:\n%s", body)
	}
}

func TestReload(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, "modules:\n  first:\n    prober: http\n")
	post := func() (int, string) {
		req, _ := http.NewRequest(http.MethodPost, ts.url+"/-/reload", nil)
		return mustDo(t, req)
	}
	reloadGauge := func() float64 {
		_, m := mustGet(t, ts.url+"/metrics")
		return mustFamily(t, mustParse(t, m), "vantage_exporter_config_last_reload_successful").value(t)
	}
	if v := reloadGauge(); v != 1 {
		t.Fatalf("initial reload gauge = %v", v)
	}

	// A broken file is refused and the running configuration stays.
	mustWriteFile(t, ts.configPath, "modules:\n  second:\n    prober: htp\n")
	code, body := post()
	if code != http.StatusInternalServerError || !strings.Contains(body, `unknown prober "htp"`) || !strings.Contains(body, ts.configPath+":3") {
		t.Errorf("failed reload answered %d %q", code, body)
	}
	if v := reloadGauge(); v != 0 {
		t.Errorf("reload gauge after failure = %v, want 0", v)
	}
	if code, _ := mustGet(t, ts.url+"/probe?module=first&target="+target.URL); code != http.StatusOK {
		t.Errorf("old module stopped working after a failed reload: %d", code)
	}

	// A good file is taken, through POST /-/reload ...
	mustWriteFile(t, ts.configPath, "modules:\n  second:\n    prober: http\n")
	if code, body := post(); code != http.StatusOK {
		t.Fatalf("reload answered %d %q", code, body)
	}
	if v := reloadGauge(); v != 1 {
		t.Errorf("reload gauge after success = %v, want 1", v)
	}
	if code, _ := mustGet(t, ts.url+"/probe?module=second&target="+target.URL); code != http.StatusOK {
		t.Errorf("new module not served after reload: %d", code)
	}
	if code, _ := mustGet(t, ts.url+"/probe?module=first&target="+target.URL); code != http.StatusBadRequest {
		t.Errorf("removed module still served after reload: %d", code)
	}

	// ... and through the signal channel (SIGHUP in the binary).
	mustWriteFile(t, ts.configPath, "modules:\n  third:\n    prober: http\n")
	ts.reload <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := mustGet(t, ts.url+"/probe?module=third&target="+target.URL); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("signal reload not applied within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOperationalEndpoints(t *testing.T) {
	ts := mustStart(t, httpConfig)
	for path, want := range map[string]string{"/-/healthy": "Healthy", "/-/ready": "Ready"} {
		code, body := mustGet(t, ts.url+path)
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	code, _ := mustGet(t, ts.url+"/-/reload")
	if code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload answered %d, want 405", code)
	}
}

func TestWebConfigProtectsEveryEndpoint(t *testing.T) {
	dir := t.TempDir()
	webConfig := filepath.Join(dir, "web.yml")
	mustWriteFile(t, webConfig, "basic_auth_users:\n  admin: "+mustBcrypt(t, "s3cret")+"\n")
	ts := mustStart(t, httpConfig, func(o *Options) { o.WebConfigFile = &webConfig })
	for _, path := range []string{"/", "/metrics", "/probe?target=127.0.0.1", "/config", "/-/healthy", "/-/ready"} {
		if code, _ := mustGet(t, ts.url+path); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials answered %d, want 401", path, code)
		}
		req, _ := http.NewRequest(http.MethodGet, ts.url+path, nil)
		req.SetBasicAuth("admin", "s3cret")
		if code, _ := mustDo(t, req); code == http.StatusUnauthorized {
			t.Errorf("%s with credentials answered 401", path)
		}
	}
}
