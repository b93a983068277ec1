package exporter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

func postBatch(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+api.CheckBatchPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return mustDo(t, req)
}

func mustBatch(t *testing.T, url, batch string, header ...string) api.CheckBatchResponse {
	t.Helper()
	code, body := postBatch(t, url, batch, header...)
	if code != http.StatusOK {
		t.Fatalf("batch answered %d: %s", code, body)
	}
	var resp api.CheckBatchResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("not a CheckBatchResponse: %v\n%s", err, body)
	}
	return resp
}

// countingTarget answers 502 to its first failFirst requests, then 200.
type countingTarget struct {
	*httptest.Server
	hits      atomic.Int64
	failFirst int64
}

func newCountingTarget(t *testing.T, failFirst int64) *countingTarget {
	ct := &countingTarget{failFirst: failFirst}
	ct.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct.hits.Add(1) <= ct.failFirst {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	t.Cleanup(ct.Close)
	return ct
}

func TestCheckBatchAPI(t *testing.T) {
	up := newCountingTarget(t, 0)
	down := newCountingTarget(t, 1<<40)
	ts := mustStart(t, httpConfig+"scheduler: {retries: 0}\n", func(o *Options) { o.Location = "fra" })
	resp := mustBatch(t, ts.url, `{"checks": [
		{"target": "`+down.URL+`", "module": "http_2xx"},
		{"target": "x", "module": "nope"},
		{"target": "`+up.URL+`", "module": "http_2xx", "timeout_seconds": 2},
		{"target": " ", "module": "http_2xx"}], "timeout_seconds": 3}`)
	if resp.Location != "fra" || len(resp.Results) != 4 || resp.CanaryOK != nil {
		t.Fatalf("answer %+v: want fra's 4 results in order, no canary verdict", resp)
	}
	r := resp.Results
	if r[0].Target != down.URL || r[0].Result == nil || r[0].Result.Success || r[0].Result.Reason != result.ReasonStatusCode || r[0].Attempts != 1 {
		t.Errorf("results[0] = %+v, want the failed check of the 502 target", r[0])
	}
	if r[1].Result != nil || r[1].Error != `checks[1]: unknown module "nope"` {
		t.Errorf("results[1] = %+v, want an error naming the unknown module", r[1])
	}
	if r[2].Target != up.URL || r[2].Result == nil || !r[2].Result.Success || r[2].FromSchedule {
		t.Errorf("results[2] = %+v, want a successful check made now", r[2])
	}
	if r[3].Result != nil || r[3].Error != "checks[3]: target must be set" {
		t.Errorf("results[3] = %+v, want an error naming the missing target", r[3])
	}
	_, metrics := mustGet(t, ts.url+"/metrics")
	if v := mustFamily(t, mustParse(t, metrics), "vantage_exporter_api_checks_total").value(t, "module", "http_2xx", "result", "success"); v != 1 {
		t.Errorf("api success counter = %v, want 1", v)
	}

	many := make([]api.CheckRequest, api.MaxCheckBatch+1)
	for i := range many {
		many[i] = api.CheckRequest{Target: up.URL, Module: "http_2xx"}
	}
	body, _ := json.Marshal(api.CheckBatchRequest{Checks: many})
	before := up.hits.Load()
	if code, got := postBatch(t, ts.url, string(body)); code != http.StatusRequestEntityTooLarge || !strings.Contains(got, "a batch holds at most 1000 checks, got 1001") {
		t.Errorf("an oversized batch: %d %s, want 413 naming the limit", code, got)
	}
	if up.hits.Load() != before {
		t.Errorf("an oversized batch made checks")
	}
	for _, tc := range []struct{ body, want string }{
		{`{"checks": [], "timeout_seconds": -1}`, "timeout_seconds must not be negative, got -1"},
		{`{"checks": [{"target": "x"}], "extra": 1}`, `unknown field \"extra\"`},
		{``, "request body is empty; want a JSON object with checks"},
	} {
		if code, got := postBatch(t, ts.url, tc.body); code != http.StatusBadRequest || !strings.Contains(got, tc.want) {
			t.Errorf("batch %q: %d %s, want 400 with %q", tc.body, code, got, tc.want)
		}
	}
}

func TestCheckBatchAPINeedsTheToken(t *testing.T) {
	up := newCountingTarget(t, 0)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := mustStart(t, httpConfig, func(o *Options) { o.APITokenFile = tokenFile })
	batch := `{"checks": [{"target": "` + up.URL + `", "module": "http_2xx"}]}`
	if code, body := postBatch(t, ts.url, batch); code != http.StatusUnauthorized {
		t.Errorf("a batch without the token: %d %s, want 401", code, body)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("a refused batch checked the target %d times", n)
	}
	resp := mustBatch(t, ts.url, batch, "Authorization", "Bearer s3cret")
	if len(resp.Results) != 1 || resp.Results[0].Result == nil || !resp.Results[0].Result.Success {
		t.Errorf("a batch with the token: %+v", resp)
	}
}

// Checks on request retry as scheduled checks do, within their timeout:
// a target failing once succeeds on its retry; a timeout with no room for
// a retry gets one attempt.
func TestCheckAPIAppliesTheRetryPolicy(t *testing.T) {
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  retries: 2
  retry_interval: 100ms
`)
	flaky := newCountingTarget(t, 1)
	resp := mustBatch(t, ts.url, `{"checks": [{"target": "`+flaky.URL+`", "module": "http_2xx"}], "timeout_seconds": 5}`)
	if r := resp.Results[0]; r.Result == nil || !r.Result.Success || r.Attempts != 2 || flaky.hits.Load() != 2 {
		t.Errorf("batch check of a target failing once: %+v after %d requests, want success on the second attempt", r, flaky.hits.Load())
	}

	flaky = newCountingTarget(t, 1)
	code, body := postCheck(t, ts.url, "application/json", `{"target": "`+flaky.URL+`", "module": "http_2xx", "timeout_seconds": 5}`)
	var single api.CheckResponse
	if err := json.Unmarshal([]byte(body), &single); err != nil || code != 200 {
		t.Fatalf("single check: %d %s", code, body)
	}
	if single.Result == nil || !single.Result.Success || single.Attempts != 2 {
		t.Errorf("single check of a target failing once: %s, want success on the second attempt", body)
	}

	down := newCountingTarget(t, 1<<40)
	resp = mustBatch(t, ts.url, `{"checks": [
		{"target": "`+down.URL+`", "module": "http_2xx", "timeout_seconds": 5},
		{"target": "`+down.URL+`/short", "module": "http_2xx", "timeout_seconds": 1}]}`)
	if r := resp.Results[0]; r.Result == nil || r.Result.Success || r.Attempts != 3 {
		t.Errorf("a failing target with room for both retries: %+v, want 3 attempts", r)
	}
	if r := resp.Results[1]; r.Result == nil || r.Result.Success || r.Attempts != 1 {
		t.Errorf("a failing target with no room for a retry (1s timeout, attempts of up to 1s): %+v, want 1 attempt", r)
	}
	if n := down.hits.Load(); n != 4 {
		t.Errorf("the failing target got %d requests, want 3 + 1", n)
	}
}

// A target scheduled here whose latest check is fresh is answered from
// it; once that check is older than the requested check's timeout, the
// target is checked again.
func TestCheckAPIAnswersWithAFreshScheduledResult(t *testing.T) {
	target := newCountingTarget(t, 0)
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - module: http_2xx
    interval: 2s
    targets: [`+target.URL+`]
`)
	ask := func(timeout string) (api.CheckResponse, time.Time) {
		asked := time.Now()
		resp := mustBatch(t, ts.url, `{"checks": [{"target": "`+target.URL+`", "module": "http_2xx", "timeout_seconds": `+timeout+`}]}`)
		return resp.Results[0], asked
	}
	var r api.CheckResponse
	testbin.WaitFor(t, "an answer from the schedule", 10*time.Second, func() error {
		var asked time.Time
		r, asked = ask("30")
		if !r.FromSchedule {
			return fmt.Errorf("answer %+v is not from the schedule", r)
		}
		if r.Result == nil || !r.Result.Success || r.Attempts != 1 || r.Result.Start.After(asked) {
			return fmt.Errorf("answer from the schedule %+v, want the scheduled success from before the request", r)
		}
		return nil
	})
	// A not_before after the scheduled check began keeps it from
	// answering.
	code, body := postBatch(t, ts.url, `{"checks": [{"target": "`+target.URL+`", "module": "http_2xx", "timeout_seconds": 30,
		"not_before": "`+r.Result.Start.Add(time.Millisecond).Format(time.RFC3339Nano)+`"}]}`)
	if resp := mustBatch(t, ts.url, `{"checks": [{"target": "`+target.URL+`", "module": "http_2xx", "timeout_seconds": 30}]}`); code != 200 || !resp.Results[0].FromSchedule {
		t.Fatalf("setup: %d %s; the scheduled result no longer answers (%+v)", code, body, resp.Results[0])
	}
	if strings.Contains(body, `"from_schedule":true`) {
		t.Errorf("a scheduled result that began before not_before answered: %s", body)
	}
	// Past the 200ms timeout of the next request, and before the next
	// scheduled check (2s after the last).
	ended := r.Result.Start.Add(r.Result.Duration)
	time.Sleep(time.Until(ended.Add(300 * time.Millisecond)))
	fresh, asked := ask("0.2")
	if fresh.FromSchedule || fresh.Result == nil || !fresh.Result.Success || fresh.Result.Start.Before(asked) {
		t.Errorf("a scheduled result older than the 200ms timeout answered: %+v, want a check made now", fresh)
	}
	_, metrics := mustGet(t, ts.url+"/metrics")
	if v := mustFamily(t, mustParse(t, metrics), "vantage_exporter_api_checks_from_schedule_total").value(t, "module", "http_2xx"); v < 1 {
		t.Errorf("from-schedule counter = %v, want at least 1", v)
	}
}

// A failed check's answer in a batch carries the verdict of a canary
// check: a failing canary makes it false.
func TestCheckBatchAPICarriesTheCanaryVerdict(t *testing.T) {
	down := newCountingTarget(t, 1<<40)
	canary := newCountingTarget(t, 1<<40)
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler: {retries: 0}
canary:
  module: http_2xx
  target: `+canary.URL+`
  interval: 1h
`)
	resp := mustBatch(t, ts.url, `{"checks": [{"target": "`+down.URL+`", "module": "http_2xx", "timeout_seconds": 3}]}`)
	r := resp.Results[0]
	if r.Result == nil || r.Result.Success || r.CanaryOK == nil || *r.CanaryOK {
		t.Errorf("a failed check beside a failing canary: %+v, want canary_ok false", r)
	}
	if resp.CanaryOK == nil || *resp.CanaryOK {
		t.Errorf("the batch's canary verdict %v, want false", resp.CanaryOK)
	}
}

// In a batch, a check's own traceparent (its verification round's) is its
// span's parent; a check without one is the child of the request's.
func TestCheckBatchAPITraceParents(t *testing.T) {
	clearOTelEnv(t)
	target, _ := newTraceparentTarget(t, http.StatusServiceUnavailable)
	mem := tracetest.NewInMemoryExporter()
	ts := mustStart(t, httpConfig, traced(mem, 0))
	const roundSpanID = "00f067aa0ba902b7"
	roundTraceID := strings.Repeat("4b", 16)
	code, body := postBatch(t, ts.url, `{"checks": [
		{"target": "`+target.URL+`/round", "module": "http_2xx", "traceparent": "00-`+roundTraceID+`-`+roundSpanID+`-01"},
		{"target": "`+target.URL+`/batch", "module": "http_2xx"}]}`, "Traceparent", coordTraceparent)
	if code != http.StatusOK {
		t.Fatalf("batch answered %d: %s", code, body)
	}
	spans := waitForSpans(t, mem, "both checks' spans", func(s tracetest.SpanStubs) bool {
		n := 0
		for _, sp := range s {
			if sp.Name == "check http_2xx" {
				n++
			}
		}
		return n == 2
	})
	parents := map[string]string{}
	for _, sp := range spans {
		if sp.Name == "check http_2xx" {
			parents[attrs(sp.Attributes)["vantage.target"]] = sp.Parent.TraceID().String() + "/" + sp.Parent.SpanID().String()
		}
	}
	if got, want := parents[target.URL+"/round"], roundTraceID+"/"+roundSpanID; got != want {
		t.Errorf("the check with its own traceparent has parent %s, want its round's %s", got, want)
	}
	if got, want := parents[target.URL+"/batch"], coordTraceID+"/"+coordSpanID; got != want {
		t.Errorf("the check without one has parent %s, want the request's %s", got, want)
	}
}
