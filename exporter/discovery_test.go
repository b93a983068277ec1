package exporter

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// fastDiscovery hands discovered changes to the scheduler within 100ms.
func fastDiscovery(o *Options) { o.DiscoveryUpdateInterval = 100 * time.Millisecond }

// scheduledSeries returns the targets with a probe_success series, each
// with the given label's value: "target label=value".
func scheduledSeries(tb testing.TB, url, label string) []string {
	tb.Helper()
	_, body := mustGet(tb, url+"/metrics")
	var out []string
	if f, ok := mustParse(tb, body)["probe_success"]; ok {
		for _, s := range f.samples {
			out = append(out, s.labels["target"]+" "+label+"="+s.labels[label])
		}
	}
	slices.Sort(out)
	return out
}

// metricValue returns the value of the named series with the given labels,
// or -1 when there is none.
func metricValue(tb testing.TB, url, name string, labels ...string) float64 {
	tb.Helper()
	_, body := mustGet(tb, url+"/metrics")
	f, ok := mustParse(tb, body)[name]
	if !ok {
		return -1
	}
	for _, s := range f.samples {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value
		}
	}
	return -1
}

func waitSeries(tb testing.TB, url, label, what string, want ...string) {
	tb.Helper()
	slices.Sort(want)
	testbin.WaitFor(tb, what, 10*time.Second, func() error {
		if got := scheduledSeries(tb, url, label); !slices.Equal(got, want) {
			return fmt.Errorf("scheduled %q, want %q", got, want)
		}
		return nil
	})
}

// sdServer is an http_sd endpoint whose answer the test changes.
type sdServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	body   string
}

func newSDServer(tb testing.TB) *sdServer {
	s := &sdServer{status: http.StatusOK, body: "[]"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(s.status)
		fmt.Fprint(w, s.body)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *sdServer) set(status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func TestHTTPSDTargetsFollowDiscovery(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	sd := newSDServer(t)
	sd.set(http.StatusOK, `[{"targets": ["`+target.URL+`/a", "`+target.URL+`/b"], "labels": {"env": "prod", "__meta_owner": "web"}}]`)
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - name: inventory
    module: http_2xx
    interval: 1s
    http_sd_configs:
      - url: `+sd.URL+`
        refresh_interval: 200ms
    relabel_configs:
      - source_labels: [__meta_owner]
        target_label: team
`, fastDiscovery)

	waitSeries(t, ts.url, "team", "the discovered targets", target.URL+"/a team=web", target.URL+"/b team=web")
	if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "inventory"); v != 1 {
		t.Errorf("vantage_exporter_discovery_last_update_successful = %v, want 1", v)
	}
	// The discovery manager's own metrics are on the exporter's registry.
	if v := metricValue(t, ts.url, "prometheus_sd_discovered_targets", "name", "vantage", "config", "inventory"); v != 2 {
		t.Errorf("prometheus_sd_discovered_targets = %v, want 2", v)
	}

	// A target appears, one disappears, one stays.
	sd.set(http.StatusOK, `[{"targets": ["`+target.URL+`/a", "`+target.URL+`/c"], "labels": {"__meta_owner": "web"}}]`)
	waitSeries(t, ts.url, "team", "the changed targets", target.URL+"/a team=web", target.URL+"/c team=web")

	// A failing http_sd keeps the last good targets, and says so.
	sd.set(http.StatusInternalServerError, "broken")
	testbin.WaitFor(t, "the failure to show", 10*time.Second, func() error {
		if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "inventory"); v != 0 {
			return fmt.Errorf("vantage_exporter_discovery_last_update_successful = %v", v)
		}
		return nil
	})
	if v := metricValue(t, ts.url, "prometheus_sd_refresh_failures_total", "mechanism", "http", "config", "inventory"); v < 1 {
		t.Errorf("prometheus_sd_refresh_failures_total = %v, want at least 1", v)
	}
	// The targets are still checked: their checks keep counting.
	before := metricValue(t, ts.url, "vantage_probe_checks_total", "target", target.URL+"/c", "result", "success")
	testbin.WaitFor(t, "checks of the kept targets", 10*time.Second, func() error {
		if v := metricValue(t, ts.url, "vantage_probe_checks_total", "target", target.URL+"/c", "result", "success"); v <= before {
			return fmt.Errorf("checks of %s/c: %v, before the failure %v", target.URL, v, before)
		}
		return nil
	})
	waitSeries(t, ts.url, "team", "the kept targets", target.URL+"/a team=web", target.URL+"/c team=web")

	// Recovery.
	sd.set(http.StatusOK, `[{"targets": ["`+target.URL+`/a"], "labels": {"__meta_owner": "db"}}]`)
	waitSeries(t, ts.url, "team", "the targets after recovery", target.URL+"/a team=db")
	if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "inventory"); v != 1 {
		t.Errorf("vantage_exporter_discovery_last_update_successful = %v after recovery, want 1", v)
	}
}

func TestFileSDTargetsFollowTheFiles(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - name: files
    interval: 1s
    file_sd_configs:
      - files: [sd/*.json]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - target_label: __address__
        replacement: 127.0.0.1:9715
`, fastDiscovery)
	dir := filepath.Join(filepath.Dir(ts.configPath), "sd")
	if err := mkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		// Written aside and renamed, as configuration management does, so
		// the watcher never reads half a file.
		tmp := filepath.Join(filepath.Dir(dir), name+".tmp")
		mustWriteFile(t, tmp, content)
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("a.json", `[{"targets": ["`+target.URL+`/a", "`+target.URL+`/b"], "labels": {"__param_module": "http_2xx", "env": "prod"}}]`)
	waitSeries(t, ts.url, "env", "targets of the new file", target.URL+"/a env=prod", target.URL+"/b env=prod")

	write("b.json", `[{"targets": ["`+target.URL+`/c"], "labels": {"__param_module": "http_2xx", "env": "dev"}}]`)
	write("a.json", `[{"targets": ["`+target.URL+`/a"], "labels": {"__param_module": "http_2xx", "env": "prod"}}]`)
	waitSeries(t, ts.url, "env", "targets after the rewrite", target.URL+"/a env=prod", target.URL+"/c env=dev")

	// A target whose labels do not resolve (reserved name) fails the
	// group's update: the last good targets stay.
	write("b.json", `[{"targets": ["`+target.URL+`/d"], "labels": {"__param_module": "http_2xx", "le": "1"}}]`)
	testbin.WaitFor(t, "the bad update to show", 10*time.Second, func() error {
		if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "files"); v != 0 {
			return fmt.Errorf("vantage_exporter_discovery_last_update_successful = %v", v)
		}
		return nil
	})
	waitSeries(t, ts.url, "env", "the last good targets", target.URL+"/a env=prod", target.URL+"/c env=dev")

	if err := os.Remove(filepath.Join(dir, "b.json")); err != nil {
		t.Fatal(err)
	}
	waitSeries(t, ts.url, "env", "targets after the file is removed", target.URL+"/a env=prod")
	if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "files"); v != 1 {
		t.Errorf("vantage_exporter_discovery_last_update_successful = %v, want 1", v)
	}
}

func TestDiscoveryFollowsReload(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	config := func(group, env string) string {
		return `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - module: http_2xx
    interval: 1s
    targets: [` + target.URL + `/static]
    labels: {env: static}
  - name: ` + group + `
    module: http_2xx
    interval: 1s
    labels: {env: ` + env + `}
    static_configs:
      - targets: [` + target.URL + `/static, ` + target.URL + `/found]
`
	}
	ts := mustStart(t, config("one", "one"), fastDiscovery)
	// The statically listed target wins over the same one discovered.
	waitSeries(t, ts.url, "env", "static and discovered targets", target.URL+"/static env=static", target.URL+"/found env=one")

	mustWriteFile(t, ts.configPath, config("two", "two"))
	ts.reload <- struct{}{}
	waitSeries(t, ts.url, "env", "the targets of the reloaded group", target.URL+"/static env=static", target.URL+"/found env=two")
	testbin.WaitFor(t, "the removed group's gauge to go", 10*time.Second, func() error {
		if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "one"); v != -1 {
			return fmt.Errorf("group one still has vantage_exporter_discovery_last_update_successful %v", v)
		}
		return nil
	})
	if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "two"); v != 1 {
		t.Errorf("vantage_exporter_discovery_last_update_successful{group=two} = %v, want 1", v)
	}

	// /config shows the discovery blocks as written.
	_, body := mustGet(t, ts.url+"/config")
	if !strings.Contains(body, "static_configs:") || !strings.Contains(body, target.URL+"/found") {
		t.Errorf("/config lacks the discovery blocks:\n%s", body)
	}
}
