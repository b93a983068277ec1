package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// intake is an in-process coordinator report endpoint that can be switched
// to fail.
type intake struct {
	mu      sync.Mutex
	got     []api.Report
	batches int
	run     string       // the first batch's run
	status  atomic.Int32 // answered status; 0 means 202
	srv     *httptest.Server
}

func newIntake(t *testing.T) *intake {
	in := &intake{}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		in.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(in.srv.Close)
	return in
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
	reg := prometheus.NewRegistry()
	opts.Registerer = reg
	opts.Location = "ams"
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	r := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx, time.Second) }()
	return r, reg, func() { cancel(); <-done }
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
	if v := testutil.ToFloat64(r.delivered.WithLabelValues(in.srv.URL)); v != 50 {
		t.Errorf("delivered counter = %v", v)
	}
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
