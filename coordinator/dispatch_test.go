package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/prober/result"
)

// testDispatcher runs a dispatcher until the test ends; finished rounds
// arrive on the returned channel.
func testDispatcher(t *testing.T, limits dispatchLimits) (*dispatcher, chan *round) {
	t.Helper()
	done := make(chan *round, 10000)
	tp := tracing.Disabled()
	d := newDispatcher(newVerifier(func() *http.Client { return http.DefaultClient }), tp.Tracer("test"), tp.Inject, limits, func(r *round) { done <- r })
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		d.run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return d, done
}

func roundOf(target string, id uint64, first bool, timeout time.Duration, locations ...string) confirm.RoundRequest {
	return confirm.RoundRequest{Key: confirm.Key{Target: target, Module: "http_2xx"}, ID: id, Locations: locations, Timeout: timeout, First: first}
}

// waitRounds collects n finished rounds, failing after a bound.
func waitRounds(t *testing.T, done chan *round, n int) []*round {
	t.Helper()
	var out []*round
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case r := <-done:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("%d of %d rounds finished", len(out), n)
		}
	}
	return out
}

// batchServer answers the batch API, every check a success, after gate
// lets the request through; it records the targets of every batch.
type batchServer struct {
	*httptest.Server
	mu      sync.Mutex
	batches [][]string
	gate    chan struct{} // nil: answer at once
	// checkNotBefore: refuse a first verification without not_before
	// and a re-verification with one.
	checkNotBefore bool
	arrived        chan struct{}
}

func newBatchServer(t *testing.T, gated bool) *batchServer {
	bs := &batchServer{arrived: make(chan struct{}, 100)}
	if gated {
		bs.gate = make(chan struct{})
	}
	bs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.CheckBatchPath {
			http.NotFound(w, r)
			return
		}
		var req api.CheckBatchRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var targets []string
		resp := api.CheckBatchResponse{Location: "fra"}
		for _, c := range req.Checks {
			// A first verification asks for a check made since its round
			// began ("again-…" targets are re-verifications).
			if again := strings.HasPrefix(c.Target, "again"); bs.checkNotBefore && (again != c.NotBefore.IsZero() || c.NotBefore.After(time.Now())) {
				http.Error(w, fmt.Sprintf("check of %s with not_before %s", c.Target, c.NotBefore), http.StatusBadRequest)
				return
			}
			targets = append(targets, c.Target)
			resp.Results = append(resp.Results, api.CheckResponse{Location: "fra", Target: c.Target, Module: c.Module,
				Result: &result.Result{Success: true, Start: time.Now()}})
		}
		bs.mu.Lock()
		bs.batches = append(bs.batches, targets)
		bs.mu.Unlock()
		bs.arrived <- struct{}{}
		if bs.gate != nil {
			select {
			case <-bs.gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(bs.Close)
	return bs
}

// waitArrived waits for a batch request to arrive, failing after a bound.
func (bs *batchServer) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-bs.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no batch request arrived")
	}
}

func (bs *batchServer) seen() [][]string {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return append([][]string(nil), bs.batches...)
}

// Rounds against real exporters go out in batches no larger than the
// limit, and every round gets every location's answer.
func TestDispatcherBatchesChecks(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/fail") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()
	var batches, checks atomic.Int64
	count := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == api.CheckBatchPath {
				batches.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
	ams, fra := startExporter(t, "ams"), startExporter(t, "fra")
	// A proxy in front of ams counts its batch requests.
	proxy := httptest.NewServer(count(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, ams+r.URL.Path, r.Body)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var body api.CheckBatchResponse
		_ = json.NewDecoder(resp.Body).Decode(&body)
		checks.Add(int64(len(body.Results)))
		w.WriteHeader(resp.StatusCode)
		_ = json.NewEncoder(w).Encode(body)
	})))
	defer proxy.Close()

	limits := defaultDispatchLimits
	limits.batchSize = 10
	d, done := testDispatcher(t, limits)
	urls := map[string][]string{"ams": {proxy.URL}, "fra": {fra}}
	const n = 45
	for i := range n {
		path := fmt.Sprintf("/ok/%d", i)
		if i%3 == 0 {
			path = fmt.Sprintf("/fail/%d", i)
		}
		d.submit(context.Background(), roundOf(target.URL+path, uint64(i), true, 10*time.Second, "ams", "fra"), urls)
	}
	for _, r := range waitRounds(t, done, n) {
		answers := r.answers()
		if len(answers) != 2 {
			t.Fatalf("round %d has %d answers, want 2", r.req.ID, len(answers))
		}
		want := confirm.OutcomeSuccess
		if strings.Contains(r.req.Key.Target, "/fail/") {
			want = confirm.OutcomeFailure
		}
		for _, a := range answers {
			if a.Result != want || a.Source != confirm.SourceCheck || !a.answered {
				t.Errorf("round %d (%s): %s answered %+v, want %s", r.req.ID, r.req.Key.Target, a.Location, a.Evidence, want)
			}
		}
	}
	if b, c := batches.Load(), checks.Load(); c != n || b < n/10 || b > n/2 {
		t.Errorf("ams got %d checks in %d batch requests; want %d checks in batches of up to 10 (about %d requests)", c, b, n, n/10+1)
	}
}

// First verifications go before re-verifications: with one request at a
// time, checks queued behind it leave first-rounds first.
func TestDispatcherServesFirstVerificationsFirst(t *testing.T) {
	bs := newBatchServer(t, true)
	bs.checkNotBefore = true
	d, done := testDispatcher(t, dispatchLimits{batchSize: 2, linger: time.Millisecond, requests: 1, queue: 100, singles: 1, legacyRecheck: time.Minute})
	urls := map[string][]string{"fra": {bs.URL}}
	d.submit(context.Background(), roundOf("busy", 1, true, 10*time.Second, "fra"), urls)
	bs.waitArrived(t) // the one request slot is taken
	d.submit(context.Background(), roundOf("again-1", 2, false, 10*time.Second, "fra"), urls)
	d.submit(context.Background(), roundOf("again-2", 3, false, 10*time.Second, "fra"), urls)
	d.submit(context.Background(), roundOf("first-1", 4, true, 10*time.Second, "fra"), urls)
	d.submit(context.Background(), roundOf("first-2", 5, true, 10*time.Second, "fra"), urls)
	close(bs.gate)
	waitRounds(t, done, 5)
	got := bs.seen()
	want := [][]string{{"busy"}, {"first-1", "first-2"}, {"again-1", "again-2"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("batches %v, want %v", got, want)
	}
}

// Checks the coordinator has no capacity for are answered as overload:
// one beyond the queue's limit at once, one still queued at the round's
// timeout; a check in flight at the timeout is unknown, not overload.
func TestDispatcherAnswersOverload(t *testing.T) {
	bs := newBatchServer(t, true)
	defer close(bs.gate)
	d, done := testDispatcher(t, dispatchLimits{batchSize: 1, linger: time.Millisecond, requests: 1, queue: 1, singles: 1, legacyRecheck: time.Minute})
	urls := map[string][]string{"fra": {bs.URL}}
	const timeout = 300 * time.Millisecond
	d.submit(context.Background(), roundOf("in-flight", 1, true, timeout, "fra"), urls)
	bs.waitArrived(t)
	d.submit(context.Background(), roundOf("queued", 2, true, timeout, "fra"), urls)
	d.submit(context.Background(), roundOf("queue-full", 3, true, timeout, "fra"), urls)
	rounds := waitRounds(t, done, 3)
	byTarget := map[string]*round{}
	for _, r := range rounds {
		byTarget[r.req.Key.Target] = r
	}
	if rounds[0].req.Key.Target != "queue-full" {
		t.Errorf("first finished round %s, want the one refused by the full queue at once", rounds[0].req.Key.Target)
	}
	for target, want := range map[string]struct {
		source, err string
	}{
		"queue-full": {confirm.SourceOverload, "the coordinator's queue of checks for the location is full (1)"},
		// The reaper ends the round, or the pump takes the check past half
		// the round's time: overload either way.
		"queued":    {confirm.SourceOverload, "no request slot for the location before "},
		"in-flight": {confirm.SourceCheck, "no answer within verify_timeout (300ms)"},
	} {
		a := byTarget[target].answers()[0]
		if a.Source != want.source || a.Result != confirm.OutcomeUnknown || !strings.HasPrefix(a.Error, want.err) || a.Location != "fra" {
			t.Errorf("%s: answer %+v, want unknown from %s: %q", target, a.Evidence, want.source, want.err)
		}
		if took := time.Since(byTarget[target].started); target != "queue-full" && took > 10*time.Second {
			t.Errorf("%s finished after %s", target, took)
		}
	}
}

// An exporter without the batch API (404) is asked with single checks,
// and the batch API is not tried again for a while.
func TestDispatcherFallsBackToSingleChecks(t *testing.T) {
	var batchTries, singles atomic.Int64
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.CheckPath:
			singles.Add(1)
			var req api.CheckRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(api.CheckResponse{Location: "old", Target: req.Target, Module: req.Module,
				Result: &result.Result{Success: false, Reason: result.ReasonConnectRefused, Start: time.Now()}})
		default:
			if r.URL.Path == api.CheckBatchPath {
				batchTries.Add(1)
			}
			http.NotFound(w, r)
		}
	}))
	defer old.Close()
	limits := defaultDispatchLimits
	limits.batchSize, limits.requests = 3, 1
	d, done := testDispatcher(t, limits)
	for i := range 7 {
		d.submit(context.Background(), roundOf(fmt.Sprintf("t%d", i), uint64(i), true, 5*time.Second, "old"), map[string][]string{"old": {old.URL}})
	}
	for _, r := range waitRounds(t, done, 7) {
		if a := r.answers()[0]; a.Result != confirm.OutcomeFailure || a.Reason != result.ReasonConnectRefused {
			t.Errorf("round %s: %+v, want the single check's failure", r.req.Key.Target, a.Evidence)
		}
	}
	if b, s := batchTries.Load(), singles.Load(); b != 1 || s != 7 {
		t.Errorf("%d batch requests and %d single checks; want 1 (answered 404) and 7", b, s)
	}
}

// A location that does not answer within the round's timeout is unknown,
// and the round ends at its timeout.
func TestDispatcherEndsRoundsAtTheirTimeout(t *testing.T) {
	bs := newBatchServer(t, true)
	defer close(bs.gate)
	up := newBatchServer(t, false)
	d, done := testDispatcher(t, defaultDispatchLimits)
	start := time.Now()
	d.submit(context.Background(), roundOf("x", 1, false, 500*time.Millisecond, "silent", "up"), map[string][]string{"silent": {bs.URL}, "up": {up.URL}})
	r := waitRounds(t, done, 1)[0]
	took := time.Since(start)
	if took < 500*time.Millisecond || took > 5*time.Second {
		t.Errorf("round ended after %s, want at its 500ms timeout", took)
	}
	got := map[string]confirm.Outcome{}
	for _, a := range r.answers() {
		got[a.Location] = a.Result
	}
	if got["silent"] != confirm.OutcomeUnknown || got["up"] != confirm.OutcomeSuccess {
		t.Errorf("answers %v, want silent unknown and up success", got)
	}
}

// Overload answers are counted per location and are not counted as the
// location's checks.
func TestOverloadAnswersAreCounted(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	now := time.Now()
	r := &round{req: roundOf("https://a.example", 1, true, time.Second, "ams", "fra"), span: trace.SpanFromContext(context.Background()), started: now}
	r.items = []*item{
		{r: r, answer: overload("ams", now, "the coordinator's queue of checks for the location is full (1)")},
		{r: r, answer: checkAnswer{Evidence: confirm.UnknownEvidence("fra", confirm.SourceCheck, now, "no answer"), reachable: true}},
	}
	c.roundDone(r)
	if v := testutil.ToFloat64(c.metrics.overload.WithLabelValues("ams")); v != 1 {
		t.Errorf("overload{ams} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(c.metrics.overload.WithLabelValues("fra")); v != 0 {
		t.Errorf("overload{fra} = %v, want 0", v)
	}
	if v := testutil.ToFloat64(c.metrics.checks.WithLabelValues("ams", "unknown")); v != 0 {
		t.Errorf("checks{ams,unknown} = %v, want 0: an overload answer is no check", v)
	}
	if v := testutil.ToFloat64(c.metrics.checks.WithLabelValues("fra", "unknown")); v != 1 {
		t.Errorf("checks{fra,unknown} = %v, want 1", v)
	}
}
