// Package confirm runs the cross-location confirmation end to end on
// loopback: three vantage-exporters, each probing from its own source
// address (127.0.0.2, .3, .4 via source_ip_address) and reporting to one
// vantage-coordinator, against a target server that can fail for every
// client or only for one source address.
//
// It shows, with real exporters, the real coordinator and its incident
// log on disk:
//  1. a real outage becomes vantage_target_confirmed_down 1 within one
//     check interval plus verify_timeout;
//  2. a target unreachable from one location only never becomes down and
//     is counted as a false alarm;
//  3. a flapping target opens one incident per outage, not one per failed
//     check;
//  4. a coordinator restarted during an open incident continues that same
//     incident;
//  5. a dead exporter makes its location unknown while the other two still
//     confirm a real outage.
package confirm

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/coordinator"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/exporter"
	"github.com/vantageprobe/vantage/internal/testbin"
)

const (
	checkInterval = time.Second
	verifyTimeout = 2 * time.Second
	// waitLimit bounds every wait for a state; the scenarios take seconds.
	waitLimit = 30 * time.Second
)

// locations: name → the source address its exporter probes from.
var locations = []struct{ name, source string }{
	{"ams", "127.0.0.2"},
	{"fra", "127.0.0.3"},
	{"sfo", "127.0.0.4"},
}

// targetServer answers 200 on every path, except paths switched down for
// every client or for one client address.
type targetServer struct {
	mu   sync.Mutex
	down map[string]string // path → "*" or the client address it fails for
	url  string
}

func (ts *targetServer) set(path, failFor string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if failFor == "" {
		delete(ts.down, path)
		return
	}
	ts.down[path] = failFor
}

func (ts *targetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	ts.mu.Lock()
	failFor, ok := ts.down[r.URL.Path]
	ts.mu.Unlock()
	if ok && (failFor == "*" || failFor == host) {
		http.Error(w, "switched down", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func startTargetServer(t *testing.T) *targetServer {
	ts := &targetServer{down: map[string]string{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: ts, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	ts.url = "http://" + l.Addr().String()
	return ts
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func startExporter(t *testing.T, dir, name, source string, coordinatorURLs []string, targets []string) *testbin.Server {
	t.Helper()
	path := filepath.Join(dir, name+".yml")
	writeFile(t, path, fmt.Sprintf(`modules:
  http_2xx:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      source_ip_address: %s
scheduler:
  interval: %s
  retries: 1
  retry_interval: 100ms
targets:
  - module: http_2xx
    targets: [%s]
`, source, checkInterval, strings.Join(targets, ", ")))
	return testbin.Serve(t, "exporter "+name, func(ctx context.Context, started func([]net.Addr)) error {
		opts := exporter.DefaultOptions()
		opts.ConfigFile = path
		opts.Location = name
		opts.CoordinatorURLs = coordinatorURLs
		opts.WebListenAddresses = &[]string{"127.0.0.1:0"}
		opts.Started = started
		return exporter.Run(ctx, opts)
	})
}

type stack struct {
	target      *targetServer
	exporters   map[string]*testbin.Server
	coordinator *testbin.Server
	coordAddr   string
	configPath  string
	storage     string
	// peer is the second coordinator of an HA pair: the exporters report
	// to both; nothing else talks to it.
	peer *testbin.Server
}

// startCoordinator starts the coordinator; it stops with the whole test
// (t is TestConfirmation's, also for a restart inside a subtest).
func (s *stack) startCoordinator(t *testing.T) {
	t.Helper()
	s.coordinator = runCoordinator(t, s.configPath, s.storage, s.coordAddr)
}

func runCoordinator(t *testing.T, configPath, storage, addr string) *testbin.Server {
	t.Helper()
	return testbin.Serve(t, "coordinator "+addr, func(ctx context.Context, started func([]net.Addr)) error {
		opts := coordinator.DefaultOptions()
		opts.ConfigFile = configPath
		opts.StoragePath = storage
		opts.WebListenAddresses = &[]string{addr}
		opts.Started = started
		return coordinator.Run(ctx, opts)
	})
}

func startStack(t *testing.T, paths []string) *stack {
	dir := t.TempDir()
	s := &stack{target: startTargetServer(t), exporters: map[string]*testbin.Server{}, coordAddr: testbin.FreeAddr(t),
		configPath: filepath.Join(dir, "coordinator.yml"), storage: filepath.Join(dir, "data")}
	var targets []string
	for _, p := range paths {
		targets = append(targets, s.target.url+p)
	}
	peerAddr := testbin.FreeAddr(t)
	var locs strings.Builder
	for _, l := range locations {
		s.exporters[l.name] = startExporter(t, dir, l.name, l.source, []string{"http://" + s.coordAddr, "http://" + peerAddr}, targets)
		fmt.Fprintf(&locs, "  - name: %s\n    url: %s\n", l.name, s.exporters[l.name].URL)
	}
	writeFile(t, s.configPath, fmt.Sprintf(`locations:
%sconfirmation:
  min_failing_locations: 2
  verify_timeout: %s
  recovery_successes: 2
  reverify_interval: 1s
  # The base rule: recoveries and confirmations without holds (the
  # stress scenarios of test/faults run with them).
  recovery_hold: 0s
  contested_hold: 0s
health_check_interval: 1s
`, locs.String(), verifyTimeout))
	s.startCoordinator(t)
	s.peer = runCoordinator(t, s.configPath, filepath.Join(dir, "peer-data"), peerAddr)
	return s
}

// seriesAt returns the samples of a metric family at base, each as its
// labels plus "__value__".
func seriesAt(t *testing.T, base, name string) []map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping the coordinator: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the coordinator's metrics: %v", err)
	}
	var out []map[string]string
	for _, m := range fams[name].GetMetric() {
		ls := map[string]string{"__value__": fmt.Sprint(value(m))}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		out = append(out, ls)
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// sample returns the value of the series matching labels, or "" when absent.
func (s *stack) sample(t *testing.T, name string, labels map[string]string) string {
	t.Helper()
	return sampleAt(t, s.coordinator.URL, name, labels)
}

func sampleAt(t *testing.T, base, name string, labels map[string]string) string {
	t.Helper()
	for _, ls := range seriesAt(t, base, name) {
		match := true
		for k, v := range labels {
			if ls[k] != v {
				match = false
			}
		}
		if match {
			return ls["__value__"]
		}
	}
	return ""
}

// confirmedDown reports whether the coordinator's series says target is
// confirmed down, whatever the incident log holds yet.
func (s *stack) confirmedDown(t *testing.T, target string) bool {
	return s.sample(t, "vantage_target_confirmed_down", map[string]string{"target": target, "module": "http_2xx"}) == "1"
}

// down is the condition "target is confirmed down" for testbin.WaitFor.
// The incident log is written after the state changes, so the condition
// also waits for the log to hold the confirmed incident.
func (s *stack) down(t *testing.T, target string) func() error {
	series := s.sampleIs(t, "vantage_target_confirmed_down", map[string]string{"target": target, "module": "http_2xx"}, "1")
	return func() error {
		if err := series(); err != nil {
			return err
		}
		if incs := s.incidents(t, target); len(incs) == 0 || incs[0].ConfirmedAt.IsZero() {
			return fmt.Errorf("the incident log holds no confirmed incident of %s yet", target)
		}
		return nil
	}
}

// sampleIs is the condition "the coordinator's series name{labels} has
// the value want" for testbin.WaitFor.
func (s *stack) sampleIs(t *testing.T, name string, labels map[string]string, want string) func() error {
	return func() error {
		if got := s.sample(t, name, labels); got != want {
			return fmt.Errorf("%s%v is %q, want %s", name, labels, got, want)
		}
		return nil
	}
}

func (s *stack) incidents(t *testing.T, target string) []confirm.Incident {
	t.Helper()
	return incidentsAt(t, s.coordinator.URL, target)
}

// incidentsAt lists base's incidents of target, newest first; all of
// them for target "".
func incidentsAt(t *testing.T, base, target string) []confirm.Incident {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/incidents?state=all")
	if err != nil {
		t.Fatalf("listing incidents: %v", err)
	}
	defer resp.Body.Close()
	var all []confirm.Incident
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatalf("decoding incidents: %v", err)
	}
	var out []confirm.Incident
	for _, inc := range all {
		if target == "" || inc.Target == target {
			out = append(out, inc)
		}
	}
	return out
}

// resolvedAs waits until target's latest incident is resolved with
// resolution, and returns it.
func (s *stack) resolvedAs(t *testing.T, target, resolution string) confirm.Incident {
	t.Helper()
	var inc confirm.Incident
	testbin.WaitFor(t, target+" resolved as "+resolution, waitLimit, func() error {
		incs := s.incidents(t, target)
		if len(incs) == 0 || incs[0].Open() {
			return fmt.Errorf("%d incidents, the latest open", len(incs))
		}
		inc = incs[0]
		return nil
	})
	if inc.Resolution != resolution {
		t.Fatalf("incident %d of %s resolved as %q, want %q: %+v", inc.ID, target, inc.Resolution, resolution, inc)
	}
	return inc
}

func TestConfirmation(t *testing.T) {
	s := startStack(t, []string{"/outage", "/one-location", "/flapping", "/restart", "/dead-location"})
	u := func(path string) string { return s.target.url + path }
	top := t
	testbin.WaitFor(t, "every location healthy", waitLimit, func() error {
		for _, l := range locations {
			if err := s.sampleIs(t, "vantage_location_healthy", map[string]string{"location": l.name}, "1")(); err != nil {
				return err
			}
		}
		return nil
	})
	// Let every target get checked once while up.
	time.Sleep(2 * checkInterval)

	t.Run("real outage is confirmed within one interval plus verify_timeout", func(t *testing.T) {
		s.target.set("/outage", "*")
		took := testbin.WaitFor(t, "/outage confirmed down", waitLimit, s.down(t, u("/outage")))
		t.Logf("outage start to vantage_target_confirmed_down 1: %s (bound: check interval %s + verify_timeout %s)", took.Round(time.Millisecond), checkInterval, verifyTimeout)
		if took > checkInterval+verifyTimeout {
			t.Errorf("confirmed after %s, more than the check interval plus verify_timeout (%s)", took, checkInterval+verifyTimeout)
		}
		incs := s.incidents(t, u("/outage"))
		if len(incs) != 1 || incs[0].State != confirm.StateDown || !incs[0].Confirmed() {
			t.Fatalf("incidents of /outage = %+v, want one confirmed, down", incs)
		}
		if got := s.sample(t, "vantage_target_state", map[string]string{"target": u("/outage"), "state": "down"}); got != "1" {
			t.Errorf(`vantage_target_state{state="down"} = %q, want 1`, got)
		}
		if got := s.sample(t, "vantage_target_down_since_timestamp_seconds", map[string]string{"target": u("/outage")}); got == "" {
			t.Error("vantage_target_down_since_timestamp_seconds is absent while down")
		}
		s.target.set("/outage", "")
		inc := s.resolvedAs(t, u("/outage"), confirm.ResolutionRecovered)
		if inc.ID != incs[0].ID {
			t.Errorf("recovery resolved incident %d, want %d", inc.ID, incs[0].ID)
		}
		if s.confirmedDown(t, u("/outage")) {
			t.Error("still confirmed down after recovery")
		}
	})

	t.Run("one location alone is a false alarm", func(t *testing.T) {
		before := s.sample(t, "vantage_incidents_total", map[string]string{"resolution": "false_alarm"})
		s.target.set("/one-location", "127.0.0.3") // fra's source address
		inc := s.resolvedAs(t, u("/one-location"), confirm.ResolutionFalseAlarm)
		if inc.Reporter != "fra" || inc.Confirmed() {
			t.Errorf("incident = %+v, want reported by fra and never confirmed", inc)
		}
		if after := s.sample(t, "vantage_incidents_total", map[string]string{"resolution": "false_alarm"}); after == before {
			t.Errorf("vantage_incidents_total{resolution=\"false_alarm\"} stayed %s", after)
		}
		// fra keeps failing: for three more intervals, never down.
		for range 3 * int(checkInterval/(100*time.Millisecond)) {
			if s.confirmedDown(t, u("/one-location")) {
				t.Fatal("a target failing from one location only became confirmed down")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got := s.sample(t, "vantage_target_location_success", map[string]string{"target": u("/one-location"), "location": "fra"}); got != "0" {
			t.Errorf("fra's verdict = %q, want 0", got)
		}
		if n := len(s.incidents(t, u("/one-location"))); n != 1 {
			t.Errorf("%d incidents for a location failing continuously, want 1", n)
		}
		s.target.set("/one-location", "")
	})

	t.Run("flapping target opens one incident per outage", func(t *testing.T) {
		for outage := range 2 {
			s.target.set("/flapping", "*")
			testbin.WaitFor(t, "/flapping confirmed down", waitLimit, s.down(t, u("/flapping")))
			// Three more failed checks in each location during the outage.
			time.Sleep(3 * checkInterval)
			s.target.set("/flapping", "")
			s.resolvedAs(t, u("/flapping"), confirm.ResolutionRecovered)
			if n := len(s.incidents(t, u("/flapping"))); n != outage+1 {
				t.Fatalf("after %d outages: %d incidents", outage+1, n)
			}
		}
	})

	t.Run("restarted coordinator continues the open incident", func(t *testing.T) {
		s.target.set("/restart", "*")
		testbin.WaitFor(t, "/restart confirmed down", waitLimit, s.down(t, u("/restart")))
		before := s.incidents(t, u("/restart"))
		if err := s.coordinator.Stop(); err != nil {
			t.Error(err)
		}
		s.startCoordinator(top)
		after := s.incidents(t, u("/restart"))
		if len(after) != 1 || after[0].ID != before[0].ID || !after[0].Open() || !after[0].ConfirmedAt.Equal(before[0].ConfirmedAt) {
			t.Fatalf("after restart: %+v, want the same open incident %d", after, before[0].ID)
		}
		testbin.WaitFor(t, "/restart confirmed down again after the restart", waitLimit, s.down(t, u("/restart")))
		s.target.set("/restart", "")
		inc := s.resolvedAs(t, u("/restart"), confirm.ResolutionRecovered)
		if inc.ID != before[0].ID || inc.Rounds <= before[0].Rounds {
			t.Errorf("resolved incident %d after %d rounds, want incident %d continued past its %d rounds", inc.ID, inc.Rounds, before[0].ID, before[0].Rounds)
		}
		if n := len(s.incidents(t, u("/restart"))); n != 1 {
			t.Errorf("%d incidents, want 1", n)
		}
	})

	t.Run("dead exporter makes its location unknown, not down", func(t *testing.T) {
		if err := s.exporters["sfo"].Stop(); err != nil {
			t.Error(err)
		}
		testbin.WaitFor(t, "sfo unhealthy", waitLimit, s.sampleIs(t, "vantage_location_healthy", map[string]string{"location": "sfo"}, "0"))
		s.target.set("/dead-location", "*")
		testbin.WaitFor(t, "/dead-location confirmed down by ams and fra", waitLimit, s.down(t, u("/dead-location")))
		// The reports of ams and fra may confirm the outage before the
		// verification round that asks sfo has ended.
		seen := map[string]confirm.Outcome{}
		testbin.WaitFor(t, "sfo's answer in the incident", waitLimit, func() error {
			incs := s.incidents(t, u("/dead-location"))
			if len(incs) != 1 {
				t.Fatalf("incidents = %+v, want 1", incs)
			}
			clear(seen)
			for _, e := range incs[0].Evidence {
				seen[e.Location] = e.Result
			}
			if _, ok := seen["sfo"]; !ok {
				return fmt.Errorf("evidence by location = %v", seen)
			}
			return nil
		})
		if seen["sfo"] != confirm.OutcomeUnknown || seen["ams"] != confirm.OutcomeFailure || seen["fra"] != confirm.OutcomeFailure {
			t.Errorf("evidence by location = %v, want ams and fra failure, sfo unknown", seen)
		}
		if got := s.sample(t, "vantage_target_location_success", map[string]string{"target": u("/dead-location"), "location": "sfo"}); got != "" {
			t.Errorf("sfo's verdict = %s, want absent (unknown)", got)
		}
		s.target.set("/dead-location", "")
		s.resolvedAs(t, u("/dead-location"), confirm.ResolutionRecovered)
	})

	if got := s.sample(t, "vantage_incidents_total", map[string]string{"resolution": "recovered"}); got == "" || got == "0" {
		t.Errorf("vantage_incidents_total{resolution=\"recovered\"} = %q after four recovered outages", got)
	}

	// The HA peer got the same reports and reached the same verdicts.
	type verdict struct {
		target, resolution string
		confirmed          bool
	}
	verdicts := func(base string) []verdict {
		var out []verdict
		for _, inc := range incidentsAt(t, base, "") {
			out = append(out, verdict{inc.Target, inc.Resolution, inc.Confirmed()})
		}
		slices.SortFunc(out, func(a, b verdict) int { return strings.Compare(a.target+a.resolution, b.target+b.resolution) })
		return out
	}
	testbin.WaitFor(t, "the peer's last incident resolved", waitLimit, func() error {
		if incs := incidentsAt(t, s.peer.URL, u("/dead-location")); len(incs) != 1 || incs[0].Open() {
			return fmt.Errorf("incidents of /dead-location: %+v, want one, resolved", incs)
		}
		return nil
	})
	if primary, peer := verdicts(s.coordinator.URL), verdicts(s.peer.URL); !slices.Equal(primary, peer) {
		t.Errorf("the HA pair disagrees:\nprimary %v\npeer    %v", primary, peer)
	} else {
		t.Logf("HA pair agrees on %d incidents: %v", len(primary), primary)
	}
}
