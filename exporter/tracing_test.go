package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/exporter-toolkit/web"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/tracing/otlptest"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// The coordinator's verification span, as its traceparent header names it.
const (
	coordTraceID     = "0af7651916cd43dd8448eb211c80319c"
	coordSpanID      = "b7ad6b7169203331"
	coordTraceparent = "00-" + coordTraceID + "-" + coordSpanID + "-01"
)

// clearOTelEnv keeps the machine's OTEL_* variables from turning tracing on
// or changing its exporter.
func clearOTelEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"} {
		t.Setenv(k, "")
	}
}

// traced turns tracing on with spans exported quickly to mem.
func traced(mem *tracetest.InMemoryExporter, ratio float64) func(*Options) {
	return func(o *Options) {
		o.Location = "ams"
		o.Tracing.SpanExporter = mem
		o.Tracing.SampleRatio = ratio
		o.Tracing.SlowThreshold = time.Hour
		o.Tracing.BatchTimeout = 20 * time.Millisecond
	}
}

// traceparentRecorder is a target that records the traceparent headers it
// gets and answers with status.
type traceparentRecorder struct {
	mu   sync.Mutex
	seen []string
}

func newTraceparentTarget(t *testing.T, status int) (*httptest.Server, *traceparentRecorder) {
	t.Helper()
	rec := &traceparentRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Header.Get("Traceparent"))
		rec.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte("body"))
	}))
	t.Cleanup(srv.Close)
	return srv, rec
}

func (r *traceparentRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// waitForSpans polls mem until cond holds for its spans.
func waitForSpans(t *testing.T, mem *tracetest.InMemoryExporter, what string, cond func(tracetest.SpanStubs) bool) tracetest.SpanStubs {
	t.Helper()
	var spans tracetest.SpanStubs
	testbin.WaitFor(t, what, 10*time.Second, func() error {
		if spans = mem.GetSpans(); !cond(spans) {
			return fmt.Errorf("%d spans, none as wanted: %v", len(spans), spanNames(spans))
		}
		return nil
	})
	return spans
}

// spanNames lists the spans' names, for a failure message.
func spanNames(spans tracetest.SpanStubs) []string {
	names := make([]string, len(spans))
	for i, s := range spans {
		names[i] = s.Name
	}
	return names
}

func spanNamed(spans tracetest.SpanStubs, name string) (tracetest.SpanStub, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

func attrs(kvs []attribute.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.String()
	}
	return out
}

// childrenOf returns the spans whose parent is root, by name.
func childrenOf(spans tracetest.SpanStubs, root tracetest.SpanStub) map[string][]tracetest.SpanStub {
	out := map[string][]tracetest.SpanStub{}
	for _, s := range spans {
		if s.Parent.SpanID() == root.SpanContext.SpanID() && s.SpanContext.TraceID() == root.SpanContext.TraceID() {
			out[s.Name] = append(out[s.Name], s)
		}
	}
	return out
}

// A failed check made through the check API: one server span joined to the
// coordinator's trace, with the check's attributes, status unset (the API
// answered 200 with the failed result) and a child span per phase and a
// CLIENT child for the request to the target, whose traceparent the target
// got.
func TestCheckAPITraceOfFailedCheck(t *testing.T) {
	clearOTelEnv(t)
	target, rec := newTraceparentTarget(t, http.StatusServiceUnavailable)
	mem := tracetest.NewInMemoryExporter()
	ts := mustStart(t, httpConfig, traced(mem, 0))

	req, _ := http.NewRequest(http.MethodPost, ts.url+"/api/v1/check", strings.NewReader(`{"target": "`+target.URL+`", "module": "http_2xx"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Traceparent", coordTraceparent)
	if code, body := mustDo(t, req); code != http.StatusOK || !strings.Contains(body, `"reason":"status_code"`) {
		t.Fatalf("check API answered %d: %s", code, body)
	}
	spans := waitForSpans(t, mem, "the check's span", func(s tracetest.SpanStubs) bool {
		_, ok := spanNamed(s, "check http_2xx")
		return ok
	})
	root, _ := spanNamed(spans, "check http_2xx")
	if root.SpanContext.TraceID().String() != coordTraceID || root.Parent.SpanID().String() != coordSpanID || !root.Parent.IsRemote() {
		t.Errorf("check span in trace %s under %s; want the coordinator's span as its parent", root.SpanContext.TraceID(), root.Parent.SpanID())
	}
	if root.SpanKind != trace.SpanKindServer {
		t.Errorf("span kind %v, want server", root.SpanKind)
	}
	if root.Status.Code != codes.Unset {
		t.Errorf("status %+v, want unset: the check API answered 200", root.Status)
	}
	want := map[string]string{
		"vantage.target": target.URL, "vantage.module": "http_2xx", "vantage.location": "ams", "vantage.prober": "http",
		"vantage.check.source": "api", "vantage.check.success": "false", "vantage.check.failure_reason": "status_code",
		"http.response.status_code": "200", "vantage.check.attempts": "1",
		"http.request.method": "POST", "http.route": "/api/v1/check", "url.path": "/api/v1/check", "client.address": "127.0.0.1",
	}
	got := attrs(root.Attributes)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got[k], v)
		}
	}
	if _, ok := got["error.type"]; ok {
		t.Errorf("server span has error.type %q; the request did not fail", got["error.type"])
	}
	if res := attrs(root.Resource.Attributes()); res["service.name"] != "vantage-exporter" || res["vantage.location"] != "ams" {
		t.Errorf("resource %v", res)
	}
	if len(root.Events) != 1 || root.Events[0].Name != "attempt" {
		t.Errorf("events %+v, want one attempt", root.Events)
	}

	phases := childrenOf(spans, root)
	for _, name := range []string{"connect", "processing", "transfer"} {
		ps := phases[name]
		if len(ps) != 1 {
			t.Errorf("%d %s spans under the check span, want 1", len(ps), name)
			continue
		}
		p := ps[0]
		if !p.EndTime.After(p.StartTime) || p.StartTime.Before(root.StartTime) || p.EndTime.After(root.EndTime) {
			t.Errorf("%s span %v–%v is not a real interval within the check's %v–%v", name, p.StartTime, p.EndTime, root.StartTime, root.EndTime)
		}
		if a := attrs(p.Attributes); a["vantage.phase"] != name || a["vantage.check.attempt"] != "1" {
			t.Errorf("%s span attributes %v", name, a)
		}
	}
	if c, p := phases["connect"], phases["processing"]; len(c) == 1 && len(p) == 1 && p[0].StartTime.Before(c[0].EndTime) {
		t.Error("processing starts before connect ends")
	}

	clients := phases["GET"]
	if len(clients) != 1 || clients[0].SpanKind != trace.SpanKindClient {
		t.Fatalf("client spans under the check span: %+v, want one GET of kind client", clients)
	}
	client := clients[0]
	ca := attrs(client.Attributes)
	for k, v := range map[string]string{"http.response.status_code": "503", "url.full": target.URL, "http.request.method": "GET", "network.peer.address": "127.0.0.1", "error.type": "503"} {
		if ca[k] != v {
			t.Errorf("client span attribute %s = %q, want %q", k, ca[k], v)
		}
	}
	// The coordinator's traceparent was sampled: so is the target's.
	wantHeader := "00-" + coordTraceID + "-" + client.SpanContext.SpanID().String() + "-01"
	if seen := rec.all(); len(seen) != 1 || seen[0] != wantHeader {
		t.Errorf("target got traceparent %q, want %q (the client span's)", seen, wantHeader)
	}
}

// /probe sends a traceparent only with tracing on; its series stay the same.
func TestProbeTraceparentOnlyWhenTracing(t *testing.T) {
	clearOTelEnv(t)
	target, rec := newTraceparentTarget(t, http.StatusOK)
	off := mustStart(t, httpConfig)
	mem := tracetest.NewInMemoryExporter()
	on := mustStart(t, httpConfig, traced(mem, 1))

	seriesOf := func(url string) []string {
		code, body := mustGet(t, url+"/probe?module=http_2xx&target="+target.URL)
		if code != http.StatusOK {
			t.Fatalf("/probe answered %d: %s", code, body)
		}
		var names []string
		for name, f := range mustParse(t, body) {
			for _, s := range f.samples {
				var ls []string
				for k, v := range s.labels {
					ls = append(ls, k+"="+v)
				}
				slices.Sort(ls)
				names = append(names, name+"{"+strings.Join(ls, ",")+"}")
			}
		}
		slices.Sort(names)
		return names
	}
	offSeries := seriesOf(off.url)
	if seen := rec.all(); len(seen) != 1 || seen[0] != "" {
		t.Fatalf("with tracing off the target got traceparent %q", seen)
	}
	onSeries := seriesOf(on.url)
	if !slices.Equal(offSeries, onSeries) {
		t.Errorf("/probe series differ with tracing on:\noff %v\non  %v", offSeries, onSeries)
	}
	spans := waitForSpans(t, mem, "the probe's span", func(s tracetest.SpanStubs) bool {
		_, ok := spanNamed(s, "check http_2xx")
		return ok
	})
	root, _ := spanNamed(spans, "check http_2xx")
	if a := attrs(root.Attributes); a["vantage.check.source"] != "probe" || a["vantage.check.success"] != "true" || root.Parent.IsValid() {
		t.Errorf("probe span attributes %v, parent %v", a, root.Parent)
	}
	// The target's parent is the probe's client span, sampled (ratio 1).
	clients := childrenOf(spans, root)["GET"]
	if len(clients) != 1 {
		t.Fatalf("%d client spans under the probe's span, want 1", len(clients))
	}
	seen := rec.all()
	if want := "00-" + root.SpanContext.TraceID().String() + "-" + clients[0].SpanContext.SpanID().String() + "-01"; len(seen) != 2 || seen[1] != want {
		t.Errorf("with tracing on the target got traceparent %q, want %q (the client span's)", seen, want)
	}
	if a := attrs(root.Attributes); a["http.route"] != "/probe" || a["http.response.status_code"] != "200" {
		t.Errorf("probe server span attributes %v, want http.route /probe and status 200", a)
	}

	// Without tracing, /metrics stays in the text format even when
	// OpenMetrics is asked for.
	req, _ := http.NewRequest(http.MethodGet, off.url+"/metrics", nil)
	req.Header.Set("Accept", openMetricsAccept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q with tracing off", ct)
	}
}

// Prometheus' Accept header when it scrapes.
const openMetricsAccept = "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"

// scrapeOpenMetrics gets /metrics as Prometheus does and returns the
// decompressed exposition.
func scrapeOpenMetrics(t *testing.T, url string, gzipped bool) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	req.Header.Set("Accept", openMetricsAccept)
	if gzipped {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text; version=1.0.0") {
		t.Fatalf("Content-Type %q, want OpenMetrics 1.0.0", ct)
	}
	var body io.Reader = resp.Body
	if gzipped {
		if resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatal("not gzip-encoded")
		}
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("\n# EOF\n")) || bytes.Count(data, []byte("# EOF")) != 1 {
		t.Fatalf("OpenMetrics exposition does not end with one # EOF")
	}
	return data
}

// parseOpenMetrics parses an exposition strictly. The parser works from
// the ABNF grammar and is slow, so the Go runtime and process families,
// client_golang's own rendering, are left out; they also hold a known
// OpenMetrics name collision (go_memstats_alloc_bytes and
// go_memstats_alloc_bytes_total, prometheus/client_golang#829) that
// Prometheus ingests and the strict parser rejects. Everything vantage
// renders, and the final # EOF, must parse.
func parseOpenMetrics(t *testing.T, data []byte) map[string]*dto.MetricFamily {
	t.Helper()
	var kept [][]byte
	for line := range bytes.Lines(data) {
		name := line
		if bytes.HasPrefix(line, []byte("# ")) {
			if f := bytes.Fields(line); len(f) > 2 {
				name = f[2]
			}
		}
		if bytes.HasPrefix(name, []byte("go_")) || bytes.HasPrefix(name, []byte("process_")) {
			continue
		}
		kept = append(kept, line)
	}
	data = bytes.Join(kept, nil)
	dec := expfmt.NewDecoder(bytes.NewReader(data), expfmt.FmtOpenMetrics_1_0_0)
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("OpenMetrics does not parse: %v\n%s", err, data)
		}
		out[mf.GetName()] = mf
	}
}

// exemplarTraceIDs finds the trace IDs of the phase histogram's exemplars of a
// module in an OpenMetrics exposition.
func exemplarTraceIDs(data []byte, module string) []string {
	re := regexp.MustCompile(`(?m)^vantage_probe_phase_duration_seconds_bucket\{(?:[^}]*,)?module="` + regexp.QuoteMeta(module) + `",[^}]*\} \S+ # \{trace_id="([0-9a-f]{32})"\}`)
	var ids []string
	for _, m := range re.FindAllSubmatch(data, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids
}

// phaseExemplars returns the trace IDs of the phase histogram's exemplars
// of a module.
func phaseExemplars(fams map[string]*dto.MetricFamily, module string) []string {
	var ids []string
	for _, m := range fams["vantage_probe_phase_duration_seconds"].GetMetric() {
		mod := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "module" {
				mod = l.GetValue()
			}
		}
		if mod != module {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			for _, l := range b.GetExemplar().GetLabel() {
				if l.GetName() == "trace_id" {
					ids = append(ids, l.GetValue())
				}
			}
		}
	}
	return ids
}

// A scheduled check that fails after a retry: one span over both attempts,
// phase spans of each attempt, and its trace ID as an exemplar of the phase
// histograms on /metrics in OpenMetrics; the healthy target's checks (not
// sampled) leave none.
func TestScheduledCheckTraceAndExemplars(t *testing.T) {
	clearOTelEnv(t)
	bad, _ := newTraceparentTarget(t, http.StatusServiceUnavailable)
	good, _ := newTraceparentTarget(t, http.StatusOK)
	mem := tracetest.NewInMemoryExporter()
	ts := mustStart(t, `
modules:
  http_bad:
    prober: http
    timeout: 500ms
  http_ok:
    prober: http
    timeout: 500ms
scheduler:
  retries: 1
  retry_interval: 100ms
targets:
  - module: http_bad
    interval: 2s
    targets: [`+bad.URL+`]
  - module: http_ok
    interval: 2s
    targets: [`+good.URL+`]
`, traced(mem, 0))

	spans := waitForSpans(t, mem, "a failed scheduled check's span", func(s tracetest.SpanStubs) bool {
		_, ok := spanNamed(s, "check http_bad")
		return ok
	})
	root, _ := spanNamed(spans, "check http_bad")
	a := attrs(root.Attributes)
	if a["vantage.check.attempts"] != "2" || a["vantage.check.source"] != "scheduler" || a["vantage.check.failure_reason"] != "status_code" || root.SpanKind != trace.SpanKindInternal {
		t.Errorf("scheduled check span: kind %v, attributes %v", root.SpanKind, a)
	}
	if len(root.Events) != 2 {
		t.Errorf("%d attempt events, want 2", len(root.Events))
	}
	byAttempt := map[string]int{}
	for _, ps := range childrenOf(spans, root) {
		for _, p := range ps {
			byAttempt[attrs(p.Attributes)["vantage.check.attempt"]]++
		}
	}
	if byAttempt["1"] < 3 || byAttempt["2"] < 3 {
		t.Errorf("phase spans by attempt %v, want connect, processing and transfer of both", byAttempt)
	}
	if _, ok := spanNamed(spans, "check http_ok"); ok {
		t.Error("a fast, successful check was exported with sample ratio 0")
	}

	kept := func() map[string]bool {
		ids := map[string]bool{}
		for _, s := range mem.GetSpans() {
			if s.Name == "check http_bad" {
				ids[s.SpanContext.TraceID().String()] = true
			}
		}
		return ids
	}
	for _, gzipped := range []bool{false, true} {
		var data []byte
		testbin.WaitFor(t, "an exemplar of an exported trace", 10*time.Second, func() error {
			data = scrapeOpenMetrics(t, ts.url, gzipped)
			ids := exemplarTraceIDs(data, "http_bad")
			switch {
			case len(ids) == 0:
				return errors.New("no exemplar of http_bad yet")
			case !kept()[ids[0]]:
				return fmt.Errorf("exemplar trace %s not exported (yet)", ids[0])
			}
			return nil
		})
		if ids := exemplarTraceIDs(data, "http_ok"); len(ids) != 0 {
			t.Errorf("gzip %v: exemplars %v for checks whose traces were dropped", gzipped, ids)
		}
		if gzipped {
			continue
		}
		// The whole exposition is valid OpenMetrics, and the parsed
		// histogram carries the exemplars.
		fams := parseOpenMetrics(t, data)
		if ids := phaseExemplars(fams, "http_bad"); len(ids) == 0 {
			t.Error("no exemplars in the parsed phase histogram")
		}
		if fams["probe_success"] == nil || fams["vantage_tracing_pending_traces"] == nil {
			t.Error("OpenMetrics exposition lacks the table's or tracing's families")
		}
	}

	// The text format, still the default, carries no exemplars.
	code, body := mustGet(t, ts.url+"/metrics")
	if code != http.StatusOK || strings.Contains(body, "# {trace_id=") || strings.Contains(body, "# EOF") {
		t.Errorf("text exposition (status %d) carries OpenMetrics syntax", code)
	}
	mustParse(t, body)
}

// The spans of a failed check reach a real OTLP receiver, over gRPC and
// over HTTP, with their phase spans.
func TestFailedCheckSpansReachOTLPReceiver(t *testing.T) {
	clearOTelEnv(t)
	for _, tc := range []struct {
		protocol string
		receiver func(testing.TB) *otlptest.Receiver
	}{
		{tracing.ProtocolGRPC, otlptest.NewGRPC},
		{tracing.ProtocolHTTPProtobuf, otlptest.NewHTTP},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			target, _ := newTraceparentTarget(t, http.StatusInternalServerError)
			r := tc.receiver(t)
			ts := mustStart(t, httpConfig, func(o *Options) {
				o.Location = "fra"
				o.Tracing.Endpoint, o.Tracing.Protocol = r.Endpoint, tc.protocol
				o.Tracing.SampleRatio = 0
				o.Tracing.BatchTimeout = 20 * time.Millisecond
			})
			if code, body := postCheck(t, ts.url, "application/json", `{"target": "`+target.URL+`", "module": "http_2xx"}`); code != http.StatusOK {
				t.Fatalf("check API answered %d: %s", code, body)
			}
			spans := r.WaitFor(t, 10*time.Second, "the check span and its phases", func(s []otlptest.Span) bool {
				names := map[string]bool{}
				for _, sp := range s {
					names[sp.GetName()] = true
				}
				return names["check http_2xx"] && names["connect"] && names["processing"] && names["transfer"]
			})
			var root otlptest.Span
			for _, s := range spans {
				if s.GetName() == "check http_2xx" {
					root = s
				}
			}
			if root.Attr("vantage.check.failure_reason") != "status_code" || root.Attr("http.response.status_code") != "200" ||
				root.Attr("vantage.location") != "fra" || root.Resource["service.name"] != "vantage-exporter" {
				t.Errorf("root span attributes %v, resource %v", root.GetAttributes(), root.Resource)
			}
			for _, s := range spans {
				if s.GetName() != root.GetName() && (s.ParentSpanID() != root.SpanID() || s.TraceID() != root.TraceID()) {
					t.Errorf("span %s is not a child of the check span", s.GetName())
				}
			}
		})
	}
}

// With tracing off, the exporter's tracing hooks allocate nothing, and a
// scheduled check allocates exactly what the prober does.
func TestTracingOffAllocatesNothing(t *testing.T) {
	clearOTelEnv(t)
	ct := newCheckTracer(tracing.Disabled(), "ams")
	r := &result.Result{Prober: "http", Start: time.Now(), Duration: time.Millisecond,
		Timeline: []result.PhaseTiming{{Name: "connect", Duration: time.Microsecond}}}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		cctx, cs := ct.start(ctx, sourceScheduler, "http_2xx", "https://example.com", trace.SpanKindInternal)
		checkSpanFrom(cctx).attempt(r)
		cs.attempt(r)
		_ = cs.end(r, 1)
	})
	if allocs != 0 {
		t.Errorf("tracing off: %v allocations per check for tracing, want 0", allocs)
	}

	e, err := New(Options{FlagConfig: web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}}, ConfigFile: writeConfig(t, httpConfig)})
	if err != nil {
		t.Fatal(err)
	}
	if e.tracing.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	// An invalid target fails inside the prober without any I/O, so
	// both sides allocate deterministically.
	tgt := schedulerTarget("http_2xx", "http://")
	mod := e.config.get().modules["http_2xx"]
	// AllocsPerRun counts every allocation of the process, so another
	// goroutine's can add to either side: the least of a few tries counts.
	var direct, wrapped float64
	for try := 0; try < 5; try++ {
		direct = testing.AllocsPerRun(200, func() { _ = mod.Probe(ctx, tgt.Target, prober.Params{}) })
		wrapped = testing.AllocsPerRun(200, func() { _ = e.check(ctx, tgt) })
		if wrapped == direct {
			break
		}
	}
	if wrapped != direct {
		t.Errorf("a check allocates %v times through the exporter, %v in the prober alone", wrapped, direct)
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vantage.yml")
	mustWriteFile(t, path, content)
	return path
}

func schedulerTarget(module, target string) *scheduler.Target {
	return &scheduler.Target{Module: module, Target: target, Interval: time.Minute, Timeout: time.Second}
}

// BenchmarkCheckSpan measures the tracing work of one check (span, three
// phase spans, attributes, end) with tracing off and on.
func BenchmarkCheckSpan(b *testing.B) {
	r := &result.Result{Prober: "http", Start: time.Now(), Duration: 3 * time.Millisecond, Success: true,
		HTTP: &result.HTTPDetails{StatusCode: 200},
		Timeline: []result.PhaseTiming{
			{Name: "connect", Duration: time.Millisecond},
			{Name: "processing", Start: time.Millisecond, Duration: time.Millisecond},
			{Name: "transfer", Start: 2 * time.Millisecond, Duration: time.Millisecond},
		}}
	on, err := tracing.New(context.Background(), tracing.Config{SpanExporter: tracetest.NewNoopExporter(), SampleRatio: 0.01}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer on.Shutdown(context.Background())
	for _, bc := range []struct {
		name string
		p    *tracing.Provider
	}{{"off", tracing.Disabled()}, {"on", on}} {
		ct := newCheckTracer(bc.p, "ams")
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, cs := ct.start(context.Background(), sourceScheduler, "http_2xx", "https://example.com", trace.SpanKindInternal)
				cs.attempt(r)
				_ = cs.end(r, 1)
			}
		})
	}
}

// A New that fails leaves no tracing running: the span processor's export
// loop, started by tracing, would otherwise outlive the failed exporter.
func TestFailedNewLeavesNoTracingRunning(t *testing.T) {
	clearOTelEnv(t)
	badClient := filepath.Join(t.TempDir(), "coordinator-http.yml")
	mustWriteFile(t, badClient, "colour: blue\n")
	opts := DefaultOptions()
	opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
	opts.ConfigFile = writeConfig(t, httpConfig)
	opts.CoordinatorURLs = []string{"http://127.0.0.1:9716"}
	opts.CoordinatorHTTPConfigFile = badClient
	traced(tracetest.NewInMemoryExporter(), 1)(&opts)

	before := exportLoops()
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), "--coordinator.http-config.file") {
		t.Fatalf("New with a bad --coordinator.http-config.file: %v, want its error", err)
	}
	if n := exportLoops(); n != before {
		t.Errorf("%d span export loops running after New failed, %d before", n, before)
	}
}

// exportLoops counts the goroutines running an OpenTelemetry batch span
// processor's export loop.
func exportLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return bytes.Count(buf[:n], []byte("(*batchSpanProcessor).processQueue"))
		}
		buf = make([]byte, 2*len(buf))
	}
}
