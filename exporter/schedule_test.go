package exporter

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/testbin"
)

func TestScheduledTargetsOnMetrics(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()

	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  retries: 0
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+up.URL+`, `+down.URL+`]
    labels: {team: web, failure_threshold: "3"}
`, func(o *Options) { o.Location = "ams" })
	var fams map[string]*familyView
	testbin.WaitFor(t, "both scheduled targets on /metrics", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		fams = mustParse(t, body)
		f, ok := fams["probe_success"]
		switch {
		case !ok:
			return errors.New("no probe_success series yet")
		case len(f.samples) != 2:
			return fmt.Errorf("%d probe_success series, want 2", len(f.samples))
		}
		return nil
	})
	success := fams["probe_success"]
	if v := success.value(t, "target", up.URL, "module", "http_2xx", "team", "web"); v != 1 {
		t.Errorf("probe_success of the healthy target = %v", v)
	}
	if v := success.value(t, "target", down.URL); v != 0 {
		t.Errorf("probe_success of the failing target = %v", v)
	}
	if v := mustFamily(t, fams, "probe_failure_info").value(t, "target", down.URL, "reason", "status_code"); v != 1 {
		t.Errorf("failure reason of the failing target not exposed")
	}
	if v := mustFamily(t, fams, "probe_http_status_code").value(t, "target", down.URL); v != 503 {
		t.Errorf("probe_http_status_code = %v, want 503", v)
	}
	mustFamily(t, fams, "vantage_probe_checks_total").value(t, "target", up.URL, "result", "success")
	mustFamily(t, fams, "probe_http_duration_seconds").value(t, "target", up.URL, "phase", "connect")
	if v := mustFamily(t, fams, "vantage_probe_failure_threshold").value(t, "target", down.URL, "team", "web"); v != 3 {
		t.Errorf("vantage_probe_failure_threshold = %v, want 3 from the failure_threshold label", v)
	}
	if v := mustFamily(t, fams, "vantage_probe_interval_seconds").value(t, "target", up.URL); v != 1 {
		t.Errorf("vantage_probe_interval_seconds = %v, want the group's 1s", v)
	}
	// With --location, every series of /metrics carries it: the results
	// table's, the phase histograms' and the exporter's own, so the scrape
	// configuration need not add it.
	for name, f := range fams {
		for _, s := range f.samples {
			if s.labels["location"] != "ams" {
				t.Errorf("%s%v has no location=\"ams\"", name, s.labels)
			}
		}
	}
	for _, name := range []string{"vantage_exporter_build_info", "process_resident_memory_bytes", "go_goroutines"} {
		mustFamily(t, fams, name)
	}
	if v := mustFamily(t, fams, "vantage_scheduler_targets").value(t); v != 2 {
		t.Errorf("vantage_scheduler_targets = %v, want 2", v)
	}

	// The same exposition, gzip-compressed, when the client asks for it.
	req, _ := http.NewRequest(http.MethodGet, ts.url+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(plain), `probe_success{target="`+up.URL+`"`) {
		t.Errorf("gzip exposition lacks the scheduled results")
	}
}

// The results table gets every scheduled target but the canary, with its
// labels, the exporter's location among them in name order, and the
// failure threshold its failure_threshold label sets.
func TestTableRows(t *testing.T) {
	targets := []scheduler.Target{
		{Module: "http_2xx", Target: "https://a.example", Labels: []scheduler.Label{{Name: "failure_threshold", Value: "3"}, {Name: "team", Value: "web"}}},
		{Module: "http_2xx", Target: "https://b.example"},
		{Module: "tcp_connect", Target: "127.0.0.1:1", Canary: true},
	}
	got := tableRows(targets, "")
	want := []collector.Row{
		{Module: "http_2xx", Target: "https://a.example", Labels: []collector.Label{{Name: "failure_threshold", Value: "3"}, {Name: "team", Value: "web"}}, FailureThreshold: new(3.0)},
		{Module: "http_2xx", Target: "https://b.example", Labels: []collector.Label{}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tableRows without a location = %+v, want %+v", got, want)
	}
	got = tableRows(targets, "ams")
	want = []collector.Row{
		{Module: "http_2xx", Target: "https://a.example", Labels: []collector.Label{{Name: "failure_threshold", Value: "3"}, {Name: "location", Value: "ams"}, {Name: "team", Value: "web"}}, FailureThreshold: new(3.0)},
		{Module: "http_2xx", Target: "https://b.example", Labels: []collector.Label{{Name: "location", Value: "ams"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tableRows in ams = %+v, want %+v", got, want)
	}
}

func TestTargetFilesAreWatched(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  file_refresh_interval: 1s
target_files: [targets/*.json]
`)
	dir := filepath.Join(filepath.Dir(ts.configPath), "targets")
	if err := mkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	// A Prometheus file_sd file: module and interval from reserved labels.
	mustWriteFile(t, filepath.Join(dir, "sd.json"), `[{"targets": ["`+target.URL+`/a", "`+target.URL+`/b"],
	  "labels": {"__param_module": "http_2xx", "__scrape_interval__": "1s", "env": "prod"}}]`)
	waitSeries(t, ts.url, "env", "targets from the new file", target.URL+"/a env=prod", target.URL+"/b env=prod")

	// A broken file keeps the running targets.
	mustWriteFile(t, filepath.Join(dir, "sd.json"), `[{"targets": ["`+target.URL+`/a"], "labels": {"__param_module": "nope"}}]`)
	testbin.WaitFor(t, "the broken file to be noticed", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		if v := mustFamily(t, mustParse(t, body), "vantage_exporter_target_files_last_read_successful").value(t); v != 0 {
			return fmt.Errorf("vantage_exporter_target_files_last_read_successful = %v", v)
		}
		return nil
	})
	if s := scheduledSeries(t, ts.url, "env"); !slices.Contains(s, target.URL+"/b env=prod") {
		t.Errorf("a broken target file dropped the running targets: %v", s)
	}

	// Removing a target removes its series.
	mustWriteFile(t, filepath.Join(dir, "sd.json"), `[{"targets": ["`+target.URL+`/a"], "labels": {"__param_module": "http_2xx", "__scrape_interval__": "1s", "env": "prod"}}]`)
	waitSeries(t, ts.url, "env", "the removed target to disappear", target.URL+"/a env=prod")
}

func mkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

// scheduler.series: minimal leaves the settings of a module and target
// and the repeated series out of /metrics, and keeps the rest.
func TestMinimalSeriesOnMetrics(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  retries: 0
  series: minimal
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+up.URL+`]
`)
	var fams map[string]*familyView
	testbin.WaitFor(t, "the scheduled target on /metrics", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		fams = mustParse(t, body)
		if _, ok := fams["probe_success"]; !ok {
			return errors.New("no probe_success series yet")
		}
		return nil
	})
	for _, name := range []string{"probe_timeout_seconds", "vantage_probe_interval_seconds", "probe_ip_protocol", "probe_failed_due_to_regex", "probe_dns_lookup_time_seconds"} {
		if _, ok := fams[name]; ok {
			t.Errorf("%s is on /metrics with series: minimal", name)
		}
	}
	for _, name := range []string{"probe_success", "probe_duration_seconds", "probe_http_status_code", "probe_ip_addr_hash", "vantage_probe_checks_total", "vantage_probe_last_check_timestamp_seconds"} {
		mustFamily(t, fams, name).value(t, "target", up.URL)
	}
	mustFamily(t, fams, "probe_http_duration_seconds").value(t, "target", up.URL, "phase", "resolve")
}
