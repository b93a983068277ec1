package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	bolt "go.etcd.io/bbolt"

	exporterconfig "github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// registryConfig has three locations whose exporters refuse connections;
// nyc has the http module only.
func registryConfig(t *testing.T) string {
	return fmt.Sprintf(`locations:
  - name: ams
    url: http://%s
  - name: fra
    url: http://%s
  - name: nyc
    url: http://%s
    modules: [http_2xx]
registry:
  modules:
    http_2xx: {prober: http, timeout: 5s}
    ssh: {prober: tcp, timeout: 10s}
    ping: {prober: icmp}
`, testbin.FreeAddr(t), testbin.FreeAddr(t), testbin.FreeAddr(t))
}

// call sends body as JSON (none when empty) with token (none when empty)
// and returns the status and body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	contentType := ""
	if body != "" {
		contentType = "application/json"
	}
	return send(t, method, url, contentType, token, body)
}

func mustMonitor(t *testing.T, status int, body string, want int) Monitor {
	t.Helper()
	if status != want {
		t.Fatalf("answered %d %s, want %d", status, body, want)
	}
	var m Monitor
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return m
}

func TestMonitorValidationNamesTheField(t *testing.T) {
	c := mustStart(t, registryConfig(t))
	url := c.url + "/api/v1/monitors"
	for _, tc := range []struct{ body, want string }{
		{``, `request body is empty`},
		{`{"target": "https://a.example/", "module": "http_2xx", "color": "red"}`, `unknown field \"color\"`},
		{`{"target": "https://a.example/"}`, `module: module must be set (known: http_2xx, ping, ssh)`},
		{`{"target": "https://a.example/", "module": "http_3xx"}`, `module: unknown module \"http_3xx\" (known: http_2xx, ping, ssh)`},
		{`{"target": "http://", "module": "http_2xx"}`, `target: module \"http_2xx\" (prober http): target URL \"http://\" has no host`},
		{`{"target": "db.example", "module": "ssh"}`, `target: module \"ssh\" (prober tcp): target \"db.example\" is not host:port`},
		{`{"target": "db.example:22:1", "module": "ping"}`, `target: module \"ping\" (prober icmp): target \"db.example:22:1\" is not a host name or IP address (without a port)`},
		{`{"target": "https://a.example/", "module": "http_2xx", "interval": "2s"}`, `interval: interval 2s is shorter than module \"http_2xx\"'s timeout 5s`},
		{`{"target": "https://a.example/", "module": "http_2xx", "interval": "500ms"}`, `interval: interval must be at least 1s, got 500ms`},
		{`{"target": "https://a.example/", "module": "http_2xx", "interval": "soon"}`, `invalid request body`},
		{`{"target": "https://a.example/", "module": "http_2xx", "labels": {"job": "x"}}`, `labels: label name \"job\" is reserved`},
		{`{"target": "https://a.example/", "module": "http_2xx", "labels": {"1team": "x"}}`, `labels: invalid label name \"1team\"`},
		{`{"target": "https://a.example/", "module": "http_2xx", "labels": {"failure_threshold": "3"}}`, `labels: label name \"failure_threshold\" is set by the registry`},
		{`{"target": "https://a.example/", "module": "http_2xx", "failure_threshold": -1}`, `failure_threshold`},
		{`{"target": "https://a.example/", "module": "http_2xx", "locations": ["lon"]}`, `locations: unknown location \"lon\" (known: ams, fra, nyc)`},
		{`{"target": "https://a.example/", "module": "http_2xx", "locations": ["ams", "ams"]}`, `locations: location \"ams\" is listed twice`},
		{`{"target": "db.example:22", "module": "ssh", "locations": ["nyc"]}`, `locations: location \"nyc\" does not have module \"ssh\"`},
		{`{"target": "https://a.example/", "module": "http_2xx", "owner": "a b"}`, `owner: invalid owner \"a b\"`},
	} {
		status, body := call(t, http.MethodPost, url, "", tc.body)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("POST %s: %d %s, want 400 with %s", tc.body, status, body, tc.want)
		}
	}
	if n := len(c.registry.list()); n != 0 {
		t.Errorf("%d monitors registered by invalid requests", n)
	}
}

func TestMonitorLifecycle(t *testing.T) {
	c := mustStart(t, registryConfig(t))
	url := c.url + "/api/v1/monitors"
	status, body := call(t, http.MethodPost, url, "", `{"target": "https://shop.example/", "module": "http_2xx", "labels": {"team": "web"}, "failure_threshold": 3}`)
	web := mustMonitor(t, status, body, http.StatusCreated)
	if !regexp.MustCompile(`^[a-z2-7]{26}$`).MatchString(web.ID) {
		t.Errorf("id %q: want 26 random URL-safe characters", web.ID)
	}
	if web.Interval.String() != "1m" || *web.FailureThreshold != 3 || web.CreatedAt.IsZero() {
		t.Errorf("created %+v: want the default interval 1m, the threshold and the creation time", web)
	}
	status, body = call(t, http.MethodPost, url, "", `{"target": "db.example:22", "module": "ssh", "interval": "30s", "labels": {"team": "db"}, "locations": ["ams", "fra"]}`)
	ssh := mustMonitor(t, status, body, http.StatusCreated)
	if ssh.ID == web.ID {
		t.Fatal("two monitors share an id")
	}
	status, body = call(t, http.MethodPost, url, "", `{"target": "https://shop.example/", "module": "http_2xx"}`)
	if status != http.StatusConflict || !strings.Contains(body, `a monitor of this target and module exists`) {
		t.Errorf("a second monitor of one target and module: %d %s, want 409", status, body)
	}

	var list []Monitor
	mustGetJSON(t, url+"?label=team=db", &list)
	if len(list) != 1 || list[0].ID != ssh.ID {
		t.Errorf("?label=team=db lists %+v, want the ssh monitor alone", list)
	}
	mustGetJSON(t, url, &list)
	if len(list) != 2 {
		t.Errorf("lists %d monitors, want 2", len(list))
	}
	if status, body := call(t, http.MethodGet, url+"?label=team", "", ""); status != http.StatusBadRequest || !strings.Contains(body, "label: want name=value") {
		t.Errorf("?label=team: %d %s", status, body)
	}

	status, body = call(t, http.MethodPut, url+"/"+web.ID, "", `{"target": "https://shop.example/", "module": "http_2xx", "interval": "10s", "labels": {"team": "shop"}}`)
	changed := mustMonitor(t, status, body, http.StatusOK)
	if changed.ID != web.ID || changed.Labels["team"] != "shop" || changed.FailureThreshold != nil || !changed.CreatedAt.Equal(web.CreatedAt) {
		t.Errorf("PUT gave %+v, want the new spec under the same id and creation time", changed)
	}
	if status, body := call(t, http.MethodPut, url+"/"+web.ID, "", `{"target": "db.example:22", "module": "ssh"}`); status != http.StatusConflict {
		t.Errorf("PUT onto another monitor's target: %d %s, want 409", status, body)
	}
	if status, body := call(t, http.MethodPut, url+"/nosuchid", "", `{"target": "https://x.example/", "module": "http_2xx"}`); status != http.StatusNotFound {
		t.Errorf("PUT of an unknown id: %d %s", status, body)
	}
	var got Monitor
	mustGetJSON(t, url+"/"+web.ID, &got)
	if got.Interval.String() != "10s" {
		t.Errorf("GET after PUT: %+v", got)
	}

	if status, body := call(t, http.MethodDelete, url+"/"+ssh.ID, "", ""); status != http.StatusNoContent {
		t.Errorf("DELETE: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodGet, url+"/"+ssh.ID, "", ""); status != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", status)
	}
	if status, _ := call(t, http.MethodDelete, url+"/"+ssh.ID, "", ""); status != http.StatusNotFound {
		t.Errorf("DELETE twice: %d, want 404", status)
	}
	if e, ok := c.replica.Get(monitorKind, web.ID); !ok || e.Version.Peer != c.replica.Peer() {
		t.Errorf("the monitor is not in the replicated state under kind %q: %+v", monitorKind, e)
	}
}

func TestMonitorsSurviveARestart(t *testing.T) {
	conf := registryConfig(t)
	storage := filepath.Join(t.TempDir(), "data")
	_, srv, _ := startAt(t, conf, storage)
	status, body := call(t, http.MethodPost, srv.URL+"/api/v1/monitors", "", `{"target": "https://shop.example/", "module": "http_2xx"}`)
	m := mustMonitor(t, status, body, http.StatusCreated)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	_, srv, _ = startAt(t, conf, storage)
	var got Monitor
	mustGetJSON(t, srv.URL+"/api/v1/monitors/"+m.ID, &got)
	if got.Target != m.Target {
		t.Errorf("after a restart: %+v, want %+v", got, m)
	}
}

// TestSDServesEachLocationItsMonitors: the http_sd document of a
// location holds the monitors it checks, in the format the exporters'
// discovery resolves to exactly the registered target, module, interval
// and labels.
func TestSDServesEachLocationItsMonitors(t *testing.T) {
	c := mustStart(t, registryConfig(t))
	url := c.url + "/api/v1/monitors"
	status, body := call(t, http.MethodPost, url, "", `{"target": "https://shop.example/", "module": "http_2xx", "interval": "15s", "labels": {"team": "web"}, "failure_threshold": 4}`)
	web := mustMonitor(t, status, body, http.StatusCreated)
	status, body = call(t, http.MethodPost, url, "", `{"target": "db.example:22", "module": "ssh", "locations": ["ams"]}`)
	ssh := mustMonitor(t, status, body, http.StatusCreated)
	status, body = call(t, http.MethodPost, url, "", `{"target": "192.0.2.1", "module": "ping"}`)
	ping := mustMonitor(t, status, body, http.StatusCreated)

	sd := func(query string) []*targetgroup.Group {
		t.Helper()
		status, body := call(t, http.MethodGet, c.url+"/api/v1/sd"+query, "", "")
		if status != http.StatusOK {
			t.Fatalf("sd%s: %d %s", query, status, body)
		}
		var groups []*targetgroup.Group
		if err := json.Unmarshal([]byte(body), &groups); err != nil {
			t.Fatalf("sd%s is not http_sd: %v in %s", query, err, body)
		}
		return groups
	}
	ids := func(groups []*targetgroup.Group) []string {
		var out []string
		for _, g := range groups {
			out = append(out, string(g.Labels[MonitorIDLabel]))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { slices.Sort(s); return s }
	if got, want := ids(sd("?location=ams")), sorted(web.ID, ssh.ID, ping.ID); !slices.Equal(got, want) {
		t.Errorf("ams serves %v, want %v", got, want)
	}
	if got, want := ids(sd("?location=fra")), sorted(web.ID, ping.ID); !slices.Equal(got, want) {
		t.Errorf("fra serves %v, want %v (ssh lists ams alone)", got, want)
	}
	if got, want := ids(sd("?location=nyc")), []string{web.ID}; !slices.Equal(got, want) {
		t.Errorf("nyc serves %v, want %v (nyc has http_2xx alone)", got, want)
	}
	if got := ids(sd("")); len(got) != 3 {
		t.Errorf("without a location: %v, want all three", got)
	}
	if status, body := call(t, http.MethodGet, c.url+"/api/v1/sd?location=lon", "", ""); status != http.StatusBadRequest || !strings.Contains(body, `location: unknown location \"lon\"`) {
		t.Errorf("unknown location: %d %s", status, body)
	}

	// The exporter's discovery, given the document as an http_sd source,
	// resolves exactly the registered monitors.
	exp, err := exporterconfig.Parse([]byte(`modules:
  http_2xx: {prober: http, timeout: 5s}
  ssh: {prober: tcp, timeout: 10s}
  ping: {prober: icmp, timeout: 1s}
targets:
  - name: registry
    http_sd_configs:
      - url: `+c.url+`/api/v1/sd?location=ams
`), "exporter.yml")
	if err != nil {
		t.Fatal(err)
	}
	resolved, err := exp.ResolveDiscovered("registry", sd("?location=ams"))
	if err != nil {
		t.Fatalf("the exporter does not accept the document: %v", err)
	}
	byTarget := map[string]exporterconfig.ScheduledTarget{}
	for _, r := range resolved {
		byTarget[r.Target] = r
	}
	w := byTarget["https://shop.example/"]
	if w.Module != "http_2xx" || w.Interval.String() != "15s" || w.Labels["team"] != "web" || w.Labels[MonitorIDLabel] != web.ID || w.Labels[FailureThresholdLabel] != "4" || len(w.Labels) != 3 {
		t.Errorf("the exporter resolves the web monitor as %+v", w)
	}
	if s := byTarget["db.example:22"]; s.Module != "ssh" || s.Interval.String() != "1m0s" || len(s.Labels) != 1 {
		t.Errorf("the exporter resolves the ssh monitor as %+v", s)
	}
	if len(resolved) != 3 {
		t.Errorf("the exporter resolves %d targets, want 3", len(resolved))
	}
}

// TestMonitorsWrittenByAPeer: a monitor a peer wrote, merged into the
// replicated state as a transport would, is served like a local one, and
// its deletion on the peer removes it here.
func TestMonitorsWrittenByAPeer(t *testing.T) {
	c := mustStart(t, registryConfig(t))
	db, err := bolt.Open(filepath.Join(t.TempDir(), "peer.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	peer, err := replica.Open(db, "peer-b")
	if err != nil {
		t.Fatal(err)
	}
	m := Monitor{ID: "fromthepeer", MonitorSpec: MonitorSpec{Target: "https://peer.example/", Module: "http_2xx", Interval: model.Duration(time.Minute)}}
	e, err := peer.Put(monitorKind, m.ID, m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.replica.Merge([]replica.Entry{e}); err != nil {
		t.Fatal(err)
	}
	var got Monitor
	mustGetJSON(t, c.url+"/api/v1/monitors/fromthepeer", &got)
	if got.Target != m.Target {
		t.Errorf("the peer's monitor reads %+v", got)
	}
	if status, body := call(t, http.MethodGet, c.url+"/api/v1/sd?location=fra", "", ""); status != http.StatusOK || !strings.Contains(body, `"monitor_id":"fromthepeer"`) {
		t.Errorf("fra's http_sd: %d %s, want the peer's monitor", status, body)
	}
	if status, _ := call(t, http.MethodPost, c.url+"/api/v1/monitors", "", `{"target": "https://peer.example/", "module": "http_2xx"}`); status != http.StatusConflict {
		t.Errorf("registering the peer's target again: %d, want 409", status)
	}
	e, err = peer.Delete(monitorKind, m.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.replica.Merge([]replica.Entry{e}); err != nil {
		t.Fatal(err)
	}
	if status, _ := call(t, http.MethodGet, c.url+"/api/v1/monitors/fromthepeer", "", ""); status != http.StatusNotFound {
		t.Errorf("after the peer's deletion: %d, want 404", status)
	}
}
