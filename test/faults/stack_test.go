package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// switchTarget is an HTTP target whose paths fail for chosen locations:
// each location's exporter probes from its own source address, so a path
// can fail everywhere, in one location, or nowhere.
type switchTarget struct {
	t    *testing.T
	addr string
	mu   sync.Mutex
	down map[string]map[string]bool // path → source address → failing; "*" for every source
	// slow maps a path to how long it takes to answer, drawn anew for
	// each request.
	slow map[string]func() time.Duration
	srv  *httptest.Server // nil while the host is stopped
}

func newSwitchTarget(t *testing.T) *switchTarget {
	st := &switchTarget{t: t, addr: testbin.FreeAddr(t), down: map[string]map[string]bool{}, slow: map[string]func() time.Duration{}}
	st.start()
	t.Cleanup(st.stop)
	return st
}

// start serves the target on its address.
func (st *switchTarget) start() {
	l, err := net.Listen("tcp", st.addr)
	if err != nil {
		st.t.Fatalf("the target cannot listen again: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		st.mu.Lock()
		fail := st.down[r.URL.Path]["*"] || st.down[r.URL.Path][host]
		slow := st.slow[r.URL.Path]
		st.mu.Unlock()
		if slow != nil {
			select {
			case <-time.After(slow()):
			case <-r.Context().Done():
				return
			}
		}
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	srv.Listener = l
	srv.Start()
	st.srv = srv
}

// stop takes the whole host away: connections are refused.
func (st *switchTarget) stop() {
	if st.srv != nil {
		st.srv.Close()
		st.srv = nil
	}
}

// url is the target at path.
func (st *switchTarget) url(path string) string { return "http://" + st.addr + path }

// set makes path fail (or succeed) for the given source addresses, "*"
// for all.
func (st *switchTarget) set(path string, failing bool, sources ...string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.down[path] == nil {
		st.down[path] = map[string]bool{}
	}
	for _, s := range sources {
		st.down[path][s] = failing
	}
}

// setSlow makes path answer after a delay drawn by delay for each
// request.
func (st *switchTarget) setSlow(path string, delay func() time.Duration) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.slow[path] = delay
}

// location is one exporter process probing from its own source address.
type location struct {
	name, source, addr string
	config             string
	proc               *testbin.Process
}

// coordinatorProc is one coordinator process and its incident log.
type coordinatorProc struct {
	addr, storage, config string
	proc                  *testbin.Process
}

func (c *coordinatorProc) url() string { return "http://" + c.addr }

// stack is three locations (ams, fra, sfo, probing from 127.0.0.2-4)
// reporting to one or more coordinators, all real processes on loopback.
type stack struct {
	t                           *testing.T
	dir                         string
	exporterBin, coordinatorBin string
	target                      *switchTarget
	locations                   []*location
	coordinators                []*coordinatorProc
}

// stackOptions shape a stack.
type stackOptions struct {
	coordinators int
	paths        []string // target paths, each checked every second
	exporterArgs []string // extra exporter flags
	canary       string   // the canary's path on the target's host; none when empty
	interval     string   // the check interval; 1s when empty
	// timeouts holds a location's module timeout; 1s when not listed.
	timeouts map[string]string
	// confirmation is the coordinators' confirmation section (a YAML flow
	// mapping); when empty, 2s rounds and no recovery hold.
	confirmation string
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	bins := testbin.Build(t, "./cmd/vantage-exporter", "./cmd/vantage-coordinator")
	s := &stack{t: t, dir: t.TempDir(), exporterBin: bins[0], coordinatorBin: bins[1], target: newSwitchTarget(t)}
	for i, name := range []string{"ams", "fra", "sfo"} {
		s.locations = append(s.locations, &location{name: name, source: fmt.Sprintf("127.0.0.%d", i+2), addr: testbin.FreeAddr(t)})
	}
	var locs strings.Builder
	for _, l := range s.locations {
		fmt.Fprintf(&locs, "  - {name: %s, url: \"http://%s\"}\n", l.name, l.addr)
	}
	for i := range o.coordinators {
		c := &coordinatorProc{addr: testbin.FreeAddr(t), storage: filepath.Join(s.dir, fmt.Sprintf("data-%d", i)), config: filepath.Join(s.dir, fmt.Sprintf("coordinator-%d.yml", i))}
		confirmation := o.confirmation
		if confirmation == "" {
			confirmation = "{verify_timeout: 2s, reverify_interval: 2s, recovery_hold: 0s}"
		}
		s.write(c.config, "locations:\n"+locs.String()+"confirmation: "+confirmation+"\nhealth_check_interval: 1s\n")
		s.coordinators = append(s.coordinators, c)
		s.startCoordinator(c)
	}
	var targets []string
	for _, p := range o.paths {
		targets = append(targets, s.target.url(p))
	}
	interval := o.interval
	if interval == "" {
		interval = "1s"
	}
	for _, l := range s.locations {
		l.config = filepath.Join(s.dir, "exporter-"+l.name+".yml")
		s.configure(l, o, interval, targets)
		args := []string{"--config.file=" + l.config, "--location=" + l.name, "--web.listen-address=" + l.addr, "--log.level=warn"}
		for _, c := range s.coordinators {
			args = append(args, "--coordinator.url="+c.url())
		}
		args = append(args, o.exporterArgs...)
		l.proc = testbin.StartReady(t, "vantage-exporter "+l.name, exec.Command(s.exporterBin, args...), "http://"+l.addr+"/-/ready")
	}
	return s
}

// configure writes a location's exporter configuration: every target
// checked every interval with the location's module timeout.
func (s *stack) configure(l *location, o stackOptions, interval string, targets []string) {
	timeout := o.timeouts[l.name]
	if timeout == "" {
		timeout = "1s"
	}
	conf := fmt.Sprintf("modules:\n  http_2xx:\n    prober: http\n    timeout: %s\n    http: {source_ip_address: %s}\n"+
		"scheduler: {interval: %s, retries: 0}\ntargets:\n  - module: http_2xx\n    targets: [%s]\n", timeout, l.source, interval, strings.Join(targets, ", "))
	if o.canary != "" {
		conf += fmt.Sprintf("canary: {module: http_2xx, target: %q, interval: 1s}\n", s.target.url(o.canary))
	}
	s.write(l.config, conf)
}

// reload makes a location's exporter load its configuration again.
func (s *stack) reload(l *location) {
	s.t.Helper()
	resp, err := http.Post("http://"+l.addr+"/-/reload", "", nil)
	if err != nil {
		s.t.Fatalf("reloading %s: %v", l.name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("reloading %s: %s", l.name, resp.Status)
	}
}

func (s *stack) write(path, content string) {
	s.t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) startCoordinator(c *coordinatorProc) {
	s.t.Helper()
	c.proc = startCoordinator(s.t, s.coordinatorBin, c.config, c.storage, c.addr)
}

// sources returns the source addresses of the named locations.
func (s *stack) sources(names ...string) []string {
	var out []string
	for _, l := range s.locations {
		for _, n := range names {
			if l.name == n {
				out = append(out, l.source)
			}
		}
	}
	return out
}

// targetView is a target as the coordinator's /api/v1/targets lists it.
type targetView struct {
	Target    string `json:"target"`
	Module    string `json:"module"`
	State     string `json:"state"`
	Flapping  bool   `json:"flapping"`
	Locations []struct {
		Location string `json:"location"`
		Result   string `json:"result"`
	} `json:"locations"`
}

// getJSON decodes the JSON answer of a GET of the coordinator's path.
func (c *coordinatorProc) getJSON(path string, v any) error {
	resp, err := http.Get(c.url() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s answered %s: %s", path, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// targets lists what the coordinator knows, by target URL.
func (c *coordinatorProc) targets(t *testing.T) (map[string]targetView, error) {
	var list []targetView
	if err := c.getJSON("/api/v1/targets", &list); err != nil {
		return nil, err
	}
	out := map[string]targetView{}
	for _, v := range list {
		out[v.Target] = v
	}
	return out, nil
}

// result returns what location last saw of v, "" when it is not listed.
func (v targetView) result(location string) string {
	for _, l := range v.Locations {
		if l.Location == location {
			return l.Result
		}
	}
	return ""
}

// fullIncident is an incident as /api/v1/incidents lists it.
type fullIncident struct {
	ID          uint64    `json:"id"`
	Target      string    `json:"target"`
	State       string    `json:"state"`
	Reporter    string    `json:"reporter"`
	StartedAt   time.Time `json:"started_at"`
	OpenedAt    time.Time `json:"opened_at"`
	ConfirmedAt time.Time `json:"confirmed_at"`
	ResolvedAt  time.Time `json:"resolved_at"`
	Resolution  string    `json:"resolution"`
}

// allIncidents lists every incident, newest first.
func (c *coordinatorProc) allIncidents(t *testing.T) []fullIncident {
	t.Helper()
	var all []fullIncident
	if err := c.getJSON("/api/v1/incidents?state=all&limit=100000", &all); err != nil {
		t.Fatalf("listing incidents: %v", err)
	}
	return all
}

// incidentsOf lists every incident of target, oldest first.
func (c *coordinatorProc) incidentsOf(t *testing.T, target string) []fullIncident {
	t.Helper()
	all := c.allIncidents(t)
	var out []fullIncident
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Target == target {
			out = append(out, all[i])
		}
	}
	return out
}

// stateIs is a condition: the coordinator lists target in state.
func (c *coordinatorProc) stateIs(t *testing.T, target, state string) func() error {
	return func() error {
		ts, err := c.targets(t)
		if err != nil {
			return err
		}
		v, ok := ts[target]
		if !ok {
			return fmt.Errorf("%s is not listed (%d targets)", target, len(ts))
		}
		if v.State != state {
			return fmt.Errorf("%s is %s, want %s", target, v.State, state)
		}
		return nil
	}
}

// metric returns the value of one series on the coordinator's /metrics,
// "" when it is absent.
func (c *coordinatorProc) metric(t *testing.T, series string) string {
	t.Helper()
	return scrape(t, c.url(), series)
}

// location returns the named location.
func (s *stack) location(name string) *location {
	for _, l := range s.locations {
		if l.name == name {
			return l
		}
	}
	s.t.Fatalf("no location %s", name)
	return nil
}

// exporterMetric returns the value of one series on an exporter's
// /metrics, "" when it is absent.
func exporterMetric(t *testing.T, l *location, series string) string {
	t.Helper()
	return scrape(t, "http://"+l.addr, series)
}

// scrape returns the value of one series on base's /metrics, "" when it
// is absent.
func scrape(t *testing.T, base, series string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}
