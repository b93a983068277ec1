// Package peers runs coordinator peer groups as real processes on
// loopback, each coordinator on its own address (127.0.0.2, .3, .4) with
// its own incident log, gossiping with memberlist: what a client writes
// to one (pushed events, acknowledgements, maintenance windows,
// registered monitors, deletions) takes effect on the others, a peer that was stopped catches
// up when it returns, and what was deleted while it was away stays
// deleted.
package peers

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// source is the events' source: the test's client address (no tokens).
const source = "127.0.0.1"

type peer struct {
	name, host  string
	web, gossip string // host:port
	dir, config string
	peers       []string
	proc        *testbin.Process
	t           *testing.T
	bin         string
}

func (p *peer) url() string { return "http://" + p.web }

// start runs (or runs again, with the same storage) the coordinator.
func (p *peer) start() {
	p.t.Helper()
	args := []string{"--config.file=" + p.config, "--storage.path=" + filepath.Join(p.dir, "data"),
		"--web.listen-address=" + p.web, "--log.level=debug",
		"--cluster.name=" + p.name, "--cluster.listen-address=" + p.gossip}
	for _, o := range p.peers {
		args = append(args, "--cluster.peer="+o)
	}
	p.proc = testbin.StartReady(p.t, "vantage-coordinator "+p.name, exec.Command(p.bin, args...), p.url()+"/-/ready")
}

func (p *peer) stop() {
	p.t.Helper()
	if err := p.proc.Stop(10 * time.Second); err != nil {
		p.t.Fatal(err)
	}
}

// startGroup starts n coordinators, each listing the others as peers,
// and waits until each sees all n.
func startGroup(t *testing.T, n int) []*peer {
	t.Helper()
	bin := testbin.Build(t, "./cmd/vantage-coordinator")[0]
	dir := t.TempDir()
	// Two locations nobody answers for: reports are all the coordinator
	// hears of targets. Monitors may use http_2xx.
	config := filepath.Join(dir, "coordinator.yml")
	conf := fmt.Sprintf("locations:\n  - {name: ams, url: \"http://%s\"}\n  - {name: fra, url: \"http://%s\"}\n"+
		"registry:\n  modules:\n    http_2xx: {prober: http, timeout: 5s}\n", testbin.FreeAddr(t), testbin.FreeAddr(t))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	group := make([]*peer, n)
	for i := range group {
		host := fmt.Sprintf("127.0.0.%d", i+2)
		_, webPort, _ := net.SplitHostPort(testbin.FreeAddr(t))
		_, gossipPort, _ := net.SplitHostPort(testbin.FreeAddr(t))
		group[i] = &peer{name: fmt.Sprintf("coord-%c", 'a'+i), host: host, web: net.JoinHostPort(host, webPort),
			gossip: net.JoinHostPort(host, gossipPort), dir: filepath.Join(dir, fmt.Sprint(i)), config: config, t: t, bin: bin}
	}
	for _, p := range group {
		for _, o := range group {
			if o != p {
				p.peers = append(p.peers, o.gossip)
			}
		}
	}
	for _, p := range group {
		p.start()
	}
	for _, p := range group {
		p.waitMembers(n)
	}
	return group
}

// waitMembers waits until p sees n live members, itself included.
func (p *peer) waitMembers(n int) {
	p.t.Helper()
	want := fmt.Sprintf("vantage_coordinator_cluster_members %d\n", n)
	testbin.WaitFor(p.t, fmt.Sprintf("%s to see %d members", p.name, n), 10*time.Second, func() error {
		if m := p.get("/metrics"); !strings.Contains(m, want) {
			return fmt.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
		return nil
	})
}

func (p *peer) do(method, path, contentType, body string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.url()+path, strings.NewReader(body))
	if err != nil {
		p.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		p.t.Fatalf("%s %s on %s: %v", method, path, p.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (p *peer) get(path string) string {
	p.t.Helper()
	status, body := p.do(http.MethodGet, path, "", "")
	if status != http.StatusOK {
		p.t.Fatalf("GET %s on %s: %d %s", path, p.name, status, body)
	}
	return body
}

func (p *peer) mustWrite(method, path, contentType, body string) string {
	p.t.Helper()
	status, out := p.do(method, path, contentType, body)
	if status/100 != 2 {
		p.t.Fatalf("%s %s on %s: %d %s", method, path, p.name, status, out)
	}
	return out
}

func (p *peer) beat(id, raise string) {
	p.t.Helper()
	p.mustWrite(http.MethodPost, "/api/v1/events", "application/x-www-form-urlencoded", url.Values{"id": {id}, "raise": {raise}}.Encode())
}

type event struct {
	State        string    `json:"state"`
	RaiseAt      time.Time `json:"raise_at"`
	LastReceived time.Time `json:"last_received"`
	Submissions  int       `json:"submissions"`
}

// event returns p's view of id; "" state when p has none.
func (p *peer) event(id string) event {
	p.t.Helper()
	status, body := p.do(http.MethodGet, "/api/v1/events/"+id+"?source="+source, "", "")
	var e event
	switch status {
	case http.StatusNotFound:
	case http.StatusOK:
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			p.t.Fatal(err)
		}
	default:
		p.t.Fatalf("GET event %s on %s: %d %s", id, p.name, status, body)
	}
	return e
}

// waitEvent waits until every peer of group has id in state ("" for
// none), within limit, and returns how long that took.
func waitEvent(t *testing.T, group []*peer, id, state string, limit time.Duration) time.Duration {
	t.Helper()
	return testbin.WaitFor(t, fmt.Sprintf("event %s %q on every peer", id, state), limit, func() error {
		for _, p := range group {
			if got := p.event(id).State; got != state {
				return fmt.Errorf("%s has it %q", p.name, got)
			}
		}
		return nil
	})
}

// A heartbeat submitted to one coordinator every second with raise=+3s
// stays pending on both; once it stops, both raise it within 3s ± 1s of
// the last beat and expose the same series, for Alertmanager to dedup;
// an acknowledgement on one is seen on the other.
func TestTwoCoordinatorsAgree(t *testing.T) {
	group := startGroup(t, 2)
	a, b := group[0], group[1]
	a.beat("backup", "+3s")
	took := waitEvent(t, group, "backup", "pending", 5*time.Second)
	t.Logf("the event reached %s in %s", b.name, took.Round(time.Millisecond))
	var last time.Time
	for range 4 {
		time.Sleep(time.Second)
		a.beat("backup", "+3s")
		last = time.Now()
		for _, p := range group {
			if s := p.event("backup").State; s != "pending" {
				t.Fatalf("%s: %s while the heartbeat goes on, want pending", p.name, s)
			}
		}
	}
	// The last beat reached b: its raise time is the one a set.
	testbin.WaitFor(t, "the last beat on "+b.name, 3*time.Second, func() error {
		if ea, eb := a.event("backup"), b.event("backup"); eb.Submissions != ea.Submissions || !eb.RaiseAt.Equal(ea.RaiseAt) {
			return fmt.Errorf("%s has %d submissions raising at %s, %s %d at %s", b.name, eb.Submissions, eb.RaiseAt, a.name, ea.Submissions, ea.RaiseAt)
		}
		return nil
	})
	waitEvent(t, group, "backup", "raised", 6*time.Second)
	if after := time.Since(last); after < 2*time.Second || after > 4*time.Second+500*time.Millisecond {
		t.Errorf("raised on both %s after the last beat, want 3s ± 1s", after.Round(time.Millisecond))
	}
	series := fmt.Sprintf(`vantage_event_raised{id="backup",source=%q} 1`, source)
	for _, p := range group {
		if m := p.get("/metrics"); !strings.Contains(m, series) {
			t.Errorf("%s's metrics lack %s", p.name, series)
		}
	}
	b.mustWrite(http.MethodPost, "/api/v1/events/backup/ack?source="+source, "", "")
	waitEvent(t, group, "backup", "acknowledged", 5*time.Second)
	a.beat("backup", "clear")
	waitEvent(t, group, "backup", "cleared", 5*time.Second)
}

// failingBatch is a report batch of location saying target fails.
func failingBatch(t *testing.T, location, target string, seq uint64) string {
	now := time.Now().UTC().Truncate(time.Second)
	b, err := json.Marshal(api.Batch{Location: location, Run: "r-" + location, Reports: []api.Report{{
		Seq: seq, Target: target, Module: "http_2xx", State: api.StateFailing, Time: now, FirstFailure: now.Add(-10 * time.Second), Attempts: 3,
		Result: &result.Result{Prober: "http", Reason: result.ReasonConnectRefused, Start: now, Duration: time.Millisecond},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type incident struct {
	Target     string `json:"target"`
	Resolution string `json:"resolution"`
}

// A maintenance window created on one coordinator suppresses on the
// other: both locations fail the target there, and the incident is
// recorded resolved as maintenance instead of confirmed. Deleting the
// window on the second deletes it on the first.
func TestMaintenanceWindowAppliesOnThePeer(t *testing.T) {
	group := startGroup(t, 2)
	a, b := group[0], group[1]
	var mt struct {
		ID uint64 `json:"id"`
	}
	created := a.mustWrite(http.MethodPost, "/api/v1/maintenances", "application/json", `{"matchers": ["target=\"https://db.example\""], "duration": "1h", "comment": "upgrade"}`)
	if err := json.Unmarshal([]byte(created), &mt); err != nil {
		t.Fatal(err)
	}
	listed := func(p *peer) bool {
		return strings.Contains(p.get("/api/v1/maintenances"), fmt.Sprintf(`"id":%d,`, mt.ID))
	}
	testbin.WaitFor(t, "the window on "+b.name, 5*time.Second, func() error {
		if !listed(b) {
			return fmt.Errorf("%s does not list window %d", b.name, mt.ID)
		}
		return nil
	})
	for i, loc := range []string{"ams", "fra"} {
		b.mustWrite(http.MethodPost, "/api/v1/reports", "application/json", failingBatch(t, loc, "https://db.example", uint64(i+1)))
	}
	var incidents []incident
	if err := json.Unmarshal([]byte(b.get("/api/v1/incidents?state=all")), &incidents); err != nil {
		t.Fatal(err)
	}
	if len(incidents) != 1 || incidents[0].Resolution != "maintenance" {
		t.Fatalf("%s's incidents = %+v, want one resolved as maintenance", b.name, incidents)
	}
	m := b.get("/metrics")
	for _, want := range []string{`vantage_target_confirmed_down{module="http_2xx",target="https://db.example"} 0`,
		`vantage_target_maintenance{module="http_2xx",target="https://db.example"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("%s's metrics lack %s", b.name, want)
		}
	}
	b.mustWrite(http.MethodDelete, fmt.Sprintf("/api/v1/maintenances/%d", mt.ID), "", "")
	testbin.WaitFor(t, "the window ended on "+a.name, 5*time.Second, func() error {
		if listed(a) {
			return fmt.Errorf("%s still lists window %d as current", a.name, mt.ID)
		}
		return nil
	})
}

// Of three coordinators, one is stopped while three writes happen on the
// others (a new event, a new maintenance window, an event deleted that
// the stopped one still holds): within 10s of its return it has them
// all, and the deleted event comes back nowhere.
func TestStoppedPeerCatchesUp(t *testing.T) {
	group := startGroup(t, 3)
	a, b, c := group[0], group[1], group[2]
	a.beat("stale", "+1h")
	waitEvent(t, group, "stale", "pending", 5*time.Second)
	c.stop()
	a.waitMembers(2)

	a.beat("new", "+1h")
	created := b.mustWrite(http.MethodPost, "/api/v1/maintenances", "application/json", `{"matchers": ["module=\"icmp\""], "duration": "2h"}`)
	var mt struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(created), &mt); err != nil {
		t.Fatal(err)
	}
	b.mustWrite(http.MethodDelete, "/api/v1/events/stale?source="+source, "", "")
	waitEvent(t, group[:2], "stale", "", 5*time.Second)

	c.start()
	took := testbin.WaitFor(t, c.name+" to catch up", 10*time.Second, func() error {
		if s := c.event("new").State; s != "pending" {
			return fmt.Errorf("event new is %q", s)
		}
		if s := c.event("stale").State; s != "" {
			return fmt.Errorf("the deleted event is %q", s)
		}
		if !strings.Contains(c.get("/api/v1/maintenances"), fmt.Sprintf(`"id":%d,`, mt.ID)) {
			return fmt.Errorf("window %d missing", mt.ID)
		}
		return nil
	})
	t.Logf("%s caught up %s after its return", c.name, took.Round(time.Millisecond))
	// A few push/pull rounds later, the stale peer has brought nothing
	// back.
	time.Sleep(2 * time.Second)
	for _, p := range group {
		if s := p.event("stale").State; s != "" {
			t.Errorf("the deleted event came back on %s: %q", p.name, s)
		}
	}
}

// monitor returns p's view of the registered monitor id: its target and
// interval, or "" when p does not have it.
func (p *peer) monitor(id string) string {
	p.t.Helper()
	status, body := p.do(http.MethodGet, "/api/v1/monitors/"+id, "", "")
	if status == http.StatusNotFound {
		return ""
	}
	if status != http.StatusOK {
		p.t.Fatalf("GET monitor %s on %s: %d %s", id, p.name, status, body)
	}
	var m struct {
		Target   string `json:"target"`
		Interval string `json:"interval"`
	}
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		p.t.Fatal(err)
	}
	return m.Target + " every " + m.Interval
}

// register creates a monitor of target on p and returns its id.
func (p *peer) register(target, interval string) string {
	p.t.Helper()
	out := p.mustWrite(http.MethodPost, "/api/v1/monitors", "application/json",
		fmt.Sprintf(`{"target": %q, "module": "http_2xx", "interval": %q}`, target, interval))
	var m struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil || m.ID == "" {
		p.t.Fatalf("registering %s on %s: %q (%v)", target, p.name, out, err)
	}
	return m.ID
}

// waitMonitor waits until every peer of group has monitor id as want
// ("" for gone), and returns how long that took.
func waitMonitor(t *testing.T, group []*peer, id, want string, limit time.Duration) time.Duration {
	t.Helper()
	return testbin.WaitFor(t, fmt.Sprintf("monitor %s to be %q on every peer", id, want), limit, func() error {
		for _, p := range group {
			if got := p.monitor(id); got != want {
				return fmt.Errorf("%s has %q", p.name, got)
			}
		}
		return nil
	})
}

// TestMonitorRegistryReplicated: a monitor registered on one coordinator
// is served by the other within 5s, in its API and its http_sd document;
// a change and a deletion follow; a peer stopped during three writes has
// them all within 10s of its return.
func TestMonitorRegistryReplicated(t *testing.T) {
	group := startGroup(t, 2)
	a, b := group[0], group[1]
	id := a.register("http://127.0.0.1:9/one", "30s")
	took := waitMonitor(t, group, id, "http://127.0.0.1:9/one every 30s", 5*time.Second)
	t.Logf("monitor registered on %s served by %s after %s", a.name, b.name, took.Round(time.Millisecond))
	if sd := b.get("/api/v1/sd?location=ams"); !strings.Contains(sd, "http://127.0.0.1:9/one") {
		t.Errorf("%s's http_sd document lacks the monitor: %s", b.name, sd)
	}
	b.mustWrite(http.MethodPut, "/api/v1/monitors/"+id, "application/json", `{"target": "http://127.0.0.1:9/one", "module": "http_2xx", "interval": "1m"}`)
	waitMonitor(t, group, id, "http://127.0.0.1:9/one every 1m", 5*time.Second)

	b.stop()
	a.waitMembers(1)
	two := a.register("http://127.0.0.1:9/two", "30s")
	three := a.register("http://127.0.0.1:9/three", "30s")
	a.mustWrite(http.MethodDelete, "/api/v1/monitors/"+id, "", "")
	b.start()
	took = testbin.WaitFor(t, b.name+" to catch up with three writes", 10*time.Second, func() error {
		for id, want := range map[string]string{id: "", two: "http://127.0.0.1:9/two every 30s", three: "http://127.0.0.1:9/three every 30s"} {
			if got := b.monitor(id); got != want {
				return fmt.Errorf("monitor %s is %q", id, got)
			}
		}
		return nil
	})
	t.Logf("%s had the three writes made while it was stopped %s after its return", b.name, took.Round(time.Millisecond))
}
