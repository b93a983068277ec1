package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/exporter"
	"github.com/vantageprobe/vantage/internal/testbin"
)

type testCoordinator struct {
	*Coordinator
	url        string
	configPath string
}

// mustStart serves a coordinator on loopback with configYAML until the
// test ends.
func mustStart(t *testing.T, configYAML string, tweak ...func(*Options)) *testCoordinator {
	t.Helper()
	tc := &testCoordinator{}
	var srv *testbin.Server
	tc.Coordinator, srv, tc.configPath = startAt(t, configYAML, filepath.Join(t.TempDir(), "data"), tweak...)
	tc.url = srv.URL
	return tc
}

// startAt serves a coordinator with configYAML and the incident log in
// storage, until stopped or the test ends; it returns the configuration
// file's path too.
func startAt(t *testing.T, configYAML, storage string, tweak ...func(*Options)) (*Coordinator, *testbin.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "coordinator.yml")
	mustWrite(t, path, configYAML)
	opts := DefaultOptions()
	opts.ConfigFile, opts.StoragePath = path, storage
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	for _, f := range tweak {
		f(&opts)
	}
	var c *Coordinator
	srv := testbin.Serve(t, "coordinator", func(ctx context.Context, started func([]net.Addr)) error {
		opts.Started = started
		var err error
		if c, err = New(opts); err != nil {
			return err
		}
		return c.Serve(ctx)
	})
	return c, srv, path
}

// testConfig lists locations with the default confirmation settings.
func testConfig(locations ...string) *config.CoordinatorConfig {
	c := &config.CoordinatorConfig{Confirmation: config.DefaultConfirmation}
	for _, l := range locations {
		c.Locations = append(c.Locations, config.Location{Name: l, URL: "http://" + l + ":9715"})
	}
	return c
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func do(t *testing.T, method, url, contentType, body string) (int, string) {
	t.Helper()
	return send(t, method, url, contentType, "", body)
}

// send sends body with contentType and, unless empty, token as a bearer
// token, and returns the answer's status and body.
func send(t *testing.T, method, url, contentType, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// deadLocations lists locations whose exporters refuse connections.
func deadLocations(t *testing.T, names ...string) string {
	var b strings.Builder
	b.WriteString("locations:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    url: http://%s\n", n, testbin.FreeAddr(t))
	}
	return b.String()
}

// reportTime is when the test reports' checks ran: recent, so the
// coordinator takes them as live evidence (see report_freshness).
var reportTime = time.Now().UTC().Truncate(time.Second)

// ts renders reportTime moved by d, as reports carry times.
func ts(d time.Duration) string { return reportTime.Add(d).Format(time.RFC3339) }

var batchFailing = `{"location": "ams", "run": "r1", "reports": [{"seq": 1, "target": "https://a.example", "module": "http_2xx", "state": "failing",
  "time": "` + ts(0) + `", "first_failure": "` + ts(-30*time.Second) + `", "attempts": 3,
  "result": {"prober": "http", "success": false, "reason": "connect_refused", "start": "` + ts(0) + `", "duration_ns": 1000000}}]}`

func TestReportIntakeRejectsBadBatches(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	report := func(fields string) string {
		return `{"location": "ams", "run": "r1", "reports": [{` + fields + `}]}`
	}
	ok := `"seq": 1, "target": "https://a.example", "module": "http_2xx", "state": "failing", "time": "` + ts(0) + `", "result": {"success": false}`
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		reason, message         string
	}{
		{"empty", "application/json", "", 400, "malformed", "request body is empty"},
		{"not JSON", "application/json", "{", 400, "malformed", "invalid request body"},
		{"unknown field", "application/json", `{"location": "ams", "run": "r1", "reports": [], "extra": 1}`, 400, "malformed", `unknown field \"extra\"`},
		{"content type", "text/plain", batchFailing, 415, "unsupported_media_type", `content type \"text/plain\" is not application/json`},
		{"oversized", "application/json", `{"location": "` + strings.Repeat("a", maxReportBatchBytes) + `"}`, 413, "too_large", "larger than 8388608 bytes"},
		{"no location", "application/json", `{"run": "r1", "reports": []}`, 400, "unknown_location", "location must be set"},
		{"unknown location", "application/json", `{"location": "nyc", "run": "r1", "reports": []}`, 400, "unknown_location", `unknown location \"nyc\": the coordinator's locations are ams, fra`},
		{"no run", "application/json", `{"location": "ams", "reports": []}`, 400, "invalid_report", "run must be set"},
		{"seq 0", "application/json", report(strings.Replace(ok, `"seq": 1`, `"seq": 0`, 1)), 400, "invalid_report", "reports[0].seq must be at least 1"},
		{"no target", "application/json", report(strings.Replace(ok, `"https://a.example"`, `" "`, 1)), 400, "invalid_report", "reports[0].target must be set"},
		{"bad state", "application/json", report(strings.Replace(ok, `"failing"`, `"down"`, 1)), 400, "invalid_report", `reports[0].state: unknown state \"down\" (want one of failing, recovered, unknown)`},
		{"no time", "application/json", report(strings.Replace(ok, `"time": "`+ts(0)+`", `, "", 1)), 400, "invalid_report", "reports[0].time must be set"},
		{"no result", "application/json", report(strings.Replace(ok, `, "result": {"success": false}`, "", 1)), 400, "invalid_report", `reports[0].result must be set for state \"failing\"`},
		{"reserved label", "application/json", report(ok + `, "labels": {"job": "x"}`), 400, "invalid_report", `reports[0].labels: label name \"job\" is reserved`},
		{"invalid label", "application/json", report(ok + `, "labels": {"a-b": "x"}`), 400, "invalid_report", `reports[0].labels: invalid label name \"a-b\"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(c.metrics.rejected.WithLabelValues(tc.reason))
			status, body := do(t, http.MethodPost, c.url+"/api/v1/reports", tc.contentType, tc.body)
			if status != tc.status || !strings.Contains(body, tc.message) {
				t.Errorf("answer %d %s, want %d containing %q", status, body, tc.status, tc.message)
			}
			if after := testutil.ToFloat64(c.metrics.rejected.WithLabelValues(tc.reason)); after != before+1 {
				t.Errorf("rejected{reason=%q} went from %v to %v, want +1", tc.reason, before, after)
			}
		})
	}
	if n := len(c.targets()); n != 0 {
		t.Errorf("rejected batches created %d targets", n)
	}
}

func TestReportIntakeIgnoresRedeliveries(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra", "sfo"))
	url := c.url + "/api/v1/reports"
	// Every answer carries the coordinator's run; without a snapshot of
	// the exporter's run it asks for one.
	answer := func(body string) string {
		t.Helper()
		status, out := do(t, http.MethodPost, url, "application/json", body)
		var a api.ReportsAnswer
		if err := json.Unmarshal([]byte(out), &a); status != 200 || err != nil {
			t.Fatalf("batch: %d %s %v", status, out, err)
		}
		if a.Run == "" || a.Run != c.run || !a.WantSnapshot {
			t.Errorf("answer %s: want the coordinator's run %q and want_snapshot", out, c.run)
		}
		return fmt.Sprintf("accepted %d duplicates %d", a.Accepted, a.Duplicates)
	}
	if got := answer(batchFailing); got != "accepted 1 duplicates 0" {
		t.Fatalf("first delivery: %s", got)
	}
	if got := answer(batchFailing); got != "accepted 0 duplicates 1" {
		t.Fatalf("redelivery: %s, want the report counted as a duplicate", got)
	}
	// A restarted exporter (new run) starts again at seq 1.
	if got := answer(strings.Replace(batchFailing, `"run": "r1"`, `"run": "r2"`, 1)); got != "accepted 1 duplicates 0" {
		t.Fatalf("a new run's first report: %s", got)
	}
	if v := testutil.ToFloat64(c.metrics.duplicates.WithLabelValues("ams")); v != 1 {
		t.Errorf("duplicates{location=ams} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(c.metrics.reportsReceived.WithLabelValues("ams", "failing")); v != 2 {
		t.Errorf("reports_received{ams,failing} = %v, want 2", v)
	}

	// One incident, backdated to the first failure, durable before the
	// answer; fra and sfo refuse connections, so it cannot be decided.
	status, body := do(t, http.MethodGet, c.url+"/api/v1/incidents?state=open", "", "")
	var incs []confirm.Incident
	if err := json.Unmarshal([]byte(body), &incs); status != 200 || err != nil {
		t.Fatalf("incidents: %d %s %v", status, body, err)
	}
	if len(incs) != 1 || incs[0].Reporter != "ams" || !incs[0].StartedAt.Equal(reportTime.Add(-30*time.Second)) {
		t.Fatalf("open incidents = %+v, want one reported by ams, started at its first failure", incs)
	}
	testbin.WaitFor(t, "the verification round", 10*time.Second, func() error {
		inc, ok, err := c.store.Get(incs[0].ID)
		switch {
		case err != nil || !ok:
			return fmt.Errorf("incident %d: found %t, error %v", incs[0].ID, ok, err)
		case inc.Rounds == 0:
			return fmt.Errorf("incident %d has had no round yet (state %s)", inc.ID, inc.State)
		}
		return nil
	})
	inc, _, _ := c.store.Get(incs[0].ID)
	if inc.State != confirm.StateUnknown {
		t.Errorf("state = %s, want unknown: fra and sfo could not be asked", inc.State)
	}
	for _, e := range inc.Evidence {
		if e.Location != "ams" && (e.Result != confirm.OutcomeUnknown || !strings.Contains(e.Error, "check request failed")) {
			t.Errorf("evidence of %s = %+v, want unknown with the request's error", e.Location, e)
		}
	}
}

func TestAPIRejectsBadQueries(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	for _, tc := range []struct {
		path    string
		status  int
		message string
	}{
		{"/api/v1/incidents?state=closed", 400, `state must be open or all, got \"closed\"`},
		{"/api/v1/incidents?state=all&limit=0", 400, `limit must be a positive integer, got \"0\"`},
		{"/api/v1/incidents/abc", 400, `incident id must be a positive integer, got \"abc\"`},
		{"/api/v1/incidents/99", 404, "no incident 99"},
		{"/api/v1/targets?state=broken", 400, "state must be one of up, seems_down, down, unknown"},
		{"/probe?module=http_2xx", 400, "Target parameter is missing"},
		{"/probe?target=x", 400, "Module parameter is missing"},
	} {
		status, body := do(t, http.MethodGet, c.url+tc.path, "", "")
		if status != tc.status || !strings.Contains(body, tc.message) {
			t.Errorf("GET %s: %d %s, want %d containing %q", tc.path, status, body, tc.status, tc.message)
		}
	}
	for _, path := range []string{"/api/v1/incidents", "/api/v1/incidents?state=all", "/api/v1/targets", "/api/v1/locations"} {
		if status, body := do(t, http.MethodGet, c.url+path, "", ""); status != 200 || !strings.HasPrefix(body, "[") {
			t.Errorf("GET %s: %d %s, want a JSON list", path, status, body)
		}
	}
}

// startExporter serves a vantage-exporter with its default modules.
func startExporter(t *testing.T, location string, tweak ...func(*exporter.Options)) string {
	t.Helper()
	opts := exporter.DefaultOptions()
	opts.Location = location
	for _, f := range tweak {
		f(&opts)
	}
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	return testbin.Serve(t, "exporter "+location, func(ctx context.Context, started func([]net.Addr)) error {
		opts.Started = started
		return exporter.Run(ctx, opts)
	}).URL
}

func TestProbeFansOutToEveryLocation(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer target.Close()
	ams, fra := startExporter(t, "ams"), startExporter(t, "fra")
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: %q}\n  - {name: fra, url: %q}\n  - {name: sfo, url: \"http://%s\"}\n",
		ams, fra, testbin.FreeAddr(t)))

	probe := func(path string) map[string]string {
		t.Helper()
		status, body := do(t, http.MethodGet, c.url+"/probe?module=http_2xx&target="+target.URL+path, "", "")
		if status != 200 {
			t.Fatalf("/probe: %d %s", status, body)
		}
		lines := map[string]string{}
		for _, l := range strings.Split(body, "\n") {
			if i := strings.LastIndexByte(l, ' '); i > 0 && !strings.HasPrefix(l, "#") {
				lines[l[:i]] = l[i+1:]
			}
		}
		return lines
	}
	up := probe("/")
	for series, want := range map[string]string{
		`probe_success{location="ams"}`:                               "1",
		`probe_success{location="fra"}`:                               "1",
		`probe_success`:                                               "1", // ams and fra up, sfo unknown: two failures out of reach
		`vantage_probe_locations{result="unknown"}`:                   "1",
		`vantage_probe_location_answered{location="sfo"}`:             "0",
		`probe_http_status_code{location="ams"}`:                      "200",
		`vantage_probe_locations{result="success"}`:                   "2",
		`probe_http_duration_seconds{location="fra",phase="connect"}`: "",
	} {
		got, ok := up[series]
		if !ok || (want != "" && got != want) {
			t.Errorf("up target: %s = %q (present %v), want %q", series, got, ok, want)
		}
	}
	down := probe("/fail")
	if down[`probe_success`] != "0" || down[`probe_success{location="ams"}`] != "0" || down[`vantage_probe_locations{result="failure"}`] != "2" {
		t.Errorf("failing target: consensus %q, ams %q, failures %q; want 0, 0, 2", down["probe_success"], down[`probe_success{location="ams"}`], down[`vantage_probe_locations{result="failure"}`])
	}
}

func TestReloadKeepsTheRunningConfigOnError(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	mustWrite(t, c.configPath, "locations: []\n")
	status, body := do(t, http.MethodPost, c.url+"/-/reload", "", "")
	if status != 500 || !strings.Contains(body, "locations: at least one location must be listed") {
		t.Errorf("reload of a bad config: %d %s", status, body)
	}
	if v := testutil.ToFloat64(c.metrics.reloadSuccess); v != 0 {
		t.Errorf("last_reload_successful = %v, want 0", v)
	}
	if _, cfg := do(t, http.MethodGet, c.url+"/config", "", ""); !strings.Contains(cfg, "name: fra") {
		t.Errorf("/config after a failed reload = %s, want the running config", cfg)
	}
	mustWrite(t, c.configPath, deadLocations(t, "ams", "fra", "sfo"))
	if status, body := do(t, http.MethodPost, c.url+"/-/reload", "", ""); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if v := testutil.ToFloat64(c.metrics.reloadSuccess); v != 1 {
		t.Errorf("last_reload_successful = %v, want 1", v)
	}
	status, body = do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", strings.Replace(batchFailing, `"ams"`, `"sfo"`, 1))
	if status != 200 {
		t.Errorf("a report from the added location: %d %s", status, body)
	}
}

func TestStatusPage(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	// The failing report, then ams's snapshot: a.example failing, and two
	// targets up that never failed.
	batch := strings.TrimSuffix(batchFailing, "}") + `, "snapshot": {"seq": 1, "time": "` + ts(time.Second) + `",
  "not_up": [{"seq": 1, "target": "https://a.example", "module": "http_2xx", "state": "failing", "time": "` + ts(0) + `", "first_failure": "` + ts(-30*time.Second) + `"}],
  "up": 2, "up_targets": [{"target": "https://b.example", "module": "http_2xx"}, {"target": "https://c.example", "module": "tcp_connect"}]}}`
	if status, body := do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", batch); status != 200 {
		t.Fatalf("report: %d %s", status, body)
	}
	status, page := do(t, http.MethodGet, c.url+"/", "", "")
	if status != 200 {
		t.Fatalf("status page: %d", status)
	}
	for _, want := range []string{"<td>ams</td>", "<td>fra</td>", "https://a.example", `href="/api/v1/incidents/1"`,
		"Targets not up (1 of 3 known)", "Targets up (2 of 3 known)",
		"<td>https://b.example</td><td>http_2xx</td>", "<td>https://c.example</td><td>tcp_connect</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Index(page, "https://b.example") < strings.Index(page, "https://a.example") {
		t.Error("status page lists an up target before the target not up")
	}
}

func TestStatusPageCapsTheTargetsItLists(t *testing.T) {
	var targets []confirm.TargetView
	for i := range maxUpRows + 5 {
		targets = append(targets, confirm.TargetView{Target: fmt.Sprintf("https://up%03d.example", i), Module: "http_2xx", State: confirm.StateUp})
	}
	targets = append(targets, confirm.TargetView{Target: "https://zz.example", Module: "http_2xx", State: confirm.StateDown})
	var p statusPage
	p.splitTargets(targets)
	if p.Known != maxUpRows+6 || p.UpCount != maxUpRows+5 || len(p.Up) != maxUpRows || p.UpMore != 5 ||
		p.NotUpCount != 1 || len(p.NotUp) != 1 || p.NotUp[0].Target != "https://zz.example" || p.NotUpMore != 0 {
		t.Fatalf("split: known %d, up %d (%d listed, %d more), not up %d (%v, %d more)",
			p.Known, p.UpCount, len(p.Up), p.UpMore, p.NotUpCount, p.NotUp, p.NotUpMore)
	}
	var b strings.Builder
	if err := statusTemplate.Execute(&b, p); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Targets up (105 of 106 known)", `5 more up targets: <a href="/api/v1/targets?state=up">`, "https://up099.example"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(b.String(), "https://up100.example") {
		t.Error("status page lists more up targets than its cap")
	}
}

func TestReportsNeedTheToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	mustWrite(t, tokenFile, "t0ken\n")
	configPath := filepath.Join(dir, "coordinator.yml")
	mustWrite(t, configPath, deadLocations(t, "ams", "fra"))
	opts := DefaultOptions()
	opts.ConfigFile, opts.StoragePath, opts.APITokenFile = configPath, filepath.Join(dir, "data"), tokenFile
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	var c *Coordinator
	srv := testbin.Serve(t, "coordinator", func(ctx context.Context, started func([]net.Addr)) error {
		opts.Started = started
		var err error
		if c, err = New(opts); err != nil {
			return err
		}
		return c.Serve(ctx)
	})
	url := srv.URL + "/api/v1/reports"

	status, body := do(t, http.MethodPost, url, "application/json", batchFailing)
	if status != http.StatusUnauthorized || !strings.Contains(body, "no bearer token") {
		t.Errorf("a report without the token: %d %s, want 401", status, body)
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(batchFailing))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a report with the token: %d", resp.StatusCode)
	}
	if v := testutil.ToFloat64(c.metrics.unauthorized); v != 1 {
		t.Errorf("unauthorized = %v, want 1", v)
	}
	if n := len(c.targets()); n != 1 {
		t.Errorf("%d targets known, want 1: only the authenticated report counts", n)
	}

	opts.APITokenFile = filepath.Join(dir, "missing")
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "--api.token-file") {
		t.Errorf("a missing token file: %v", err)
	}
}

func TestVerificationRoundIsTheParentOfTheLocationsChecks(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer target.Close()
	exporterSpans, roundSpans := tracetest.NewInMemoryExporter(), tracetest.NewInMemoryExporter()
	fra := startExporter(t, "fra", func(o *exporter.Options) { o.Tracing.SpanExporter = exporterSpans })
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: \"http://%s\"}\n  - {name: fra, url: %q}\n", testbin.FreeAddr(t), fra),
		func(o *Options) { o.Tracing.SpanExporter = roundSpans })
	batch := strings.ReplaceAll(batchFailing, "https://a.example", target.URL)
	if status, body := do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", batch); status != 200 {
		t.Fatalf("report: %d %s", status, body)
	}
	testbin.WaitFor(t, "the confirmed outage", 10*time.Second, func() error {
		if ts := c.targets(); len(ts) != 1 || ts[0].State != confirm.StateDown {
			return fmt.Errorf("targets %+v, want one down", ts)
		}
		return nil
	})
	// Spans are exported in batches: flush both sides.
	if err := c.tracing.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var round tracetest.SpanStub
	testbin.WaitFor(t, "the round's span", 10*time.Second, func() error {
		spans := roundSpans.GetSpans()
		for _, s := range spans {
			if s.Name == "verify http_2xx" {
				round = s
				return nil
			}
		}
		return fmt.Errorf("no span named \"verify http_2xx\" among %d", len(spans))
	})
	attrs := map[string]string{}
	for _, a := range round.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["vantage.target"] != target.URL || attrs["vantage.verification.failure"] != "1" || round.Status.Code != codes.Error {
		t.Errorf("round span attributes %v, status %v; want the target, one failure, status Error", attrs, round.Status)
	}
	// Each location asked is a CLIENT child of the round, naming it; the
	// exporter's check span is that client span's child.
	var toFra tracetest.SpanStub
	for _, s := range roundSpans.GetSpans() {
		if s.SpanKind != trace.SpanKindClient || s.Parent.SpanID() != round.SpanContext.SpanID() {
			continue
		}
		for _, a := range s.Attributes {
			if a.Key == "vantage.location" && a.Value.AsString() == "fra" {
				toFra = s
			}
		}
	}
	if !toFra.SpanContext.IsValid() {
		t.Fatalf("no client span to fra under the round's span among %d", len(roundSpans.GetSpans()))
	}
	clientAttrs := map[string]string{}
	for _, a := range toFra.Attributes {
		clientAttrs[string(a.Key)] = a.Value.String()
	}
	if clientAttrs["http.request.method"] != "POST" || clientAttrs["url.full"] != fra+api.CheckBatchPath || clientAttrs["http.response.status_code"] != "200" {
		t.Errorf("client span to fra: attributes %v", clientAttrs)
	}
	testbin.WaitFor(t, "fra's check span in the round's trace", 10*time.Second, func() error {
		spans := exporterSpans.GetSpans()
		for _, s := range spans {
			if s.Parent.SpanID() == toFra.SpanContext.SpanID() && s.SpanContext.TraceID() == round.SpanContext.TraceID() {
				return nil
			}
		}
		return fmt.Errorf("none of fra's %d spans is a child of the round's client span to fra", len(spans))
	})
}

func TestPprofOnlyWithTheFlag(t *testing.T) {
	off := mustStart(t, deadLocations(t, "ams", "fra"))
	if status, _ := do(t, http.MethodGet, off.url+"/debug/pprof/", "", ""); status != http.StatusNotFound {
		t.Errorf("/debug/pprof/ without --web.enable-pprof: %d, want 404", status)
	}
	on := mustStart(t, deadLocations(t, "ams", "fra"), func(o *Options) { o.EnablePprof = true })
	if status, body := do(t, http.MethodGet, on.url+"/debug/pprof/", "", ""); status != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ with --web.enable-pprof: %d", status)
	}
}

func TestReloadClosesTheOldClientsConnections(t *testing.T) {
	var mu sync.Mutex
	states := map[http.ConnState]int{}
	exp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "Healthy") }))
	exp.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		mu.Lock()
		states[s]++
		mu.Unlock()
	}
	exp.Start()
	defer exp.Close()
	count := func(s http.ConnState) int {
		mu.Lock()
		defer mu.Unlock()
		return states[s]
	}
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: %q}\nconfirmation: {min_failing_locations: 1}\n", exp.URL))
	testbin.WaitFor(t, "the health check's keep-alive connection", 10*time.Second, func() error {
		if n := count(http.StateIdle); n == 0 {
			return errors.New("no connection has gone idle")
		}
		return nil
	})
	if status, body := do(t, http.MethodPost, c.url+"/-/reload", "", ""); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	testbin.WaitFor(t, "the old client's idle connection closed", 10*time.Second, func() error {
		if n := count(http.StateClosed); n == 0 {
			return fmt.Errorf("no connection closed (%d went idle)", count(http.StateIdle))
		}
		return nil
	})
}
