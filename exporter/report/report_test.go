package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/liveness"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// intake is an in-process coordinator report endpoint that can be switched
// to fail.
type intake struct {
	mu      sync.Mutex
	got     []api.Report
	batches int
	all     []api.Batch  // every batch accepted
	run     string       // the first batch's run
	status  atomic.Int32 // answered status; 0 means 202
	// answer, when set, is the ReportsAnswer of accepted batches; next,
	// when set, that of the next one only.
	answer atomic.Pointer[api.ReportsAnswer]
	next   atomic.Pointer[api.ReportsAnswer]
	// hold, when set, keeps each request waiting until it is closed;
	// held gets a value for each request that waits.
	hold atomic.Pointer[chan struct{}]
	held chan struct{}
	srv  *httptest.Server
}

func newIntake(t *testing.T) *intake {
	in := &intake{held: make(chan struct{}, 16)}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := in.hold.Load(); h != nil {
			in.held <- struct{}{}
			<-*h
		}
		if r.URL.Path != api.ReportsPath || r.Method != http.MethodPost {
			http.Error(w, "wrong endpoint", http.StatusNotFound)
			return
		}
		if st := in.status.Load(); st != 0 {
			http.Error(w, "down", int(st))
			return
		}
		var b api.Batch
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if b.Location != "ams" {
			http.Error(w, "unknown location", http.StatusBadRequest)
			return
		}
		in.mu.Lock()
		if in.run == "" {
			in.run = b.Run
		}
		if len(b.Run) != 16 || b.Run != in.run {
			in.mu.Unlock()
			http.Error(w, fmt.Sprintf("run %q: want the same 16 hex digits in every batch of one reporter (first: %q)", b.Run, in.run), http.StatusBadRequest)
			return
		}
		in.got = append(in.got, b.Reports...)
		in.batches++
		in.all = append(in.all, b)
		in.mu.Unlock()
		a := in.next.Swap(nil)
		if a == nil {
			a = in.answer.Load()
		}
		if a != nil {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(a)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(in.srv.Close)
	return in
}

// snapshots returns the snapshots received, in order.
func (in *intake) snapshots() []*api.Snapshot {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []*api.Snapshot
	for _, b := range in.all {
		if b.Snapshot != nil {
			out = append(out, b.Snapshot)
		}
	}
	return out
}

// hasSnapshots is a testbin.WaitFor condition: in has received at least n
// snapshots.
func (in *intake) hasSnapshots(n int) func() error {
	return func() error {
		if got := len(in.snapshots()); got < n {
			return fmt.Errorf("%d snapshots received, want %d", got, n)
		}
		return nil
	}
}

func (in *intake) received() []api.Report {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]api.Report(nil), in.got...)
}

// hasReceived is a testbin.WaitFor condition: in has received n reports.
func (in *intake) hasReceived(n int) func() error {
	return func() error {
		if got := len(in.received()); got != n {
			return fmt.Errorf("%d reports received, want %d", got, n)
		}
		return nil
	}
}

// waitLimit bounds each wait of these tests.
const waitLimit = 10 * time.Second

func report(i int) api.Report {
	return api.Report{Target: fmt.Sprintf("https://t%d.example", i), Module: "http_2xx", State: api.StateFailing,
		Time: time.Unix(int64(1000+i), 0), Attempts: 3, Result: &result.Result{Reason: result.ReasonConnectRefused}}
}

func start(t *testing.T, opts Options) (*Reporter, *prometheus.Registry, func()) {
	r, reg := newReporter(opts)
	return r, reg, run(r)
}

// newReporter builds a reporter of location ams with quick retries.
func newReporter(opts Options) (*Reporter, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Location = "ams"
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	return New(opts), reg
}

// run delivers until the returned stop is called.
func run(r *Reporter) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, time.Second) }()
	return func() { cancel(); <-done }
}

func TestDeliversInOrderInBatches(t *testing.T) {
	in := newIntake(t)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, BatchSize: 7})
	defer stop()
	for i := range 50 {
		r.Send(report(i))
	}
	testbin.WaitFor(t, "50 reports", waitLimit, in.hasReceived(50))
	for i, rep := range in.received() {
		if rep.Seq != uint64(i+1) || rep.Target != report(i).Target || rep.Result.Reason != result.ReasonConnectRefused {
			t.Fatalf("report %d = seq %d %s, want seq %d %s", i, rep.Seq, rep.Target, i+1, report(i).Target)
		}
	}
	if in.batches < 8 {
		t.Errorf("%d batches for 50 reports of at most 7, want at least 8", in.batches)
	}
	// The counter moves once the coordinator's answer is read, after the
	// coordinator has taken the batch.
	testbin.WaitFor(t, "50 reports counted as delivered", waitLimit, func() error {
		if v := testutil.ToFloat64(r.delivered.WithLabelValues(in.srv.URL)); v != 50 {
			return fmt.Errorf("delivered counter = %v", v)
		}
		return nil
	})
}

func TestRetriesUntilTheCoordinatorReturns(t *testing.T) {
	in := newIntake(t)
	in.status.Store(http.StatusServiceUnavailable)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, BatchSize: 3})
	defer stop()
	for i := range 10 {
		r.Send(report(i))
	}
	testbin.WaitFor(t, "failed delivery attempts", waitLimit, func() error {
		if v := testutil.ToFloat64(r.failures.WithLabelValues(in.srv.URL)); v < 3 {
			return fmt.Errorf("%v failed deliveries, want 3", v)
		}
		return nil
	})
	if n := len(in.received()); n != 0 {
		t.Fatalf("%d reports accepted while the coordinator was down", n)
	}
	in.status.Store(0)
	testbin.WaitFor(t, "all 10 reports after the outage", waitLimit, in.hasReceived(10))
	for i, rep := range in.received() {
		if rep.Seq != uint64(i+1) {
			t.Fatalf("report %d has seq %d: out of order or duplicated", i, rep.Seq)
		}
	}
	if v := testutil.ToFloat64(r.dropped.WithLabelValues(in.srv.URL, "overflow")); v != 0 {
		t.Errorf("dropped %v reports", v)
	}
}

func TestOverflowDropsTheOldestAndCountsIt(t *testing.T) {
	in := newIntake(t)
	in.status.Store(http.StatusBadGateway)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, BufferSize: 5, BatchSize: 2})
	defer stop()
	for i := range 8 {
		r.Send(report(i))
	}
	if v := testutil.ToFloat64(r.dropped.WithLabelValues(in.srv.URL, "overflow")); v != 3 {
		t.Errorf("overflow drops = %v, want 3", v)
	}
	in.status.Store(0)
	testbin.WaitFor(t, "the 5 buffered reports", waitLimit, in.hasReceived(5))
	// The three oldest reports not in flight at the overflow are gone:
	// 1–3, or 3–5 when a batch of 1 and 2 was being delivered. Whatever
	// was dropped is never delivered, and the rest arrive in order.
	got := in.received()
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("reports out of order: %d after %d", got[i].Seq, got[i-1].Seq)
		}
	}
	if got[2].Seq != 6 || got[3].Seq != 7 || got[4].Seq != 8 {
		t.Errorf("delivered seqs %d %d %d %d %d: the newest three must survive", got[0].Seq, got[1].Seq, got[2].Seq, got[3].Seq, got[4].Seq)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(in.received()); n != 5 {
		t.Errorf("%d reports delivered, want 5 (8 sent, 3 dropped)", n)
	}
}

func TestRejectedBatchIsDroppedNotRetriedForever(t *testing.T) {
	in := newIntake(t)
	in.status.Store(http.StatusBadRequest)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, BatchSize: 2})
	defer stop()
	r.Send(report(0))
	r.Send(report(1))
	testbin.WaitFor(t, "the rejection to be counted", waitLimit, func() error {
		if v := testutil.ToFloat64(r.dropped.WithLabelValues(in.srv.URL, "rejected")); v != 2 {
			return fmt.Errorf("%v reports dropped as rejected, want 2", v)
		}
		return nil
	})
	in.status.Store(0)
	r.Send(report(2))
	testbin.WaitFor(t, "the next report", waitLimit, in.hasReceived(1))
	if got := in.received()[0].Seq; got != 3 {
		t.Errorf("delivered seq %d after a rejection, want 3", got)
	}
}

func TestEveryCoordinatorGetsEveryReport(t *testing.T) {
	a, b := newIntake(t), newIntake(t)
	b.status.Store(http.StatusServiceUnavailable)
	r, _, stop := start(t, Options{URLs: []string{a.srv.URL, b.srv.URL}})
	defer stop()
	for i := range 4 {
		r.Send(report(i))
	}
	testbin.WaitFor(t, "the healthy coordinator's reports", waitLimit, a.hasReceived(4))
	b.status.Store(0)
	testbin.WaitFor(t, "the recovered coordinator's reports", waitLimit, b.hasReceived(4))
}

func TestShutdownFlushesPendingReports(t *testing.T) {
	in := newIntake(t)
	// The coordinator fails the first delivery and the retry waits an
	// hour: only the shutdown flush can deliver in time.
	in.status.Store(http.StatusServiceUnavailable)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	r.Send(report(0))
	r.Send(report(1))
	testbin.WaitFor(t, "a failed delivery", waitLimit, func() error {
		if v := testutil.ToFloat64(r.failures.WithLabelValues(in.srv.URL)); v == 0 {
			return errors.New("no failed delivery yet")
		}
		return nil
	})
	in.status.Store(0)
	stop()
	if n := len(in.received()); n != 2 {
		t.Errorf("%d reports delivered at shutdown, want 2", n)
	}
}

func TestConcurrentSendsStayInSequenceOrder(t *testing.T) {
	in := newIntake(t)
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, BatchSize: 10})
	defer stop()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 250 {
				r.Send(report(g*1000 + i))
			}
		})
	}
	wg.Wait()
	testbin.WaitFor(t, "2000 reports", waitLimit, in.hasReceived(2000))
	for i, rep := range in.received() {
		if rep.Seq != uint64(i+1) {
			t.Fatalf("report %d has seq %d: delivered out of sequence order, which a coordinator drops as a redelivery", i, rep.Seq)
		}
	}
}

// fakeState is the snapshot source of these tests: the number of the
// latest report sent, and whether UpTargets were asked for.
type fakeState struct {
	r atomic.Pointer[Reporter]
}

func (f *fakeState) snapshot(withTargets bool) *api.Snapshot {
	s := &api.Snapshot{Seq: f.r.Load().Seq(), Time: time.Now(), NotUp: []api.Report{}, Up: 1}
	var d api.Digest
	k := api.TargetKey{Target: "https://up.example", Module: "http_2xx"}
	d.Add(k)
	s.UpDigest = d.String()
	if withTargets {
		s.UpTargets = []api.TargetKey{k}
	}
	return s
}

func startWithState(t *testing.T, opts Options) (*Reporter, *fakeState, *prometheus.Registry, func()) {
	st := &fakeState{}
	opts.Snapshot = st.snapshot
	// The snapshot source reads the reporter: set it before the first
	// delivery, which carries a snapshot.
	r, reg := newReporter(opts)
	st.r.Store(r)
	return r, st, reg, run(r)
}

// Each coordinator gets a batch every heartbeat interval even with nothing
// to report, carrying the canary's verdict.
func TestHeartbeatsCarryTheCanaryVerdict(t *testing.T) {
	in := newIntake(t)
	_, _, stop := start(t, Options{URLs: []string{in.srv.URL}, HeartbeatInterval: 50 * time.Millisecond, Canary: func() *bool { return new(false) }})
	defer stop()
	testbin.WaitFor(t, "three heartbeats", waitLimit, func() error {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.batches < 3 {
			return fmt.Errorf("%d batches", in.batches)
		}
		return nil
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, b := range in.all {
		if len(b.Reports) != 0 || b.Reports == nil || b.CanaryOK == nil || *b.CanaryOK {
			t.Fatalf("heartbeat %+v: want no reports (an empty list) and canary_ok false", b)
		}
		if b.Snapshot != nil {
			t.Fatalf("a snapshot without a snapshot source: %+v", b.Snapshot)
		}
	}
}

// A snapshot goes with the run's first delivery, when the coordinator's
// run changes, when it asks for one (with the up targets when it asks for
// them), and every snapshot interval; not with every batch.
func TestSnapshotsWhenTheCoordinatorNeedsThem(t *testing.T) {
	in := newIntake(t)
	in.answer.Store(&api.ReportsAnswer{Run: "c1"})
	r, _, _, stop := startWithState(t, Options{URLs: []string{in.srv.URL}, HeartbeatInterval: 50 * time.Millisecond, SnapshotInterval: time.Hour})
	defer stop()
	r.Send(report(0))
	testbin.WaitFor(t, "the first snapshot", waitLimit, in.hasSnapshots(1))
	first := in.snapshots()[0]
	if first.Up != 1 || first.UpDigest == "" || first.UpTargets != nil {
		t.Errorf("first snapshot %+v: want the up count and digest, no list", first)
	}
	// Heartbeats follow without snapshots while nothing changes.
	testbin.WaitFor(t, "heartbeats", waitLimit, func() error {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.batches < 4 {
			return fmt.Errorf("%d batches", in.batches)
		}
		return nil
	})
	if n := len(in.snapshots()); n != 1 {
		t.Fatalf("%d snapshots with an unchanged coordinator, want 1", n)
	}

	// The coordinator restarted: a new run.
	in.answer.Store(&api.ReportsAnswer{Run: "c2"})
	testbin.WaitFor(t, "a snapshot for the new run", waitLimit, in.hasSnapshots(2))

	// It asks for a snapshot with its up targets.
	in.next.Store(&api.ReportsAnswer{Run: "c2", WantSnapshot: true, WantTargets: true})
	testbin.WaitFor(t, "a snapshot asked for", waitLimit, in.hasSnapshots(3))
	snaps := in.snapshots()
	if got := snaps[2]; len(got.UpTargets) != 1 || got.UpTargets[0].Target != "https://up.example" {
		t.Errorf("snapshot after want_targets: up_targets %+v", got.UpTargets)
	}
	r.Send(report(1))
	testbin.WaitFor(t, "the second report", waitLimit, in.hasReceived(2))
	time.Sleep(200 * time.Millisecond)
	n := len(in.snapshots())
	if n != 3 {
		t.Errorf("%d snapshots: want one per reason (first delivery, new run, asked), not one per batch", n)
	}
	in.next.Store(&api.ReportsAnswer{Run: "c2", WantSnapshot: true})
	testbin.WaitFor(t, "a snapshot asked for without the targets", waitLimit, in.hasSnapshots(n+1))
	if last := in.snapshots()[n]; last.UpTargets != nil || last.Seq != 2 {
		t.Errorf("snapshot %+v: want seq 2 and no up targets (not asked for again)", last)
	}
}

func TestPeriodicSnapshots(t *testing.T) {
	in := newIntake(t)
	_, _, _, stop := startWithState(t, Options{URLs: []string{in.srv.URL}, HeartbeatInterval: time.Hour, SnapshotInterval: 100 * time.Millisecond})
	defer stop()
	testbin.WaitFor(t, "three snapshots", waitLimit, in.hasSnapshots(3))
}

// A snapshot's Seq covers every report of its batch, and reports
// numbered above it come after it.
func TestSnapshotCoversItsBatch(t *testing.T) {
	in := newIntake(t)
	in.status.Store(http.StatusServiceUnavailable)
	r, _, _, stop := startWithState(t, Options{URLs: []string{in.srv.URL}, BatchSize: 3, HeartbeatInterval: time.Hour})
	defer stop()
	for i := range 7 {
		r.Send(report(i))
	}
	in.status.Store(0)
	testbin.WaitFor(t, "7 reports", waitLimit, in.hasReceived(7))
	in.mu.Lock()
	defer in.mu.Unlock()
	var snapBatch *api.Batch
	for i, b := range in.all {
		if b.Snapshot == nil {
			continue
		}
		snapBatch = &in.all[i]
		for _, rep := range b.Reports {
			if rep.Seq > b.Snapshot.Seq {
				t.Errorf("report %d in a batch whose snapshot has seq %d", rep.Seq, b.Snapshot.Seq)
			}
		}
		for _, later := range in.all[i+1:] {
			for _, rep := range later.Reports {
				if rep.Seq <= b.Snapshot.Seq {
					t.Errorf("report %d after the snapshot with seq %d that includes it", rep.Seq, b.Snapshot.Seq)
				}
			}
		}
	}
	if snapBatch == nil {
		t.Fatal("no snapshot with the run's first delivery")
	}
}

// Overflow drops an older report of a target with a newer one queued, so
// every target's latest report survives, and the coordinator gets a
// snapshot after it.
func TestOverflowKeepsEachTargetsLatestReport(t *testing.T) {
	in := newIntake(t)
	r, _, reg, stop := startWithState(t, Options{URLs: []string{in.srv.URL}, BufferSize: 4, BatchSize: 10, MinBackoff: 20 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond})
	defer stop()
	// The first delivery of the run carries a snapshot: let it through,
	// so the snapshot seen later is the overflow's.
	testbin.WaitFor(t, "the first snapshot", waitLimit, in.hasSnapshots(1))
	// Hold the next delivery, a heartbeat with no reports: the reports
	// sent meanwhile all wait in the buffer, none in flight.
	release := make(chan struct{})
	in.hold.Store(&release)
	select {
	case <-in.held:
	case <-time.After(waitLimit):
		t.Fatal("no heartbeat within the wait limit")
	}

	// Targets 0..3 fill the buffer; then 0, 1 and 2 again: their older
	// reports go, and target 3 keeps its only one.
	a := func(i int, state string) api.Report {
		rep := report(i)
		rep.State = state
		return rep
	}
	for i := range 4 {
		r.Send(a(i, api.StateFailing))
	}
	for i := range 3 {
		r.Send(a(i, api.StateRecovered))
	}
	if v := testutil.ToFloat64(r.dropped.WithLabelValues(in.srv.URL, "overflow")); v != 3 {
		t.Errorf("overflow drops = %v, want 3", v)
	}
	in.hold.Store(nil)
	close(release)
	testbin.WaitFor(t, "the 4 kept reports", waitLimit, in.hasReceived(4))
	testbin.WaitFor(t, "a snapshot after the overflow", waitLimit, in.hasSnapshots(2))
	latest := map[string]string{}
	for _, rep := range in.received() {
		latest[rep.Target] = rep.State
	}
	for i := range 4 {
		want := api.StateRecovered
		if i == 3 {
			want = api.StateFailing
		}
		if got := latest[report(i).Target]; got != want {
			t.Errorf("target %d: latest delivered state %q, want %q", i, got, want)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP vantage_exporter_reports_dropped_total State-change reports given up: overflow when the buffer was full (an older report of a target with a newer one queued, or else the oldest), rejected when the coordinator refused them as invalid. Either way the coordinator gets a snapshot next.
# TYPE vantage_exporter_reports_dropped_total counter
vantage_exporter_reports_dropped_total{coordinator="`+in.srv.URL+`",reason="overflow"} 3
vantage_exporter_reports_dropped_total{coordinator="`+in.srv.URL+`",reason="rejected"} 0
`), "vantage_exporter_reports_dropped_total"); err != nil {
		t.Error(err)
	}
}

// A rejected batch's reports are lost to the coordinator: it gets a
// snapshot once it accepts batches again.
func TestRejectionLeadsToASnapshot(t *testing.T) {
	in := newIntake(t)
	r, _, _, stop := startWithState(t, Options{URLs: []string{in.srv.URL}, HeartbeatInterval: 50 * time.Millisecond, SnapshotInterval: time.Hour})
	defer stop()
	testbin.WaitFor(t, "the first snapshot", waitLimit, in.hasSnapshots(1))
	in.status.Store(http.StatusBadRequest)
	r.Send(report(0))
	testbin.WaitFor(t, "the rejection", waitLimit, func() error {
		if v := testutil.ToFloat64(r.dropped.WithLabelValues(in.srv.URL, "rejected")); v != 1 {
			return fmt.Errorf("%v rejected", v)
		}
		return nil
	})
	in.status.Store(0)
	testbin.WaitFor(t, "a snapshot after the rejection", waitLimit, in.hasSnapshots(2))
	if got := in.snapshots()[1].Seq; got != 1 {
		t.Errorf("snapshot seq %d, want 1: it includes the rejected report", got)
	}
}

func TestQueuedReportsStallTheDeliveryClockUntilDelivered(t *testing.T) {
	in := newIntake(t)
	clocks := liveness.NewSet("exporter")
	var r *Reporter
	delivered := clocks.Add("report_delivered", func() time.Duration { return 300 * time.Millisecond },
		func(now time.Time) (time.Time, bool) { return r.Waiting(now) })
	r, _, stop := start(t, Options{URLs: []string{in.srv.URL}, Delivered: delivered, HeartbeatInterval: 50 * time.Millisecond,
		Degraded: func() []string { return []string{api.ReasonSchedulerLag} }})
	defer stop()
	testbin.WaitFor(t, "a heartbeat accepted", waitLimit, func() error {
		if delivered.Last().IsZero() {
			return errors.New("report_delivered has not advanced")
		}
		return nil
	})
	// The coordinator refuses every batch; with nothing queued no work is
	// due, so the failed heartbeats are no stall.
	in.status.Store(http.StatusServiceUnavailable)
	time.Sleep(500 * time.Millisecond)
	if got := clocks.Unhealthy(); len(got) != 0 {
		t.Errorf("nothing queued, the coordinator refusing: %q, want no stall", got)
	}
	r.Send(report(0))
	testbin.WaitFor(t, "report_delivered stalled", waitLimit, func() error {
		if got := clocks.Unhealthy(); len(got) != 1 || !strings.HasPrefix(got[0], "report_delivered: ") {
			return fmt.Errorf("unhealthy %q", got)
		}
		return nil
	})
	in.status.Store(0)
	testbin.WaitFor(t, "the report delivered and the clock well", waitLimit, func() error {
		if got := clocks.Unhealthy(); len(got) != 0 || len(in.received()) != 1 {
			return fmt.Errorf("unhealthy %q, %d reports received", got, len(in.received()))
		}
		return nil
	})
	in.mu.Lock()
	defer in.mu.Unlock()
	if b := in.all[len(in.all)-1]; len(b.Degraded) != 1 || b.Degraded[0] != api.ReasonSchedulerLag {
		t.Errorf("batch degraded %q, want scheduler_lag", b.Degraded)
	}
}
