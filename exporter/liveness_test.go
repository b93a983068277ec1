package exporter

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// congestedConfig checks six failing targets every second, each check
// taking 300ms, with maxInFlight slots.
func congestedConfig(url string, maxInFlight int) string {
	var targets []string
	for i := range 6 {
		targets = append(targets, fmt.Sprintf("%s/t%d", url, i))
	}
	return fmt.Sprintf(`
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  max_in_flight: %d
  retries: 0
targets:
  - module: http_2xx
    interval: 1s
    targets: [%s]
`, maxInFlight, strings.Join(targets, ", "))
}

// degradedSeries reads vantage_exporter_degraded{reason} from /metrics.
func degradedSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	_, body := mustGet(t, url+"/metrics")
	f := mustFamily(t, mustParse(t, body), "vantage_exporter_degraded")
	out := map[string]float64{}
	for _, reason := range scheduler.DegradedReasons {
		out[reason] = f.value(t, "reason", reason)
	}
	return out
}

func TestACongestedExporterReportsUnknownUntilItRecovers(t *testing.T) {
	var failing atomic.Bool
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer slow.Close()
	coord := newBatchLog(t)
	// One slot for 1.8s of checks a second: checks start late and some
	// cannot start at all.
	ts := mustStart(t, congestedConfig(slow.URL, 1), func(o *Options) {
		o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL}
		o.CoordinatorHeartbeatInterval = 200 * time.Millisecond
		o.SchedulerBounds = scheduler.Bounds{MaxLag: 200 * time.Millisecond, MaxMissedRatio: 0.1, StaleAfter: 3, Window: 2 * time.Second}
	})

	testbin.WaitFor(t, "the exporter judging itself degraded", 15*time.Second, func() error {
		for _, v := range degradedSeries(t, ts.url) {
			if v == 1 {
				return nil
			}
		}
		return errors.New("vantage_exporter_degraded all 0")
	})
	// The targets fail now, while the exporter cannot vouch for its
	// results.
	failing.Store(true)
	var unknown api.Report
	testbin.WaitFor(t, "an unknown report naming why", 15*time.Second, func() error {
		reports, _ := coord.reports()
		for _, r := range reports {
			if r.State == api.StateFailing {
				return fmt.Errorf("%s reported failing while congested", r.Target)
			}
			if r.State == api.StateUnknown {
				unknown = r
				return nil
			}
		}
		return fmt.Errorf("%d reports, none unknown", len(reports))
	})
	if !slices.Contains(scheduler.DegradedReasons, unknown.Reason) {
		t.Errorf("unknown report's reason %q, want one of %v", unknown.Reason, scheduler.DegradedReasons)
	}
	if d := degradedSeries(t, ts.url); d[unknown.Reason] != 1 {
		t.Errorf("vantage_exporter_degraded = %v, want %s at 1", d, unknown.Reason)
	}
	_, body := mustGet(t, ts.url+api.StatusPath)
	var st api.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Degraded) == 0 {
		t.Errorf("status %s: want the degraded reasons (%v)", body, err)
	}
	batches := coord.all()
	if last := batches[len(batches)-1]; len(last.Degraded) == 0 {
		t.Errorf("latest batch carries degraded %q, want the reasons", last.Degraded)
	}
	// Degraded is not stalled: every clock still advances.
	if code, body := mustGet(t, ts.url+"/-/healthy"); code != http.StatusOK {
		t.Errorf("/-/healthy while degraded: %d %q, want 200", code, body)
	}

	// Enough slots: the exporter recovers by itself once the window
	// holds only checks on time, and the targets still failing are
	// reported failing.
	mustWriteFile(t, ts.configPath, congestedConfig(slow.URL, 100))
	req, _ := http.NewRequest(http.MethodPost, ts.url+"/-/reload", nil)
	if code, body := mustDo(t, req); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	testbin.WaitFor(t, "a failing report after the recovery", 15*time.Second, func() error {
		reports, _ := coord.reports()
		for _, r := range reports {
			if r.State == api.StateFailing && r.Reason == "" {
				return nil
			}
		}
		return errors.New("no failing report yet")
	})
	if d := degradedSeries(t, ts.url); d[api.ReasonSchedulerLag]+d[api.ReasonMissedChecks]+d[api.ReasonStaleResults] != 0 {
		t.Errorf("vantage_exporter_degraded after the recovery = %v, want all 0", d)
	}
	testbin.WaitFor(t, "batches without degraded reasons", 5*time.Second, func() error {
		batches := coord.all()
		if last := batches[len(batches)-1]; len(last.Degraded) != 0 {
			return fmt.Errorf("latest batch degraded %q", last.Degraded)
		}
		return nil
	})
}

func TestTheExportersClocksOnMetricsAndHealthy(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer up.Close()
	coord := newBatchLog(t)
	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - module: http_2xx
    interval: 1s
    targets: [`+up.URL+`]
`, func(o *Options) {
		o.Location, o.CoordinatorURLs = "ams", []string{coord.srv.URL}
		o.CoordinatorHeartbeatInterval = 100 * time.Millisecond
	})
	testbin.WaitFor(t, "every clock advanced", 10*time.Second, func() error {
		_, body := mustGet(t, ts.url+"/metrics")
		fams := mustParse(t, body)
		for _, clock := range []string{clockSchedulerTick, clockCheckCompleted, clockReportDelivered} {
			name := "vantage_exporter_last_" + clock + "_timestamp_seconds"
			f, ok := fams[name]
			if !ok {
				return fmt.Errorf("no %s", name)
			}
			if v := f.value(t); v < float64(time.Now().Add(-time.Minute).Unix()) {
				return fmt.Errorf("%s = %v", name, v)
			}
			if v := mustFamily(t, fams, "vantage_exporter_clock_stalled").value(t, "clock", clock); v != 0 {
				return fmt.Errorf("clock %s stalled", clock)
			}
		}
		return nil
	})
	if code, body := mustGet(t, ts.url+"/-/healthy"); code != http.StatusOK || body != "Healthy\n" {
		t.Errorf("/-/healthy: %d %q", code, body)
	}
}
