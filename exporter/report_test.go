package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/testbin"
)

func TestStateChangesAreReportedToTheCoordinator(t *testing.T) {
	var healthy atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()
	coord := newBatchLog(t)
	reports := func() []api.Report {
		rs, _ := coord.reports()
		return rs
	}

	mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 500ms
scheduler:
  retries: 0
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+target.URL+`]
`, func(o *Options) {
		o.Location = "ams"
		o.CoordinatorURLs = []string{coord.srv.URL}
	})

	testbin.WaitFor(t, "a failing report", 10*time.Second, func() error {
		if n := len(reports()); n < 1 {
			return errors.New("no report yet")
		}
		return nil
	})
	// Several more failed checks pass without another report.
	time.Sleep(2500 * time.Millisecond)
	if n := len(reports()); n != 1 {
		t.Fatalf("%d reports while the target kept failing, want only the change", n)
	}
	healthy.Store(true)
	testbin.WaitFor(t, "a recovered report", 10*time.Second, func() error {
		if n := len(reports()); n < 2 {
			return fmt.Errorf("%d reports, want 2", n)
		}
		return nil
	})

	rs := reports()
	fail, rec := rs[0], rs[1]
	for _, b := range coord.all() {
		if b.Location != "ams" {
			t.Errorf("batch location %q", b.Location)
		}
	}
	if fail.State != api.StateFailing || fail.Target != target.URL || fail.Module != "http_2xx" ||
		fail.Result == nil || fail.Result.Reason != "status_code" || fail.FirstFailure.IsZero() || fail.Attempts != 1 {
		t.Errorf("failing report = %+v", fail)
	}
	if rec.State != api.StateRecovered || !rec.Result.Success || !rec.FirstFailure.Equal(fail.FirstFailure) || !rec.Time.After(fail.Time) {
		t.Errorf("recovered report = %+v (failing one first failed at %s)", rec, fail.FirstFailure)
	}
	if rec.Seq != fail.Seq+1 {
		t.Errorf("seqs %d then %d, want consecutive", fail.Seq, rec.Seq)
	}
}

func TestCoordinatorURLMustBeHTTP(t *testing.T) {
	opts := DefaultOptions()
	opts.CoordinatorURLs = []string{"http://127.0.0.1:9716", "127.0.0.1:9716"}
	_, err := New(opts)
	if err == nil || err.Error() != `--coordinator.url "127.0.0.1:9716" is not an http(s) URL` {
		t.Errorf("New accepted a coordinator URL without scheme: %v", err)
	}
}

func TestFailingCanaryMakesFailuresUnknown(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	coord := newBatchLog(t)
	// The canary is a port nothing listens on: this "location" is cut off.
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 500ms
  tcp_connect:
    prober: tcp
    timeout: 500ms
scheduler:
  retries: 0
canary:
  module: tcp_connect
  target: `+testbin.FreeAddr(t)+`
  interval: 1s
targets:
  - module: http_2xx
    interval: 3s
    targets: [`+down.URL+`]
`, func(o *Options) { o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL} })

	var fams map[string]*familyView
	testbin.WaitFor(t, "the canary's failure and the target's result on /metrics", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		fams = mustParse(t, body)
		c, ok := fams["vantage_exporter_canary_success"]
		_, scheduled := fams["probe_success"]
		switch {
		case !ok:
			return errors.New("no vantage_exporter_canary_success yet")
		case c.value(t) != 0:
			return fmt.Errorf("vantage_exporter_canary_success = %v", c.value(t))
		case !scheduled:
			return errors.New("no probe_success of the scheduled target yet")
		}
		return nil
	})
	// Only the scheduled target has series: the canary judges the location.
	if f := fams["probe_success"]; len(f.samples) != 1 || f.samples[0].labels["target"] != down.URL {
		t.Errorf("probe_success series: %+v, want only the scheduled target's", f.samples)
	}
	code, body := postCheck(t, ts.url, "application/json", `{"target": "`+down.URL+`", "module": "http_2xx"}`)
	var resp api.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 || resp.CanaryOK == nil || *resp.CanaryOK {
		t.Errorf("check API answer does not say the canary fails: %d %s", code, body)
	}
	var got []api.Report
	testbin.WaitFor(t, "a report", 10*time.Second, func() error {
		if got, _ = coord.reports(); len(got) == 0 {
			return errors.New("no report yet")
		}
		return nil
	})
	if got[0].State != api.StateUnknown || got[0].Target != down.URL {
		t.Errorf("report while the canary fails = %s %s, want unknown", got[0].State, got[0].Target)
	}
}

// Every batch carries the location's canary verdict, so the coordinator
// reads it instead of inferring it from the reports' states.
func TestBatchesCarryTheCanaryVerdict(t *testing.T) {
	var canaryUp, targetUp atomic.Bool
	canaryUp.Store(true)
	targetUp.Store(true)
	serve := func(up *atomic.Bool) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !up.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(s.Close)
		return s
	}
	canary, target := serve(&canaryUp), serve(&targetUp)
	coord := newBatchLog(t)
	// batchWith returns the batch that carried a report in state, nil
	// before one arrived.
	batchWith := func(state string) *api.Batch {
		batches := coord.all()
		for i := range batches {
			for _, r := range batches[i].Reports {
				if r.State == state {
					return &batches[i]
				}
			}
		}
		return nil
	}
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 500ms
scheduler:
  retries: 0
canary:
  module: http_2xx
  target: `+canary.URL+`
  interval: 1s
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+target.URL+`]
`, func(o *Options) { o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL} })
	canaryIs := func(v float64) func() error {
		return func() error {
			_, body := mustGet(t, ts.url+"/metrics")
			c, ok := mustParse(t, body)["vantage_exporter_canary_success"]
			if !ok {
				return errors.New("no vantage_exporter_canary_success yet")
			}
			if got := c.value(t); got != v {
				return fmt.Errorf("vantage_exporter_canary_success = %v", got)
			}
			return nil
		}
	}
	batchIn := func(state string) func() error {
		return func() error {
			if batchWith(state) == nil {
				return fmt.Errorf("no report in state %s yet", state)
			}
			return nil
		}
	}

	testbin.WaitFor(t, "the canary's first success", 10*time.Second, canaryIs(1))
	targetUp.Store(false)
	testbin.WaitFor(t, "a failing report", 10*time.Second, batchIn(api.StateFailing))
	if b := batchWith(api.StateFailing); b.CanaryOK == nil || !*b.CanaryOK {
		t.Errorf("batch sent while the canary passes has canary_ok %v, want true", fmtCanary(b.CanaryOK))
	}

	canaryUp.Store(false)
	testbin.WaitFor(t, "the canary's failure", 10*time.Second, canaryIs(0))
	targetUp.Store(true)
	testbin.WaitFor(t, "a recovered report", 10*time.Second, batchIn(api.StateRecovered))
	if b := batchWith(api.StateRecovered); b.CanaryOK == nil || *b.CanaryOK {
		t.Errorf("batch sent while the canary fails has canary_ok %v, want false", fmtCanary(b.CanaryOK))
	}
}

func fmtCanary(ok *bool) string {
	if ok == nil {
		return "absent"
	}
	return strconv.FormatBool(*ok)
}
