package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// statsExporter serves the stats API as a member of location that
// schedules the targets in counts (target → succeeded, failed, unknown);
// asked counts the requests, and the last range asked.
func statsExporter(t *testing.T, location string, counts map[string][3]uint64, from time.Time, asked *atomic.Int64, rangeAsked *atomic.Int64) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != api.StatsPath || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		var req api.StatsRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		asked.Add(1)
		rangeAsked.Store(int64(req.RangeSeconds))
		resp := api.StatsResponse{Location: location, Run: "r-" + location}
		for _, k := range req.Targets {
			s := api.TargetStats{TargetKey: k}
			if c, ok := counts[k.Target]; ok {
				s.Known, s.From, s.Succeeded, s.Failed, s.Unknown = true, from, c[0], c[1], c[2]
			}
			resp.Stats = append(resp.Stats, s)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestStatsSumsEachLocationsMembers: ams is two members (the target moved
// from one to the other in the range), fra one member that answers, lon
// an exporter that does not serve the stats API, sfo one that refuses
// connections: each location's counts are its members' sums, and a
// location that cannot answer says so instead of counting zero.
func TestStatsSumsEachLocationsMembers(t *testing.T) {
	const target = "https://shop.example/"
	hourAgo := time.Now().UTC().Truncate(time.Hour).Add(-23 * time.Hour)
	var asked, rng atomic.Int64
	ams1 := statsExporter(t, "ams", map[string][3]uint64{target: {100, 4, 1}}, hourAgo, &asked, &rng)
	ams2 := statsExporter(t, "ams", map[string][3]uint64{target: {40, 2, 0}}, hourAgo.Add(-time.Hour), &asked, &rng)
	fra := statsExporter(t, "fra", map[string][3]uint64{target: {143, 0, 0}}, hourAgo, &asked, &rng)
	lon := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(lon.Close)
	conf := fmt.Sprintf(`locations:
  - name: ams
    urls: [%s, %s]
  - name: fra
    url: %s
  - name: lon
    url: %s
  - name: sfo
    url: http://%s
registry:
  modules:
    http_2xx: {prober: http, timeout: 5s}
`, ams1, ams2, fra, lon.URL, testbin.FreeAddr(t))
	c := mustStart(t, conf)
	status, body := call(t, http.MethodPost, c.url+"/api/v1/monitors", "", `{"target": "`+target+`", "module": "http_2xx"}`)
	m := mustMonitor(t, status, body, http.StatusCreated)

	var stats MonitorStats
	mustGetJSON(t, c.url+"/api/v1/monitors/"+m.ID+"/stats?range=12h", &stats)
	if got := rng.Load(); got != int64((12 * time.Hour).Seconds()) {
		t.Errorf("the exporters were asked for %ds, want 12h", got)
	}
	if asked.Load() != 3 {
		t.Errorf("%d stats requests, want one per member that serves them (3)", asked.Load())
	}
	if stats.ID != m.ID || stats.Target != target || stats.To.Sub(stats.From) != 12*time.Hour || stats.Incidents == nil {
		t.Errorf("stats = %+v", stats)
	}
	byName := map[string]LocationStats{}
	for _, l := range stats.Locations {
		byName[l.Location] = l
	}
	if len(stats.Locations) != 4 {
		t.Errorf("%d locations, want 4", len(stats.Locations))
	}
	if a := byName["ams"]; a.Counts == nil || *a.Counts != (StatsCounts{Succeeded: 140, Failed: 6, Unknown: 1, Known: true, From: hourAgo.Add(-time.Hour)}) || a.Members != 2 || a.Answered != 2 || a.Errors != nil {
		t.Errorf("ams = %+v %+v, want the sums of its two members", a, a.Counts)
	}
	if f := byName["fra"]; f.Counts == nil || f.Counts.Succeeded != 143 || f.Counts.Failed != 0 || f.Answered != 1 {
		t.Errorf("fra = %+v", f)
	}
	if l := byName["lon"]; l.Counts != nil || l.Answered != 0 || len(l.Errors) != 1 || !strings.Contains(l.Errors[0], "does not serve /api/v1/stats") {
		t.Errorf("lon = %+v, want no counts and why", l)
	}
	if s := byName["sfo"]; s.Counts != nil || len(s.Errors) != 1 || !strings.Contains(s.Errors[0], "connection refused") {
		t.Errorf("sfo = %+v, want no counts and why", s)
	}

	for _, q := range []string{"range=0s", "range=8d", "range=soon"} {
		if status, body := call(t, http.MethodGet, c.url+"/api/v1/monitors/"+m.ID+"/stats?"+q, "", ""); status != http.StatusBadRequest || !strings.Contains(body, "range: want a duration up to 1w") {
			t.Errorf("?%s: %d %s", q, status, body)
		}
	}
}

// TestStatsWaitBoundedForASilentLocation: a member that never answers
// costs the stats at most the bound, and is reported as not answering.
func TestStatsWaitBoundedForASilentLocation(t *testing.T) {
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); silent.Close() })
	c := mustStart(t, fmt.Sprintf("locations:\n  - name: ams\n    url: %s\nconfirmation:\n  min_failing_locations: 1\n  verify_timeout: 1s\nregistry:\n  modules:\n    http_2xx: {prober: http}\n", silent.URL))
	status, body := call(t, http.MethodPost, c.url+"/api/v1/monitors", "", `{"target": "https://shop.example/", "module": "http_2xx"}`)
	m := mustMonitor(t, status, body, http.StatusCreated)
	var stats MonitorStats
	mustGetJSON(t, c.url+"/api/v1/monitors/"+m.ID+"/stats", &stats)
	if len(stats.Locations) != 1 || stats.Locations[0].Counts != nil || !strings.Contains(strings.Join(stats.Locations[0].Errors, ""), "no answer within 1s") {
		t.Errorf("stats = %+v, want ams without counts, not answering within verify_timeout", stats.Locations)
	}
	if stats.To.Sub(stats.From) != defaultStatsRange {
		t.Errorf("range %s, want the default 24h", stats.To.Sub(stats.From))
	}
}
