package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// failingBatch is location's report that target fails now, with its
// snapshot.
func failingBatch(location, target string, seq int) string {
	now := time.Now().UTC().Truncate(time.Second)
	at, first := now.Format(time.RFC3339), now.Add(-10*time.Second).Format(time.RFC3339)
	return fmt.Sprintf(`{"location": %q, "run": "r-%s", "reports": [{"seq": %d, "target": %q, "module": "http_2xx", "state": "failing",
  "time": %q, "first_failure": %q, "attempts": 3,
  "result": {"prober": "http", "success": false, "reason": "connect_refused", "start": %q, "duration_ns": 1000000}}]}`,
		location, location, seq, target, at, first, at)
}

func mustPost(t *testing.T, url, body string) string {
	t.Helper()
	status, out := do(t, http.MethodPost, url, "application/json", body)
	if status/100 != 2 {
		t.Fatalf("POST %s: %d %s", url, status, out)
	}
	return out
}

func mustDecode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
}

func mustGetJSON(t *testing.T, url string, v any) {
	t.Helper()
	status, body := do(t, http.MethodGet, url, "", "")
	if status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, status, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// TestMaintenanceWindowSuppressesAnOutage: two locations fail a target
// inside a window. Without the window that confirms it at once (as the
// other target shows); inside it, the incident is recorded resolved as
// maintenance, the target never goes down, and the series says why.
func TestMaintenanceWindowSuppressesAnOutage(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	created := mustPost(t, c.url+"/api/v1/maintenances", `{"matchers": ["target=~\"https://db-.*\"", "module=\"http_2xx\""], "duration": "1h", "comment": "database upgrade"}`)
	var mt Maintenance
	if err := json.Unmarshal([]byte(created), &mt); err != nil || mt.ID == 0 || mt.EndsAt.Sub(mt.StartsAt) != time.Hour || mt.Comment != "database upgrade" {
		t.Fatalf("created window = %s (%v), want one with an ID lasting 1h", created, err)
	}
	for _, loc := range []string{"ams", "fra"} {
		mustPost(t, c.url+"/api/v1/reports", failingBatch(loc, "https://db-1.example", 1))
		mustPost(t, c.url+"/api/v1/reports", failingBatch(loc, "https://web.example", 2))
	}
	states := map[string]confirm.State{}
	for _, v := range c.targets() {
		states[v.Target] = v.State
	}
	if states["https://db-1.example"] != confirm.StateUp || states["https://web.example"] != confirm.StateDown {
		t.Fatalf("states = %v, want db-1 up (in maintenance) and web down (confirmed)", states)
	}
	var incidents []confirm.Incident
	mustGetJSON(t, c.url+"/api/v1/incidents?state=all", &incidents)
	var db *confirm.Incident
	for i := range incidents {
		if incidents[i].Target == "https://db-1.example" {
			db = &incidents[i]
		}
	}
	if db == nil || db.Resolution != confirm.ResolutionMaintenance || db.Confirmed() || db.Open() {
		t.Fatalf("db-1's incident = %+v, want it recorded, resolved as maintenance, never confirmed", db)
	}
	if v := testutil.ToFloat64(c.metrics.incidents.WithLabelValues(confirm.ResolutionMaintenance)); v != 1 {
		t.Errorf("vantage_incidents_total{resolution=maintenance} = %v, want 1", v)
	}
	err := testutil.GatherAndCompare(c.gatherer(), strings.NewReader(`
# HELP vantage_target_maintenance 1 while a maintenance window applies to the target: its failures are recorded but never confirmed; absent otherwise.
# TYPE vantage_target_maintenance gauge
vantage_target_maintenance{module="http_2xx",target="https://db-1.example"} 1
# HELP vantage_target_confirmed_down 1 while enough locations agree the target is down.
# TYPE vantage_target_confirmed_down gauge
vantage_target_confirmed_down{module="http_2xx",target="https://db-1.example"} 0
vantage_target_confirmed_down{module="http_2xx",target="https://web.example"} 1
`), "vantage_target_maintenance", "vantage_target_confirmed_down")
	if err != nil {
		t.Error(err)
	}

	// Ending the window: the failure goes on, so the incident opens again
	// and is confirmed within a couple of the machine's seconds.
	if status, body := do(t, http.MethodDelete, c.url+"/api/v1/maintenances/"+strconv.FormatUint(mt.ID, 10), "", ""); status != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", status, body)
	}
	testbin.WaitFor(t, "db-1 down after the window ended", 5*time.Second, func() error {
		for _, v := range c.targets() {
			if v.Target == "https://db-1.example" && v.State != confirm.StateDown {
				return fmt.Errorf("db-1 is %s", v.State)
			}
		}
		return nil
	})
	if err := testutil.GatherAndCompare(c.gatherer(), strings.NewReader(""), "vantage_target_maintenance"); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestMaintenanceAPI(t *testing.T) {
	dir := t.TempDir()
	c := mustStart(t, deadLocations(t, "ams", "fra")+`maintenance:
  - name: nightly
    matchers: ['module="icmp"']
    schedule: "0 3 * * *"
    duration: 30m
    comment: nightly restarts
`, func(o *Options) { o.StoragePath = filepath.Join(dir, "data") })
	base := c.url + "/api/v1/maintenances"
	start := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	var pending, active Maintenance
	mustDecode(t, mustPost(t, base, fmt.Sprintf(`{"matchers": ["target=\"a\""], "starts_at": %q, "ends_at": %q}`, start.Format(time.RFC3339), start.Add(time.Hour).Format(time.RFC3339))), &pending)
	mustDecode(t, mustPost(t, base, `{"matchers": ["target=\"b\""], "duration": "1d"}`), &active)
	// IDs are drawn at random below 2^53, unique across peers.
	if pending.ID == 0 || active.ID == 0 || pending.ID == active.ID || pending.ID >= 1<<53 || active.ID >= 1<<53 {
		t.Fatalf("IDs %d and %d: want two distinct ones in [1, 2^53)", pending.ID, active.ID)
	}
	ids := func(mt Maintenance) string { return strconv.FormatUint(mt.ID, 10) }

	for _, tc := range []struct{ body, want string }{
		{`{"duration": "1h"}`, "matchers: at least one matcher is needed"},
		{`{"matchers": ["target=b"], "duration": "1h"}`, `matchers: invalid matcher \"target=b\"`},
		{`{"matchers": ["location=\"ams\""], "duration": "1h"}`, "location is not a label of targets"},
		{`{"matchers": ["target=\"b\""]}`, "ends_at or duration must be given"},
		{`{"matchers": ["target=\"b\""], "duration": "soon"}`, `duration: want a positive duration such as 90m, 2h or 1d, got \"soon\"`},
		{`{"matchers": ["target=\"b\""], "duration": "1h", "ends_at": "2030-01-01T00:00:00Z"}`, "give one of them, not both"},
		{`{"matchers": ["target=\"b\""], "ends_at": "2001-01-01T00:00:00Z", "starts_at": "2000-01-01T00:00:00Z"}`, "is in the past"},
		{`{"matchers": ["target=\"b\""], "ends_at": "2030-01-01T00:00:00Z", "starts_at": "2031-01-01T00:00:00Z"}`, "must be after starts_at"},
		{`{"matchers": ["target=\"b\""], "duration": "1h", "comment": "` + strings.Repeat("x", maxMaintenanceComment+1) + `"}`, "comment: at most 1000 bytes"},
		{`{"matchers": ["target=\"b\""], "duration": "1h", "extra": 1}`, `unknown field \"extra\"`},
	} {
		status, body := do(t, http.MethodPost, base, "application/json", tc.body)
		if status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("POST %.80s: %d %s, want 400 containing %q", tc.body, status, body, tc.want)
		}
	}
	for _, tc := range []struct {
		id     string
		status int
	}{{"x", 400}, {"99", 404}} {
		if status, body := do(t, http.MethodDelete, base+"/"+tc.id, "", ""); status != tc.status {
			t.Errorf("DELETE %s: %d %s, want %d", tc.id, status, body, tc.status)
		}
	}

	var views []MaintenanceView
	mustGetJSON(t, base, &views)
	if len(views) != 3 || views[0].Source != "config" || views[0].Name != "nightly" || views[0].Duration != "30m" ||
		views[1].ID != active.ID || views[1].Status != "active" || views[2].ID != pending.ID || views[2].Status != "pending" || !views[2].StartsAt.Equal(start) {
		t.Fatalf("windows = %+v, want nightly (config), the newer window active, the older pending", views)
	}
	if got := views[0].EndsAt.Sub(views[0].StartsAt); got != 30*time.Minute || views[0].StartsAt.Hour() != 3 {
		t.Errorf("nightly's next window %s–%s, want 03:00 for 30m", views[0].StartsAt, views[0].EndsAt)
	}
	// A pending window is deleted; an active one ends now and stays in
	// the history.
	for _, id := range []string{ids(pending), ids(active)} {
		if status, body := do(t, http.MethodDelete, base+"/"+id, "", ""); status != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", id, status, body)
		}
	}
	if status, _ := do(t, http.MethodDelete, base+"/"+ids(active), "", ""); status != http.StatusNotFound {
		t.Errorf("deleting an ended window again: %d, want 404", status)
	}
	mustGetJSON(t, base+"?state=all", &views)
	if len(views) != 2 || views[1].ID != active.ID || views[1].Status != "expired" {
		t.Errorf("windows after deletion = %+v, want nightly and the active one expired (the pending one was never in force)", views)
	}
	mustGetJSON(t, base, &views)
	if len(views) != 1 {
		t.Errorf("current windows = %+v, want nightly only", views)
	}
}

func TestMaintenanceWindowsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	conf := deadLocations(t, "ams", "fra")
	k := confirm.Key{Target: "https://a.example", Module: "http_2xx"}
	t.Run("first run", func(t *testing.T) {
		c := mustStart(t, conf, func(o *Options) { o.StoragePath = filepath.Join(dir, "data") })
		mustPost(t, c.url+"/api/v1/maintenances", `{"matchers": ["target=\"https://a.example\""], "duration": "2h"}`)
		if !c.maint.inMaintenance(k, time.Now()) {
			t.Fatal("the window does not apply")
		}
	})
	c2 := mustStart(t, conf, func(o *Options) { o.StoragePath = filepath.Join(dir, "data") })
	if !c2.maint.inMaintenance(k, time.Now()) || c2.maint.inMaintenance(confirm.Key{Target: "https://b.example", Module: "http_2xx"}, time.Now()) {
		t.Error("after a restart the window is lost or applies to other targets")
	}
}

func TestMaintenanceChangesNeedTheToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	mustWrite(t, tokenFile, "t0ken\n")
	c := mustStart(t, deadLocations(t, "ams", "fra"), func(o *Options) { o.APITokenFile = tokenFile })
	body := `{"matchers": ["target=\"a\""], "duration": "1h"}`
	if status, _ := do(t, http.MethodPost, c.url+"/api/v1/maintenances", "application/json", body); status != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d, want 401", status)
	}
	if status, _ := do(t, http.MethodDelete, c.url+"/api/v1/maintenances/1", "", ""); status != http.StatusUnauthorized {
		t.Errorf("DELETE without the token: %d, want 401", status)
	}
	req, _ := http.NewRequest(http.MethodPost, c.url+"/api/v1/maintenances", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST with the token: %d, want 201", resp.StatusCode)
	}
	if status, _ := do(t, http.MethodGet, c.url+"/api/v1/maintenances", "", ""); status != http.StatusOK {
		t.Errorf("GET needs no token: %d", status)
	}
}
