package coordinator

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
)

const uptimeTarget = "https://shop.example/health?x=1"

// outage is a confirmed outage of uptimeTarget from start, length long,
// reported by ams and seen by fra from 5s later.
func outage(id uint64, start time.Time, length time.Duration) confirm.Incident {
	end := start.Add(length)
	return confirm.Incident{ID: id, Target: uptimeTarget, Module: "http_2xx", State: confirm.StateResolved, LastState: confirm.StateDown,
		Reporter: "ams", StartedAt: start, OpenedAt: start.Add(10 * time.Second), ConfirmedAt: start.Add(20 * time.Second),
		ResolvedAt: end.Add(time.Minute), EndedAt: end, Resolution: confirm.ResolutionRecovered,
		Evidence: []confirm.Evidence{
			{Location: "ams", Time: start.Add(10 * time.Second), Result: confirm.OutcomeFailure},
			{Location: "fra", Time: start.Add(5 * time.Second), Result: confirm.OutcomeFailure},
			{Location: "sfo", Time: start.Add(15 * time.Second), Result: confirm.OutcomeUnknown},
			{Location: "ams", Time: end, Result: confirm.OutcomeSuccess},
			{Location: "fra", Time: end, Result: confirm.OutcomeSuccess},
		}}
}

// TestUptimeIsExactToTheSecond: over 30 days holding one confirmed outage
// of 1234s, a false alarm and a failure in maintenance, only the outage
// counts, to the second.
func TestUptimeIsExactToTheSecond(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	now := time.Now().UTC()
	falseAlarm := confirm.Incident{ID: 2, Target: uptimeTarget, Module: "http_2xx", State: confirm.StateResolved, LastState: confirm.StateSeemsDown,
		Reporter: "fra", StartedAt: now.Add(-2 * day), OpenedAt: now.Add(-2 * day), ResolvedAt: now.Add(-2*day + time.Hour),
		EndedAt: now.Add(-2*day + time.Minute), Resolution: confirm.ResolutionFalseAlarm,
		Evidence: []confirm.Evidence{{Location: "fra", Time: now.Add(-2 * day), Result: confirm.OutcomeFailure},
			{Location: "fra", Time: now.Add(-2*day + time.Minute), Result: confirm.OutcomeSuccess}}}
	maintained := confirm.Incident{ID: 3, Target: uptimeTarget, Module: "http_2xx", State: confirm.StateResolved, LastState: confirm.StateSeemsDown,
		Reporter: "ams", StartedAt: now.Add(-day), OpenedAt: now.Add(-day), ResolvedAt: now.Add(-day), Resolution: confirm.ResolutionMaintenance}
	other := outage(4, now.Add(-5*day), time.Hour)
	other.Module = "tcp_connect"
	if err := c.store.Put([]confirm.Incident{outage(1, now.Add(-10*day), 1234*time.Second), falseAlarm, maintained, other}); err != nil {
		t.Fatal(err)
	}
	var u Uptime
	mustGetJSON(t, c.url+"/api/v1/targets/"+url.PathEscape(uptimeTarget)+"/uptime?module=http_2xx&range=30d", &u)
	if u.Target != uptimeTarget || u.Module != "http_2xx" || u.RangeSeconds != 30*86400 || u.To.Sub(u.From) != 30*day {
		t.Fatalf("uptime of %s %s over %vs (%s–%s), want the target over 30 days", u.Target, u.Module, u.RangeSeconds, u.From, u.To)
	}
	if u.DownSeconds != 1234 || u.UptimeRatio != 1-1234.0/(30*86400) || len(u.Outages) != 1 || u.Outages[0].IncidentID != 1 || u.Outages[0].DownSeconds != 1234 {
		t.Errorf("down %vs, ratio %v, outages %+v; want 1234s, %v, incident 1 only", u.DownSeconds, u.UptimeRatio, u.Outages, 1-1234.0/(30*86400))
	}
	want := map[string]float64{"ams": 1234, "fra": 1229 + 60}
	if len(u.Locations) != 2 {
		t.Errorf("locations = %+v, want ams and fra (sfo could not tell)", u.Locations)
	}
	for _, l := range u.Locations {
		if l.FailingSeconds != want[l.Location] || l.ReachabilityRatio != 1-want[l.Location]/(30*86400) {
			t.Errorf("%s failing %vs (reachability %v), want %vs", l.Location, l.FailingSeconds, l.ReachabilityRatio, want[l.Location])
		}
	}
	// A day's range leaves the outage out.
	mustGetJSON(t, c.url+"/api/v1/targets/"+url.PathEscape(uptimeTarget)+"/uptime?module=http_2xx&range=1d", &u)
	if u.DownSeconds != 0 || u.UptimeRatio != 1 {
		t.Errorf("over a day: down %vs ratio %v, want 0 and 1", u.DownSeconds, u.UptimeRatio)
	}

	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{url.PathEscape(uptimeTarget) + "/uptime?module=http_2xx&range=soon", 400, "range must be a duration of at least 1m"},
		{url.PathEscape(uptimeTarget) + "/uptime?module=http_2xx&range=91d", 400, "longer than --storage.retention 90d"},
		{url.PathEscape(uptimeTarget) + "/uptime", 400, "module must be given"},
		{"https%3A%2F%2Fnone.example/uptime?module=http_2xx", 404, "unknown to the coordinator and has no incidents"},
	} {
		status, body := do(t, http.MethodGet, c.url+"/api/v1/targets/"+tc.query, "", "")
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %s, want %d containing %q", tc.query, status, body, tc.status, tc.want)
		}
	}
}

func TestUptimeLeavesMaintenanceOutAndClipsToTheRange(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	k := confirm.Key{Target: uptimeTarget, Module: "http_2xx"}
	ms, err := config.ParseMatchers([]string{`module="http_2xx"`})
	if err != nil {
		t.Fatal(err)
	}
	// A 2h outage with a 30m window in its middle, and an outage still
	// going on that began before the range.
	set := &maintenanceSet{oneOff: []window{{matchers: ms, start: now.Add(-5 * time.Hour), end: now.Add(-5*time.Hour + 30*time.Minute)}}}
	ongoing := outage(2, now.Add(-25*time.Hour), 0)
	ongoing.State, ongoing.ResolvedAt, ongoing.EndedAt, ongoing.Resolution = confirm.StateDown, time.Time{}, time.Time{}, ""
	incidents := []confirm.Incident{outage(1, now.Add(-6*time.Hour), 2*time.Hour), ongoing}
	u := computeUptime(k, incidents, set, now.Add(-24*time.Hour), now)
	// Outage 1: 2h minus the window's 30m; outage 2 covers the whole day
	// but the window.
	if u.DownSeconds != 86400-1800 || u.MaintenanceSeconds != 1800 || len(u.Outages) != 2 || u.Outages[1].DownSeconds != 5400 || u.Outages[0].DownSeconds != 86400-1800 {
		t.Errorf("down %vs, maintenance %vs, outages %+v", u.DownSeconds, u.MaintenanceSeconds, u.Outages)
	}
	u = computeUptime(k, incidents[:1], set, now.Add(-24*time.Hour), now)
	if u.DownSeconds != 5400 || u.UptimeRatio != 1-5400.0/86400 {
		t.Errorf("one outage with a window inside: down %vs ratio %v, want 5400s", u.DownSeconds, u.UptimeRatio)
	}
	days := dailyUptime(k, incidents[:1], set, 3, now)
	if len(days) != 3 || days[2].DownSeconds != 5400 || days[2].RangeSeconds != 12*3600 || days[0].DownSeconds != 0 {
		t.Errorf("daily uptime = %+v, want today (12h so far) down 5400s", days)
	}
}

// Maintenance matchers read a target's own labels (team, …), as its
// reports carry them.
func TestMaintenanceMatchesTargetLabels(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	ms, err := config.ParseMatchers([]string{`team="web"`})
	if err != nil {
		t.Fatal(err)
	}
	web, api := confirm.Key{Target: "https://shop.example/", Module: "http_2xx"}, confirm.Key{Target: "https://api.example/", Module: "http_2xx"}
	set := &maintenanceSet{
		oneOff: []window{{matchers: ms, start: now.Add(-time.Hour), end: now.Add(time.Hour)}},
		labels: func(k confirm.Key) []collector.Label {
			if k == web {
				return []collector.Label{{Name: "team", Value: "web"}}
			}
			return []collector.Label{{Name: "team", Value: "api"}}
		},
	}
	if !set.applies(web, now) {
		t.Error("a window matching team=\"web\" does not cover the web team's target")
	}
	if set.applies(api, now) {
		t.Error("a window matching team=\"web\" covers the api team's target")
	}
}
