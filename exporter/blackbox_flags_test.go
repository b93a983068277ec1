package exporter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// The options behind blackbox_exporter's flags.

func TestRoutePrefix(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	defer target.Close()
	for _, tc := range []struct {
		name          string
		external, pre string
		prefix        string
	}{
		{"route prefix", "", "/vantage", "/vantage/"},
		{"external URL path", "http://probes.example/outer/vantage/", "", "/outer/vantage/"},
		{"route prefix wins", "http://probes.example/outer", "inner", "/inner/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := mustStart(t, httpConfig, func(o *Options) { o.ExternalURL, o.RoutePrefix = tc.external, tc.pre })
			base := ts.url + strings.TrimSuffix(tc.prefix, "/")
			code, body := mustGet(t, base+"/probe?module=http_2xx&target="+target.URL)
			if code != http.StatusOK || !strings.Contains(body, "probe_success 1") {
				t.Fatalf("probe under the prefix: %d %s", code, body)
			}
			for _, path := range []string{"/metrics", "/config", "/-/healthy", "/-/ready", "/history/0", "/logs?id=0", "/logs?target=" + target.URL} {
				if code, _ := mustGet(t, base+path); code != http.StatusOK {
					t.Errorf("%s under the prefix answered %d", path, code)
				}
			}
			if code, _ := mustGet(t, ts.url+"/probe?module=http_2xx&target="+target.URL); code != http.StatusNotFound {
				t.Errorf("/probe outside the prefix answered %d, want 404", code)
			}
			req, _ := http.NewRequest(http.MethodPost, base+"/-/reload", nil)
			if code, body := mustDo(t, req); code != http.StatusOK {
				t.Errorf("reload under the prefix: %d %s", code, body)
			}
			// The landing page's links follow the prefix.
			_, landing := mustGet(t, base+"/")
			for _, link := range []string{`action="` + tc.prefix + `probe"`, `href="` + tc.prefix + `metrics"`, `href="` + tc.prefix + `config"`, `href="` + tc.prefix + `history/0"`} {
				if !strings.Contains(landing, link) {
					t.Errorf("landing page lacks %s", link)
				}
			}
			// "/" redirects into the prefix, as blackbox_exporter.
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Get(ts.url + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := tc.prefix
			if tc.external != "" {
				want = tc.external
			}
			if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
				t.Errorf("/ answered %d to %q, want 302 to %q", resp.StatusCode, resp.Header.Get("Location"), want)
			}
		})
	}
}

func TestWebFlagValidation(t *testing.T) {
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.ExternalURL = "ftp://x/" }, `--web.external-url "ftp://x/" is not an http(s) URL`},
		{func(o *Options) { o.ExternalURL = `"http://x/"` }, `must not begin or end with quotes`},
		{func(o *Options) { o.RoutePrefix = "/a b" }, `--web.route-prefix "/a b" is not a URL path`},
		{func(o *Options) { o.ProbeLogLevel = "loud" }, `--log.prober "loud" is not one of debug, info, warn, error, none`},
		{func(o *Options) { o.AutoReload, o.AutoReloadInterval = true, 0 }, `--config.auto-reload-interval must be positive`},
		{func(o *Options) { o.DiscoveryUpdateInterval = -time.Second }, `--discovery.update-interval must not be negative, got -1s`},
	} {
		opts := DefaultOptions()
		opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
		tc.edit(&opts)
		if _, err := New(opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error containing %q", err, tc.want)
		}
	}
}

func TestHostnameWithModuleHostHeader(t *testing.T) {
	ts := mustStart(t, "modules:\n  vhost:\n    prober: http\n    http:\n      headers:\n        Host: vhost.example\n")
	code, body := mustGet(t, ts.url+"/probe?module=vhost&target=http://127.0.0.1:1/&hostname=other.example")
	want := "host header defined both in module configuration (vhost.example) and with URL-parameter 'hostname' (other.example)"
	if code != http.StatusBadRequest || !strings.Contains(body, want) {
		t.Errorf("got %d %q, want 400 with %q", code, body, want)
	}
}

func TestProbeTimeoutSeries(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, httpConfig, func(o *Options) { o.TimeoutOffset = 250 * time.Millisecond })
	_, body := mustGet(t, ts.url+"/probe?module=http_slow&target="+target.URL, "X-Prometheus-Scrape-Timeout-Seconds", "3")
	if v := mustFamily(t, mustParse(t, body), "probe_timeout_seconds").value(t); v != 2.75 {
		t.Errorf("probe_timeout_seconds = %v, want 2.75 (3s scrape timeout minus the 0.25s offset)", v)
	}
	_, body = mustGet(t, ts.url+"/probe?module=http_2xx&target="+target.URL, "X-Prometheus-Scrape-Timeout-Seconds", "10")
	if v := mustFamily(t, mustParse(t, body), "probe_timeout_seconds").value(t); v != 5 {
		t.Errorf("probe_timeout_seconds = %v, want the module's 5", v)
	}
}

func TestAutoReload(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, "modules:\n  first:\n    prober: http\n", func(o *Options) {
		o.AutoReload, o.AutoReloadInterval = true, 20*time.Millisecond
	})
	mustWriteFile(t, ts.configPath, "modules:\n  second:\n    prober: http\n")
	testbin.WaitFor(t, "the changed file to be loaded", 5*time.Second, func() error {
		if code, body := mustGet(t, ts.url+"/probe?module=second&target="+target.URL); code != http.StatusOK {
			return errorString(body)
		}
		return nil
	})
	// A broken file keeps the running configuration.
	mustWriteFile(t, ts.configPath, "modules:\n  third:\n    prober: htp\n")
	testbin.WaitFor(t, "the failed reload", 5*time.Second, func() error {
		_, m := mustGet(t, ts.url+"/metrics")
		if mustFamily(t, mustParse(t, m), "vantage_exporter_config_last_reload_successful").value(t) != 0 {
			return errorString("reload not tried yet")
		}
		return nil
	})
	if code, _ := mustGet(t, ts.url+"/probe?module=second&target="+target.URL); code != http.StatusOK {
		t.Errorf("running module lost after a failed automatic reload: %d", code)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestLogsEndpoint(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, httpConfig)
	mustGet(t, ts.url+"/probe?module=http_2xx&target="+target.URL)
	mustGet(t, ts.url+"/probe?module=http_slow&target="+target.URL)
	for _, tc := range []struct {
		query string
		code  int
		want  string
	}{
		{"id=0", http.StatusOK, "Logs for the probe:"},
		{"target=" + target.URL, http.StatusOK, "module=http_slow"},
		{"id=0&target=x", http.StatusBadRequest, "Probe id and target can't be defined at the same time"},
		{"", http.StatusBadRequest, "Probe id or target must be defined as http query parameters"},
		{"target=http://nowhere.invalid", http.StatusNotFound, "probe not found"},
	} {
		code, body := mustGet(t, ts.url+"/logs?"+tc.query)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("/logs?%s: %d %q, want %d containing %q", tc.query, code, body, tc.code, tc.want)
		}
	}
}

func TestDefaultListenAddress(t *testing.T) {
	if got := *DefaultOptions().WebListenAddresses; len(got) != 1 || got[0] != ":9715" {
		t.Errorf("default listen addresses %q, want :9715", got)
	}
}
