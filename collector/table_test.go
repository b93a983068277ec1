package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/prober/result"
)

func httpResult(success bool, status int) *result.Result {
	r := &result.Result{Prober: "http", Success: success, Duration: 120 * time.Millisecond,
		Phases:  []result.Phase{{Name: "resolve", Duration: time.Millisecond}, {Name: "connect", Duration: 2 * time.Millisecond}},
		Resolve: &result.ResolveDetails{Host: "a.example", IP: "127.0.0.1", IPProtocol: 4},
		HTTP:    &result.HTTPDetails{StatusCode: status},
	}
	if !success {
		r.Reason = result.ReasonStatusCode
	}
	return r
}

// checkOf is c as a check of rw's target.
func checkOf(rw Row, c Check) Check {
	c.Module, c.Target = rw.Module, rw.Target
	return c
}

func mustScrape(t *testing.T, tab *Table) map[string][]map[string]string {
	t.Helper()
	var b bytes.Buffer
	if _, err := tab.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b.String())
	}
	out := map[string][]map[string]string{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue()
			if mf.GetType().String() == "COUNTER" {
				v = m.GetCounter().GetValue()
			}
			ls["__value__"] = fmt.Sprint(v)
			out[name] = append(out[name], ls)
		}
	}
	return out
}

func find(t *testing.T, fams map[string][]map[string]string, name string, want map[string]string) string {
	t.Helper()
	for _, ls := range fams[name] {
		ok := true
		for k, v := range want {
			if ls[k] != v {
				ok = false
			}
		}
		if ok {
			return ls["__value__"]
		}
	}
	t.Fatalf("no %s with labels %v in %v", name, want, fams[name])
	return ""
}

func TestTableRendersLatestResultWithTargetLabels(t *testing.T) {
	tab := NewTable(prometheus.NewRegistry())
	a := Row{Module: "http_2xx", Target: `https://a.example/"quoted"`, Labels: []Label{{Name: "failure_threshold", Value: "5"}, {Name: "team", Value: "web"}}, FailureThreshold: new(5.0)}
	b := Row{Module: "http_2xx", Target: "https://b.example"}
	tab.Sync([]Row{a, b})

	if fams := mustScrape(t, tab); len(fams) != 0 {
		t.Fatalf("targets without results render series: %v", fams)
	}
	tab.Record(checkOf(a, Check{Result: httpResult(true, 200), Attempts: 1, Planned: time.Unix(1000, 0)}))
	tab.Record(checkOf(b, Check{Result: httpResult(false, 503), Attempts: 3, Planned: time.Unix(1000, 0)}))
	tab.Record(checkOf(b, Check{Result: httpResult(false, 500), Attempts: 3, Planned: time.Unix(1060, 0)}))

	fams := mustScrape(t, tab)
	aLabels := map[string]string{"target": a.Target, "module": "http_2xx", "team": "web", "failure_threshold": "5"}
	bLabels := map[string]string{"target": b.Target, "module": "http_2xx"}
	if v := find(t, fams, "probe_success", aLabels); v != "1" {
		t.Errorf("a probe_success = %s", v)
	}
	if v := find(t, fams, "probe_http_status_code", bLabels); v != "500" {
		t.Errorf("b probe_http_status_code = %s, want the latest (500)", v)
	}
	if v := find(t, fams, "probe_failure_info", map[string]string{"target": b.Target, "reason": "status_code"}); v != "1" {
		t.Errorf("b probe_failure_info = %s", v)
	}
	if v := find(t, fams, "probe_http_duration_seconds", map[string]string{"target": a.Target, "phase": "connect"}); v != "0.002" {
		t.Errorf("a connect phase = %s", v)
	}
	if v := find(t, fams, "vantage_probe_checks_total", map[string]string{"target": b.Target, "result": "failure"}); v != "2" {
		t.Errorf("b failures = %s, want 2", v)
	}
	if v := find(t, fams, "vantage_probe_checks_total", map[string]string{"target": a.Target, "result": "success"}); v != "1" {
		t.Errorf("a successes = %s, want 1", v)
	}
	if v := find(t, fams, "vantage_probe_failure_threshold", aLabels); v != "5" {
		t.Errorf("a failure threshold = %s, want 5 from its label", v)
	}
	if n := len(fams["vantage_probe_failure_threshold"]); n != 1 {
		t.Errorf("vantage_probe_failure_threshold has %d series, want 1 (b has no failure_threshold label)", n)
	}
	if v := find(t, fams, "vantage_probe_attempts", bLabels); v != "3" {
		t.Errorf("b attempts = %s, want 3", v)
	}
	if v := find(t, fams, "vantage_probe_last_check_timestamp_seconds", bLabels); v != "1060" {
		t.Errorf("b last check = %s, want 1060", v)
	}

	// Removing a target removes its series; its late outcomes are ignored.
	tab.Sync([]Row{b})
	tab.Record(checkOf(a, Check{Result: httpResult(true, 200), Attempts: 1}))
	fams = mustScrape(t, tab)
	for _, ls := range fams["probe_success"] {
		if ls["target"] == a.Target {
			t.Errorf("removed target still rendered: %v", ls)
		}
	}
	if len(fams["probe_success"]) != 1 {
		t.Errorf("probe_success has %d series, want 1", len(fams["probe_success"]))
	}
	// A kept target keeps its counters across a sync.
	if v := find(t, fams, "vantage_probe_checks_total", map[string]string{"target": b.Target, "result": "failure"}); v != "2" {
		t.Errorf("b failures after sync = %s, want 2", v)
	}
}

func TestTablePhaseHistograms(t *testing.T) {
	reg := prometheus.NewRegistry()
	tab := NewTable(reg)
	a := Row{Module: "http_2xx", Target: "https://a.example"}
	tab.Sync([]Row{a})
	for range 3 {
		tab.Record(checkOf(a, Check{Result: httpResult(true, 200), Attempts: 1}))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() != "vantage_probe_phase_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
		}
	}
	if count != 6 { // 3 checks × 2 phases
		t.Errorf("phase histogram holds %d observations, want 6", count)
	}
}

// tableOf builds a table of n targets that all have a result.
func tableOf(tb testing.TB, n int) *Table {
	tb.Helper()
	tab := NewTable(prometheus.NewRegistry())
	targets := make([]Row, n)
	for i := range targets {
		targets[i] = Row{Module: "http_2xx", Target: fmt.Sprintf("https://site-%06d.example/health", i),
			Labels: []Label{{Name: "team", Value: "web"}}}
	}
	tab.Sync(targets)
	for i := range targets {
		r := httpResult(true, 200)
		r.TLS = &result.TLSDetails{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", EarliestCertExpiry: time.Unix(2e9, 0)}
		tab.Record(checkOf(targets[i], Check{Result: r, Attempts: 1, Planned: time.Unix(1000, 0)}))
	}
	return tab
}

// BenchmarkScrape100k measures one /metrics rendering of 100,000 targets.
func BenchmarkScrape100k(b *testing.B) {
	tab := tableOf(b, 100_000)
	b.ReportAllocs()
	var n int64
	cpu := cpuTime(b)
	for b.Loop() {
		n, _ = tab.WriteTo(io.Discard)
	}
	reportCPU(b, cpu)
	b.ReportMetric(float64(n)/(1<<20), "MiB/scrape")
}

// mustGunzip decompresses a whole gzip stream (every member of it).
func mustGunzip(tb testing.TB, r io.Reader) []byte {
	tb.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestWriteGzipIsTheSameText(t *testing.T) {
	tab := tableOf(t, 1001)
	var plain bytes.Buffer
	if _, err := tab.WriteTo(&plain); err != nil {
		t.Fatal(err)
	}
	for _, workers := range []int{1, 2, 3, 7} {
		var z bytes.Buffer
		if err := tab.WriteGzip(&z, workers); err != nil {
			t.Fatal(err)
		}
		if got := mustGunzip(t, &z); !bytes.Equal(got, plain.Bytes()) {
			t.Errorf("%d workers: decompressed text differs from WriteTo's (%d vs %d bytes)", workers, len(got), plain.Len())
		}
	}
}

// BenchmarkScrape100kGzip measures one gzip-compressed /metrics rendering of
// 100,000 targets, as Prometheus asks for it.
func BenchmarkScrape100kGzip(b *testing.B) {
	tab := tableOf(b, 100_000)
	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		if err := tab.WriteGzip(io.Discard, runtime.GOMAXPROCS(0)); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkRecord measures storing one check's outcome, which the exporter
// does for every scheduled check: the phase histograms and the row's
// rendering.
func BenchmarkRecord(b *testing.B) {
	tab := NewTable(prometheus.NewRegistry())
	rows := make([]Row, 1000)
	for i := range rows {
		rows[i] = Row{Module: "http_2xx", Target: fmt.Sprintf("https://site-%06d.example/health", i),
			Labels: []Label{{Name: "failure_threshold", Value: "5"}, {Name: "team", Value: "web"}}, FailureThreshold: new(5.0)}
	}
	tab.Sync(rows)
	r := httpResult(true, 200)
	r.TLS = &result.TLSDetails{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", EarliestCertExpiry: time.Unix(2e9, 0)}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tab.Record(checkOf(rows[i%len(rows)], Check{Result: r, Attempts: 1, Planned: time.Unix(1000, 0)}))
		i++
	}
}

func TestTableLatest(t *testing.T) {
	tab := NewTable(prometheus.NewRegistry())
	tab.Sync([]Row{{Module: "http_2xx", Target: "a", Interval: 30 * time.Second}})
	if _, _, ok := tab.Latest("http_2xx", "a"); ok {
		t.Error("a target not checked yet has a latest check")
	}
	r := &result.Result{Success: false, Start: time.Unix(100, 0), Duration: time.Second}
	tab.Record(Check{Module: "http_2xx", Target: "a", Result: r, Attempts: 3})
	tab.Record(Check{Module: "http_2xx", Target: "gone", Result: r})
	c, interval, ok := tab.Latest("http_2xx", "a")
	if !ok || c.Result != r || c.Attempts != 3 || interval != 30*time.Second {
		t.Errorf("Latest = %+v, %s, %v; want the recorded check and the 30s interval", c, interval, ok)
	}
	if _, _, ok := tab.Latest("http_2xx", "gone"); ok {
		t.Error("a target the table does not hold has a latest check")
	}
	tab.Sync([]Row{{Module: "http_2xx", Target: "a", Interval: time.Minute}})
	if c, interval, ok := tab.Latest("http_2xx", "a"); !ok || c.Result != r || interval != time.Minute {
		t.Errorf("after its interval changed: %+v, %s, %v; want the same check and the new interval", c, interval, ok)
	}
}

// A scrape that starts while a target's first result arrives (its
// families new to the table) holds the families that result refers to.
func TestScrapeDuringAFirstResult(t *testing.T) {
	rows := make([]Row, 2000)
	for j := range rows {
		rows[j] = Row{Module: "http_2xx", Target: fmt.Sprintf("http://t%05d", j)}
	}
	for i := range 100 {
		tab := NewTable(prometheus.NewRegistry())
		tab.Sync(rows)
		done := make(chan struct{})
		go func() {
			defer close(done)
			// The last rows first: a scrape reaches them last.
			for j := len(rows) - 1; j >= len(rows)-20; j-- {
				tab.Record(checkOf(rows[j], Check{Result: httpResult(true, 200), Attempts: 1, Planned: time.Unix(1, 0)}))
			}
		}()
		for range 3 {
			if _, err := tab.WriteTo(io.Discard); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
			if err := tab.WriteGzip(io.Discard, 2); err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
		<-done
	}
}

func TestMinimalSeriesLeaveOutSettingsAndRepeats(t *testing.T) {
	tab := NewTable(prometheus.NewRegistry())
	a := Row{Module: "http_2xx", Target: "https://a.example", Interval: time.Minute}
	tab.Sync([]Row{a})
	r := httpResult(false, 503)
	r.Timeout = 5 * time.Second
	r.HTTP.FailedDueToRegex = true
	r.HTTP.CELConfigured = true
	tab.Record(checkOf(a, Check{Result: r, Attempts: 1, Planned: time.Unix(1000, 0)}))
	full := mustScrape(t, tab)
	omitted := []string{"probe_timeout_seconds", "vantage_probe_interval_seconds", "probe_ip_protocol",
		"probe_failed_due_to_regex", "probe_failed_due_to_cel", "probe_dns_lookup_time_seconds"}
	for _, name := range omitted {
		if len(full[name]) != 1 {
			t.Fatalf("the full set has %d series %s, want 1", len(full[name]), name)
		}
	}

	// Switching re-renders the rows that hold a result.
	tab.SetMinimal(true)
	minimal := mustScrape(t, tab)
	for _, name := range omitted {
		if len(minimal[name]) != 0 {
			t.Errorf("the minimal set has %s", name)
		}
	}
	for name, series := range full {
		if !slices.Contains(omitted, name) && len(minimal[name]) != len(series) {
			t.Errorf("the minimal set has %d series %s, the full set %d", len(minimal[name]), name, len(series))
		}
	}
	if v := find(t, minimal, "probe_failure_info", map[string]string{"target": a.Target, "reason": "status_code"}); v != "1" {
		t.Errorf("probe_failure_info = %s in the minimal set", v)
	}
	if v := find(t, minimal, "probe_http_duration_seconds", map[string]string{"target": a.Target, "phase": "resolve"}); v != "0.001" {
		t.Errorf("the resolve phase = %s in the minimal set", v)
	}

	// A prober without a resolve phase series keeps probe_dns_lookup_time_seconds.
	b := Row{Module: "tcp_connect", Target: "b.example:22"}
	tab.Sync([]Row{a, b})
	tcp := &result.Result{Prober: "tcp", Success: true, Resolve: &result.ResolveDetails{Host: "b.example", IP: "127.0.0.1", IPProtocol: 4, Lookup: time.Millisecond}, TCP: &result.TCPDetails{}}
	tab.Record(checkOf(b, Check{Result: tcp, Attempts: 1, Planned: time.Unix(1000, 0)}))
	if v := find(t, mustScrape(t, tab), "probe_dns_lookup_time_seconds", map[string]string{"target": b.Target}); v != "0.001" {
		t.Errorf("tcp probe_dns_lookup_time_seconds = %s in the minimal set, want 0.001", v)
	}

	tab.SetMinimal(false)
	if back := mustScrape(t, tab); len(back["probe_timeout_seconds"]) != 1 || len(back["vantage_probe_interval_seconds"]) != 1 {
		t.Errorf("switching back to the full set did not render the settings again: %v", back["probe_timeout_seconds"])
	}
}

// A sync keeps the row (and counters) of a target whose labels and
// threshold stay, and starts a new one when either changes.
func TestSyncKeepsOnlyUnchangedRows(t *testing.T) {
	tab := NewTable(prometheus.NewRegistry())
	a := Row{Module: "http_2xx", Target: "https://a.example", Labels: []Label{{Name: "team", Value: "web"}}}
	b := Row{Module: "http_2xx", Target: "https://b.example", FailureThreshold: new(3.0)}
	tab.Sync([]Row{a, b})
	for _, rw := range []Row{a, b} {
		tab.Record(checkOf(rw, Check{Result: httpResult(true, 200), Attempts: 1, Planned: time.Unix(1000, 0)}))
	}
	tab.Sync([]Row{a, b})
	fams := mustScrape(t, tab)
	for _, rw := range []Row{a, b} {
		if v := find(t, fams, "vantage_probe_checks_total", map[string]string{"target": rw.Target, "result": "success"}); v != "1" {
			t.Errorf("%s: successes %s after an unchanged sync, want 1", rw.Target, v)
		}
	}
	a.Labels = []Label{{Name: "team", Value: "api"}}
	b.FailureThreshold = new(4.0)
	tab.Sync([]Row{a, b})
	if fams := mustScrape(t, tab); len(fams) != 0 {
		t.Errorf("rows whose labels or threshold changed kept their series: %v", fams)
	}
}

// BenchmarkTableHeap100k measures the live heap a table of 100,000 HTTPS
// targets holds, each with a result (its rendered lines included), per
// target.
func BenchmarkTableHeap100k(b *testing.B) {
	const n = 100_000
	var perTarget float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tab := tableOf(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perTarget = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(tab)
	}
	b.ReportMetric(perTarget, "heap-B/target")
}
