package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// fakeCanaryProbe is a canary whose checks end when the test says.
type fakeCanaryProbe struct {
	started chan struct{}
	results chan bool
	calls   atomic.Int32
}

func (f *fakeCanaryProbe) probe(ctx context.Context, _ *scheduler.Target) *result.Result {
	f.calls.Add(1)
	f.started <- struct{}{}
	select {
	case ok := <-f.results:
		return &result.Result{Success: ok}
	case <-ctx.Done():
		return &result.Result{}
	}
}

// Waiters share a check that began at or after their start; one that
// began before a waiter's start does not answer it, and no second
// on-demand check runs alongside the first.
func TestCanaryChecksCoalesce(t *testing.T) {
	f := &fakeCanaryProbe{started: make(chan struct{}, 4), results: make(chan bool)}
	target := &scheduler.Target{Module: "tcp_connect", Target: "gw", Timeout: 5 * time.Second, Canary: true}
	c := newCanary(newCanaryState(), func() *scheduler.Target { return target }, f.probe)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.start(ctx)
	defer c.wait()
	defer cancel()

	t0 := time.Now()
	w1, w2 := c.await(t0), c.await(t0)
	<-f.started
	t1 := time.Now() // after the running check began
	w3 := c.await(t1)
	f.results <- true
	for i, w := range []*canaryWait{w1, w2} {
		v, err := w.wait(ctx)
		if err != nil || !v.ok || v.began.Before(t0) {
			t.Fatalf("waiter %d: %+v %v, want the passing check begun after its start", i+1, v, err)
		}
	}
	// w3 needs a check that began after t1: a second one, after the first.
	<-f.started
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("%d checks, want 2", n)
	}
	f.results <- false
	if v, err := w3.wait(ctx); err != nil || v.ok || v.began.Before(t1) {
		t.Fatalf("third waiter: %+v %v, want the failed second check", v, err)
	}
	if ok := c.state.known(); ok == nil || *ok {
		t.Errorf("latest verdict %v, want false", fmtCanary(ok))
	}

	// A scheduled check that began after a waiter's start answers it.
	t2 := time.Now()
	w4 := c.await(t2)
	<-f.started // the on-demand one for w4
	c.observe(canaryVerdict{ok: true, began: time.Now()})
	if v, err := w4.wait(ctx); err != nil || !v.ok {
		t.Fatalf("waiter answered by a scheduled check: %+v %v", v, err)
	}
	// A scheduled verdict that began before the latest one does not
	// replace it.
	c.observe(canaryVerdict{ok: false, began: t0})
	if ok := c.state.known(); ok == nil || !*ok {
		t.Errorf("latest verdict %v after an older check's, want true", fmtCanary(ok))
	}
	f.results <- true
}

// A pending failure is superseded by the target's later outcomes: a
// success ends it unreported; a later failure is what the verdict
// reports, and a failed canary check that began before it does not
// decide it.
func TestPendingFailures(t *testing.T) {
	var sent []api.Report
	tr := newTransitions(func(r api.Report) { sent = append(sent, r) })
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	at := func(s int) time.Time { return time.Unix(int64(1000+s), 0) }
	outcome := func(s int, success bool) scheduler.Outcome {
		return scheduler.Outcome{Target: target, Result: &result.Result{Success: success}, Attempts: 1, Planned: at(s)}
	}

	b := tr.record(outcome(0, false), at(1))
	if b == nil {
		t.Fatal("a first failure must wait for the canary")
	}
	if tr.record(outcome(10, true), at(11)) != nil || len(sent) != 0 {
		t.Fatalf("a success during the wait: %+v", sent)
	}
	if tr.resolve(b, canaryVerdict{ok: true, began: at(2)}) != nil || len(sent) != 0 {
		t.Fatalf("a verdict for a streak a success ended was reported: %+v", sent)
	}

	b = tr.record(outcome(20, false), at(21))
	if tr.record(outcome(30, false), at(31)) != nil {
		t.Fatal("a second wait for one target")
	}
	snap := tr.snapshot([]scheduler.Target{*target}, false, func() uint64 { return 7 }, at(32))
	if len(snap.NotUp) != 1 || snap.NotUp[0].State != api.StateUnknown || !snap.NotUp[0].FirstFailure.Equal(at(20)) || !snap.NotUp[0].Time.Equal(at(30)) || snap.Up != 0 || snap.Seq != 7 {
		t.Errorf("snapshot while waiting: %+v", snap)
	}
	// The canary failed in a check that began before the second failure
	// was taken: unknown, and the wait goes on for the newer failure.
	next := tr.resolve(b, canaryVerdict{ok: false, began: at(22)})
	if next == nil || !next.since.Equal(at(31)) {
		t.Fatalf("next wait %+v, want one since %s", next, at(31))
	}
	if len(sent) != 1 || sent[0].State != api.StateUnknown || !sent[0].Time.Equal(at(30)) || !sent[0].FirstFailure.Equal(at(20)) {
		t.Fatalf("reports %+v, want unknown at 30 from 20", sent)
	}
	if tr.resolve(next, canaryVerdict{ok: true, began: at(32)}) != nil {
		t.Fatal("a passing verdict decides")
	}
	if len(sent) != 2 || sent[1].State != api.StateFailing || !sent[1].FirstFailure.Equal(at(20)) {
		t.Fatalf("reports %+v, want failing from 20", sent)
	}
	if tr.record(outcome(40, false), at(41)) != nil {
		t.Error("a failing target waits for no canary")
	}
	tr.record(outcome(50, true), at(51))
	if len(sent) != 3 || sent[2].State != api.StateRecovered || !sent[2].FirstFailure.Equal(at(20)) {
		t.Errorf("reports %+v, want recovered last, from 20", sent)
	}

	// A streak only ever unknown says nothing about the target: its
	// recovery carries no first failure to read as a failure interval.
	tr.resolve(tr.record(outcome(60, false), at(61)), canaryVerdict{ok: false, began: at(62)})
	tr.record(outcome(70, true), at(71))
	if len(sent) != 5 || sent[3].State != api.StateUnknown || sent[4].State != api.StateRecovered || !sent[4].FirstFailure.IsZero() {
		t.Errorf("reports %+v, want unknown, then recovered without a first failure", sent[3:])
	}
}

// batchLog is an in-process coordinator that keeps every batch.
type batchLog struct {
	mu      sync.Mutex
	batches []api.Batch
	at      []time.Time // when each batch arrived
	answer  atomic.Pointer[api.ReportsAnswer]
	srv     *httptest.Server
}

func newBatchLog(t *testing.T) *batchLog {
	l := &batchLog{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b api.Batch
		if r.URL.Path != api.ReportsPath || json.NewDecoder(r.Body).Decode(&b) != nil {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		l.mu.Lock()
		l.batches = append(l.batches, b)
		l.at = append(l.at, time.Now())
		l.mu.Unlock()
		a := l.answer.Load()
		if a == nil {
			a = &api.ReportsAnswer{Run: "coordinator-1"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(l.srv.Close)
	return l
}

// reports returns every report received with when it arrived.
func (l *batchLog) reports() ([]api.Report, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []api.Report
	var at []time.Time
	for i, b := range l.batches {
		for _, r := range b.Reports {
			out = append(out, r)
			at = append(at, l.at[i])
		}
	}
	return out, at
}

// all returns every batch received, in order.
func (l *batchLog) all() []api.Batch {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]api.Batch(nil), l.batches...)
}

func (l *batchLog) snapshots() []*api.Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*api.Snapshot
	for _, b := range l.batches {
		if b.Snapshot != nil {
			out = append(out, b.Snapshot)
		}
	}
	return out
}

// Targets and canary on one host, equal intervals: when the host stops,
// the location reports its targets unknown, never failing, although the
// canary's latest scheduled check passed just before; and the check API
// says the canary fails.
func TestStoppedCanaryHostMakesFailuresUnknown(t *testing.T) {
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	coord := newBatchLog(t)
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 300ms
scheduler:
  retries: 0
canary:
  module: http_2xx
  target: `+host.URL+`/canary
  interval: 1s
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+host.URL+`/a, `+host.URL+`/b]
`, func(o *Options) {
		o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL}
		o.CoordinatorHeartbeatInterval = 200 * time.Millisecond
	})
	testbin.WaitFor(t, "the canary's success", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		if c, ok := mustParse(t, body)["vantage_exporter_canary_success"]; !ok || c.value(t) != 1 {
			return errors.New("canary not passing yet")
		}
		return nil
	})
	host.Close()
	testbin.WaitFor(t, "both targets reported", 10*time.Second, func() error {
		rs, _ := coord.reports()
		if len(rs) < 2 {
			return fmt.Errorf("%d reports", len(rs))
		}
		return nil
	})
	// A few more intervals: still no failing report.
	time.Sleep(1500 * time.Millisecond)
	rs, _ := coord.reports()
	for _, r := range rs {
		if r.State != api.StateUnknown {
			t.Errorf("report %s %s while the canary's host is down, want unknown", r.State, r.Target)
		}
	}
	code, body := postCheck(t, ts.url, "application/json", `{"target": "`+host.URL+`/a", "module": "http_2xx"}`)
	var resp api.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 || resp.Result.Success || resp.CanaryOK == nil || *resp.CanaryOK {
		t.Errorf("check API answer while target and canary fail: %d %s, want canary_ok false", code, body)
	}
	// The latest batches carry the failing verdict.
	coord.mu.Lock()
	last := coord.batches[len(coord.batches)-1]
	coord.mu.Unlock()
	if last.CanaryOK == nil || *last.CanaryOK {
		t.Errorf("latest batch canary_ok %v, want false", fmtCanary(last.CanaryOK))
	}

	// The host returns: the targets recover without being called failing
	// on the way, although canary checks that began after their last
	// failures pass.
	l, err := net.Listen("tcp", host.Listener.Addr().String())
	if err != nil {
		t.Fatalf("listening on the host's address again: %v", err)
	}
	back := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go func() { _ = back.Serve(l) }()
	defer back.Close()
	testbin.WaitFor(t, "both targets recovered", 10*time.Second, func() error {
		rs, _ := coord.reports()
		n := 0
		for _, r := range rs {
			if r.State == api.StateRecovered {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("%d recovered", n)
		}
		return nil
	})
	rs, _ = coord.reports()
	for _, r := range rs {
		if r.State == api.StateFailing {
			t.Errorf("report %s %s around the host's return", r.State, r.Target)
		}
	}
}

// A target's real failure, with a healthy canary, is reported failing
// once a canary check that began after the failure has passed; the check
// API answers canary_ok true from such a check.
func TestFailureIsReportedAfterTheCanaryPasses(t *testing.T) {
	var mu sync.Mutex
	var canaryAt []time.Time
	var firstFailure time.Time
	var targetUp atomic.Bool
	targetUp.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/canary" {
			canaryAt = append(canaryAt, time.Now())
			return
		}
		if !targetUp.Load() {
			if firstFailure.IsZero() {
				firstFailure = time.Now()
			}
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	coord := newBatchLog(t)
	// The scheduled canary runs once an hour: only an on-demand check
	// can follow the failure.
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 300ms
scheduler:
  retries: 0
canary:
  module: http_2xx
  target: `+srv.URL+`/canary
  interval: 1h
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+srv.URL+`/target]
`, func(o *Options) {
		o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL}
	})
	targetUp.Store(false)
	testbin.WaitFor(t, "a failing report", 10*time.Second, func() error {
		if rs, _ := coord.reports(); len(rs) == 0 {
			return errors.New("no report yet")
		}
		return nil
	})
	rs, at := coord.reports()
	if rs[0].State != api.StateFailing {
		t.Fatalf("report %s, want failing", rs[0].State)
	}
	mu.Lock()
	var after bool
	for _, c := range canaryAt {
		after = after || (c.After(firstFailure) && c.Before(at[0]))
	}
	mu.Unlock()
	if !after {
		t.Errorf("failing report at %s with no canary check between the failure at %s and it (canary checks %v)", at[0], firstFailure, canaryAt)
	}
	code, body := postCheck(t, ts.url, "application/json", `{"target": "`+srv.URL+`/target", "module": "http_2xx"}`)
	var resp api.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 || resp.Result.Success || resp.CanaryOK == nil || !*resp.CanaryOK {
		t.Errorf("check API answer for a failing target with a healthy canary: %d %s, want canary_ok true", code, body)
	}
}

// GET /api/v1/status names the location, the run of its batches and the
// canary's verdict, behind the check API's token.
func TestStatus(t *testing.T) {
	canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer canary.Close()
	coord := newBatchLog(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 300ms
canary:
  module: http_2xx
  target: `+canary.URL+`
  interval: 1s
`, func(o *Options) {
		o.Location, o.CoordinatorURLs, o.APITokenFile = "ams", []string{coord.srv.URL}, tokenFile
		o.CoordinatorHeartbeatInterval = 100 * time.Millisecond
	})
	if code, _ := mustGet(t, ts.url+api.StatusPath); code != http.StatusUnauthorized {
		t.Errorf("status without the token: %d, want 401", code)
	}
	var st api.Status
	testbin.WaitFor(t, "the canary's verdict in the status", 10*time.Second, func() error {
		code, body := mustGet(t, ts.url+api.StatusPath, "Authorization", "Bearer s3cret")
		if code != 200 {
			return fmt.Errorf("status %d: %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return err
		}
		if st.CanaryOK == nil {
			return errors.New("no canary_ok yet")
		}
		return nil
	})
	testbin.WaitFor(t, "a batch", 10*time.Second, func() error {
		coord.mu.Lock()
		defer coord.mu.Unlock()
		if len(coord.batches) == 0 {
			return errors.New("no batch yet")
		}
		return nil
	})
	coord.mu.Lock()
	run := coord.batches[0].Run
	coord.mu.Unlock()
	if st.Location != "ams" || st.Run != run || st.Run == "" || !*st.CanaryOK {
		t.Errorf("status %+v, want location ams, the batches' run %q and canary_ok true", st, run)
	}
}

func TestCoordinatorURLNeedsLocation(t *testing.T) {
	opts := DefaultOptions()
	opts.CoordinatorURLs = []string{"http://127.0.0.1:9716"}
	_, err := New(opts)
	if err == nil || err.Error() != "--coordinator.url needs --location: the coordinator takes reports only from the locations it lists, by name" {
		t.Errorf("New without --location: %v", err)
	}
}

// Snapshots tell every scheduled target's state: the failing one with its
// streak, the others as a count and digest, listed when asked for.
func TestSnapshotsOfScheduledTargets(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	coord := newBatchLog(t)
	mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 300ms
scheduler:
  retries: 0
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+up.URL+`, `+down.URL+`]
`, func(o *Options) {
		o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL}
		o.CoordinatorHeartbeatInterval = 100 * time.Millisecond
	})
	testbin.WaitFor(t, "the failing report", 10*time.Second, func() error {
		if rs, _ := coord.reports(); len(rs) == 0 {
			return errors.New("no report yet")
		}
		return nil
	})
	if first := coord.snapshots(); len(first) == 0 {
		t.Fatal("no snapshot with the first delivery")
	}
	n := len(coord.snapshots())
	coord.answer.Store(&api.ReportsAnswer{Run: "coordinator-2", WantTargets: true})
	var snap *api.Snapshot
	testbin.WaitFor(t, "a snapshot for the restarted coordinator", 10*time.Second, func() error {
		s := coord.snapshots()
		if len(s) <= n {
			return errors.New("none yet")
		}
		snap = s[len(s)-1]
		return nil
	})
	rs, _ := coord.reports()
	var upDigest api.Digest
	upDigest.Add(api.TargetKey{Target: up.URL, Module: "http_2xx"})
	if len(snap.NotUp) != 1 || snap.NotUp[0].Target != down.URL || snap.NotUp[0].State != api.StateFailing ||
		!snap.NotUp[0].FirstFailure.Equal(rs[0].FirstFailure) || snap.NotUp[0].Time.Before(rs[0].Time) {
		t.Errorf("not up %+v, want the failing target from %s", snap.NotUp, rs[0].FirstFailure)
	}
	if snap.Up != 1 || snap.UpDigest != upDigest.String() || snap.Seq < rs[0].Seq {
		t.Errorf("snapshot %+v: want 1 up with digest %s, seq at least %d", snap, upDigest.String(), rs[0].Seq)
	}
	// want_targets is asked on every answer here; a later snapshot lists them.
	testbin.WaitFor(t, "a snapshot listing the up targets", 10*time.Second, func() error {
		for _, s := range coord.snapshots() {
			if len(s.UpTargets) == 1 && s.UpTargets[0].Target == up.URL {
				return nil
			}
		}
		return errors.New("none yet")
	})
}
