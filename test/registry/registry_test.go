// Package registry runs the coordinator's monitor registry end to end with
// real processes on loopback: a vantage-coordinator and three
// vantage-exporters (locations ams, fra, sfo), each following its
// location's http_sd document on the coordinator, against a target server
// that can be switched down. The registry is driven by the curl commands
// of README.md's walkthrough, run as written but for the addresses and
// the interval.
//
// It shows that a registered monitor is checked by the three exporters
// within one interval plus the refresh interval (plus the exporters'
// discovery update interval, for which their discovery manager batches
// changes), with its labels and failure threshold on their series;
// confirmed down when it fails everywhere, with its incident on the
// monitor's incidents and each location's counts of checks (summed from
// the exporters' POST /api/v1/stats) on its stats; and that deleting it
// removes its series from every
// exporter within one refresh (plus the same update interval). Debian's
// Prometheus and blackbox_exporter follow the same document.
package registry

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

const (
	// interval is the monitors' interval, refresh the exporters' http_sd
	// refresh interval.
	interval = time.Second
	refresh  = time.Second
	// update is how long the exporters' discovery manager batches changes
	// before handing them to the scheduler (--discovery.update-interval).
	update = time.Second
	// slack is what a loaded machine may add to a bound: processes
	// scheduled late, an HTTP round trip.
	slack = 3 * time.Second
)

var locations = []string{"ams", "fra", "sfo"}

// targetServer answers 200, or 503 while down.
type targetServer struct {
	down atomic.Bool
	url  string
}

func startTargetServer(t *testing.T) *targetServer {
	ts := &targetServer{}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ts.down.Load() {
			http.Error(w, "switched down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	ts.url = "http://" + l.Addr().String() + "/health"
	return ts
}

type stack struct {
	coordinator string            // base URL
	exporters   map[string]string // location → base URL
	procs       []*testbin.Process
}

// startCoordinator runs bin as the coordinator of the locations (name →
// exporter URL) and returns its base URL.
func (s *stack) startCoordinator(t *testing.T, bin, dir string, urls map[string]string) {
	t.Helper()
	addr := testbin.FreeAddr(t)
	s.coordinator = "http://" + addr
	var conf strings.Builder
	conf.WriteString("locations:\n")
	for _, l := range locations {
		fmt.Fprintf(&conf, "  - {name: %s, url: %s}\n", l, urls[l])
	}
	conf.WriteString(`confirmation:
  min_failing_locations: 2
  verify_timeout: 2s
registry:
  modules:
    http_2xx: {prober: http, timeout: 1s}
`)
	testbin.WriteFile(t, filepath.Join(dir, "coordinator.yml"), conf.String())
	s.procs = append(s.procs, testbin.StartReady(t, "vantage-coordinator", exec.Command(bin,
		"--config.file="+filepath.Join(dir, "coordinator.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr), s.coordinator+"/-/ready"))
}

// startStack runs the coordinator and one exporter per location.
func startStack(t *testing.T) *stack {
	t.Helper()
	bins := testbin.Build(t, "./cmd/vantage-coordinator", "./cmd/vantage-exporter")
	dir := t.TempDir()
	s := &stack{exporters: map[string]string{}}
	for _, l := range locations {
		s.exporters[l] = "http://" + testbin.FreeAddr(t)
	}
	s.startCoordinator(t, bins[0], dir, s.exporters)
	for _, l := range locations {
		path := filepath.Join(dir, l+".yml")
		testbin.WriteFile(t, path, fmt.Sprintf(`modules:
  http_2xx:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
scheduler:
  retries: 0
targets:
  - name: registry
    http_sd_configs:
      - url: %s/api/v1/sd?location=%s
        refresh_interval: %s
`, s.coordinator, l, refresh))
		s.procs = append(s.procs, testbin.StartReady(t, "vantage-exporter "+l, exec.Command(bins[1],
			"--config.file="+path, "--location="+l, "--coordinator.url="+s.coordinator,
			"--discovery.update-interval="+update.String(),
			"--web.listen-address="+strings.TrimPrefix(s.exporters[l], "http://")), s.exporters[l]+"/-/ready"))
	}
	return s
}

// waitFor waits for cond, failing at once when a process exited.
func (s *stack) waitFor(t *testing.T, what string, limit time.Duration, cond func() error) time.Duration {
	t.Helper()
	return testbin.WaitFor(t, what, limit, func() error {
		for _, p := range s.procs {
			if p.Exited() {
				t.Fatalf("%s exited (%v):\n%s", p.Name, p.Err(), p.Out.Tail(testbin.LogTail))
			}
		}
		return cond()
	})
}

// readmeCommands returns the curl commands of README.md's section "Register
// a URL with curl", continuation lines joined.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testbin.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	in, code := false, false
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "### Register a URL with curl"):
			in = true
		case in && strings.HasPrefix(line, "#"):
			in = false
		case in && strings.HasPrefix(line, "```"):
			code = !code
		case in && code && (cur != "" || strings.HasPrefix(line, "curl ")):
			cur += strings.TrimSuffix(line, "\\")
			if !strings.HasSuffix(line, "\\") {
				cmds = append(cmds, cur)
				cur = ""
			}
		}
	}
	if len(cmds) < 6 {
		t.Fatalf("README.md's walkthrough has %d curl commands, want the register, list, sd, incidents, stats and delete ones", len(cmds))
	}
	return cmds
}

// run runs the README's command that contains what, with the stack's
// addresses, and returns its output.
func (s *stack) run(t *testing.T, cmds []string, what string, replace *strings.Replacer, id string) string {
	t.Helper()
	for _, c := range cmds {
		if !strings.Contains(c, what) {
			continue
		}
		cmd := exec.Command("sh", "-c", replace.Replace(c))
		cmd.Env = append(os.Environ(), "ID="+id)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", replace.Replace(c), err, out)
		}
		return string(out)
	}
	t.Fatalf("README.md's walkthrough has no command with %q", what)
	return ""
}

func get(url string) (string, error) {
	status, body, err := answer(http.Get(url))
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET %s: %d %s", url, status, body)
	}
	return body, err
}

// answer reads an answer's status and body.
func answer(resp *http.Response, err error) (int, string, error) {
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// seriesOf returns the lines of an exporter's /metrics about target.
func seriesOf(exporter, target string) ([]string, error) {
	body, err := get(exporter + "/metrics")
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(body) {
		if strings.Contains(line, `target="`+target+`"`) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out, nil
}

// checkCounters reads every exporter's vantage_probe_checks_total of
// target: location → {success, failure}.
func (s *stack) checkCounters(t *testing.T, target string) map[string][2]uint64 {
	t.Helper()
	out := map[string][2]uint64{}
	for _, l := range locations {
		series, err := seriesOf(s.exporters[l], target)
		if err != nil {
			t.Fatal(err)
		}
		var c [2]uint64
		for _, line := range series {
			if !strings.HasPrefix(line, "vantage_probe_checks_total{") {
				continue
			}
			fields := strings.Fields(line)
			v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			if strings.Contains(line, `result="success"`) {
				c[0] = uint64(v)
			} else {
				c[1] = uint64(v)
			}
		}
		out[l] = c
	}
	return out
}

func TestRegisteredMonitorEndToEnd(t *testing.T) {
	target := startTargetServer(t)
	s := startStack(t)
	cmds := readmeCommands(t)
	replace := strings.NewReplacer("http://localhost:9716", s.coordinator, "https://shop.example/health", target.url, `"interval": "30s"`, fmt.Sprintf(`"interval": "%s"`, interval))

	// Register, as the walkthrough does.
	out := s.run(t, cmds, "-d '{", replace, "")
	registered := time.Now()
	var m struct {
		ID               string
		Target           string
		FailureThreshold int `json:"failure_threshold"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.ID == "" || m.Target != target.url || m.FailureThreshold != 3 {
		t.Fatalf("registering answered %s (%v)", out, err)
	}
	if out := s.run(t, cmds, "?label=team=shop", replace, m.ID); !strings.Contains(out, `"id":"`+m.ID+`"`) {
		t.Errorf("the listing by label: %s", out)
	}
	if out := s.run(t, cmds, "/api/v1/sd?location=ams", replace, m.ID); !strings.Contains(out, `"monitor_id":"`+m.ID+`"`) || !strings.Contains(out, `"__param_module":"http_2xx"`) {
		t.Errorf("ams's http_sd document: %s", out)
	}

	// Every exporter checks it, with its labels and failure threshold.
	took := s.waitFor(t, "the three exporters' checks of the monitor", interval+refresh+update+slack, func() error {
		for _, l := range locations {
			series, err := seriesOf(s.exporters[l], target.url)
			if err != nil {
				return err
			}
			joined := strings.Join(series, "\n")
			if !strings.Contains(joined, "probe_success{") || !strings.Contains(joined, `monitor_id="`+m.ID+`"`) || !strings.Contains(joined, `team="shop"`) ||
				!strings.Contains(joined, "vantage_probe_failure_threshold{") {
				return fmt.Errorf("%s has %d series of the monitor: %s", l, len(series), joined)
			}
		}
		return nil
	})
	t.Logf("checked by the three exporters %s after it was registered (%s after the POST)", took, time.Since(registered).Round(time.Millisecond))

	// It fails everywhere: confirmed down, with its incident.
	target.down.Store(true)
	took = s.waitFor(t, "the monitor confirmed down", 15*time.Second, func() error {
		body, err := get(s.coordinator + "/api/v1/targets?state=down")
		if err != nil {
			return err
		}
		if !strings.Contains(body, target.url) {
			return errors.New("not down yet: " + body)
		}
		return nil
	})
	t.Logf("confirmed down %s after the target failed", took)
	var incidents []struct {
		Target      string
		ConfirmedAt time.Time `json:"confirmed_at"`
	}
	out = s.run(t, cmds, "/incidents", replace, m.ID)
	if err := json.Unmarshal([]byte(out), &incidents); err != nil || len(incidents) != 1 || incidents[0].Target != target.url || incidents[0].ConfirmedAt.IsZero() {
		t.Errorf("the monitor's incidents: %s (%v), want one confirmed", out, err)
	}
	// Its stats: each location's counts lie between its exporter's own
	// counters read before and after, and include the failures.
	before := s.checkCounters(t, target.url)
	var stats struct {
		Locations []struct {
			Location string
			Counts   *struct {
				Succeeded, Failed, Unknown uint64
				Known                      bool
			}
			Answered int
			Errors   []string
		}
		Incidents []json.RawMessage
	}
	out = s.run(t, cmds, "/stats?range=24h", replace, m.ID)
	after := s.checkCounters(t, target.url)
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats.Locations) != 3 || len(stats.Incidents) != 1 {
		t.Fatalf("the monitor's stats: %s (%v), want three locations and the incident", out, err)
	}
	for _, l := range stats.Locations {
		c, b, a := l.Counts, before[l.Location], after[l.Location]
		switch {
		case c == nil || l.Answered != 1 || !c.Known:
			t.Errorf("%s: %+v, want the counts of its exporter", l.Location, l)
		case c.Failed == 0 || c.Unknown != 0:
			t.Errorf("%s counts %+v, want the failed checks (and no unknown ones: no canary)", l.Location, *c)
		case c.Succeeded < b[0] || c.Succeeded > a[0] || c.Failed < b[1] || c.Failed > a[1]:
			t.Errorf("%s counts %d succeeded, %d failed; its vantage_probe_checks_total went from %v to %v", l.Location, c.Succeeded, c.Failed, b, a)
		}
	}
	t.Logf("stats: %s", strings.TrimSpace(out))

	// Deleted: its series leave every exporter within one refresh.
	s.run(t, cmds, "-X DELETE", replace, m.ID)
	took = s.waitFor(t, "the monitor's series gone from the exporters", refresh+update+slack, func() error {
		for _, l := range locations {
			series, err := seriesOf(s.exporters[l], target.url)
			if err != nil {
				return err
			}
			if len(series) > 0 {
				return fmt.Errorf("%s still has %s", l, series[0])
			}
		}
		return nil
	})
	t.Logf("series gone from the three exporters %s after the deletion", took)
	if body, err := get(s.coordinator + "/api/v1/sd"); err != nil || strings.TrimSpace(body) != "[]" {
		t.Errorf("the http_sd document after the deletion: %s (%v)", body, err)
	}
}

// readmeBlock returns README.md's yaml block that contains what.
func readmeBlock(t *testing.T, what string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testbin.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for i, block := range strings.Split(string(data), "```") {
		if i%2 == 1 && strings.Contains(block, what) {
			return strings.TrimPrefix(block, "yaml\n")
		}
	}
	t.Fatalf("README.md has no code block with %q", what)
	return ""
}

// TestPrometheusAndBlackboxFollowTheRegistry: Debian's Prometheus, with
// README.md's scrape configuration, probes a registered monitor through
// Debian's blackbox_exporter at the monitor's interval, with its labels.
func TestPrometheusAndBlackboxFollowTheRegistry(t *testing.T) {
	const (
		prometheusBinary = "/usr/bin/prometheus"
		blackboxBinary   = "/usr/bin/prometheus-blackbox-exporter"
	)
	for _, b := range []string{prometheusBinary, blackboxBinary} {
		if _, err := os.Stat(b); err != nil {
			t.Fatalf("%s is missing (%v): install the Debian packages prometheus and prometheus-blackbox-exporter", b, err)
		}
	}
	target := startTargetServer(t)
	bins := testbin.Build(t, "./cmd/vantage-coordinator")
	dir := t.TempDir()
	s := &stack{}
	dead := map[string]string{}
	for _, l := range locations {
		dead[l] = "http://" + testbin.FreeAddr(t)
	}
	s.startCoordinator(t, bins[0], dir, dead)
	status, body := post(t, s.coordinator+"/api/v1/monitors", `{"target": "`+target.url+`", "module": "http_2xx", "interval": "2s", "labels": {"team": "shop"}, "failure_threshold": 3}`)
	if status != http.StatusCreated {
		t.Fatalf("registering: %d %s", status, body)
	}
	var m struct{ ID string }
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}

	bbAddr := testbin.FreeAddr(t)
	testbin.WriteFile(t, filepath.Join(dir, "blackbox.yml"), "modules:\n  http_2xx:\n    prober: http\n    http:\n      preferred_ip_protocol: ip4\n")
	s.procs = append(s.procs, testbin.StartReady(t, "blackbox_exporter", exec.Command(blackboxBinary,
		"--config.file="+filepath.Join(dir, "blackbox.yml"), "--web.listen-address="+bbAddr), "http://"+bbAddr+"/-/ready"))
	scrape := strings.NewReplacer("http://coordinator.example:9716", s.coordinator, "127.0.0.1:9115", bbAddr, "scrape_timeout: 10s", "scrape_timeout: 1s").
		Replace(readmeBlock(t, "job_name: blackbox-registry"))
	testbin.WriteFile(t, filepath.Join(dir, "prometheus.yml"), "global:\n  scrape_interval: 1m\n"+scrape)
	promAddr := testbin.FreeAddr(t)
	s.procs = append(s.procs, testbin.StartReady(t, "prometheus", exec.Command(prometheusBinary,
		"--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "prometheus"),
		"--web.listen-address="+promAddr), "http://"+promAddr+"/-/ready"))

	var series []map[string]string
	s.waitFor(t, "two probes of the monitor in Prometheus", 30*time.Second, func() error {
		body, err := get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(`count_over_time(probe_success[10s]) >= 2`))
		if err != nil {
			return err
		}
		var answer struct {
			Data struct {
				Result []struct{ Metric map[string]string }
			}
		}
		if err := json.Unmarshal([]byte(body), &answer); err != nil {
			return err
		}
		series = nil
		for _, r := range answer.Data.Result {
			series = append(series, r.Metric)
		}
		if len(series) != 1 {
			return fmt.Errorf("%d series: %s", len(series), body)
		}
		return nil
	})
	want := map[string]string{"job": "blackbox-registry", "instance": target.url, "monitor_id": m.ID, "failure_threshold": "3", "team": "shop"}
	for k, v := range want {
		if series[0][k] != v {
			t.Errorf("probe_success has %s=%q, want %q (labels %v)", k, series[0][k], v, series[0])
		}
	}
	body, err := get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(`probe_success`))
	if err != nil || !strings.Contains(body, `"1"]`) {
		t.Errorf("probe_success: %s (%v), want 1", body, err)
	}
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	status, b, err := answer(http.Post(url, "application/json", strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	return status, b
}
