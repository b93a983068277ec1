// Package e2e runs the whole vantage stack on loopback and checks it from
// the outside, as its users meet it: a page in the pager, data in every
// dashboard panel, traces in the trace store.
//
// The stack: a target server of the test (HTTP, and HTTPS with a
// certificate made in the test), three vantage-exporter processes as the
// locations ams, fra and sfo probing from 127.0.0.2, .3 and .4, a
// vantage-coordinator, Debian's Prometheus with rules/*.yml as they are
// and a configuration derived from deploy/prometheus.yml, Debian's
// Alertmanager with deploy/alertmanager.yml (webhook URLs pointed at the
// test), and an OTLP/HTTP trace receiver. vantage's binaries are built once
// into a temporary directory.
//
// The scenario: a real outage (an HTTPS target failing for everyone), a
// target failing for fra only, a target failing for fra that another
// location cannot check (unknown), a slow target, and a target failing
// for everyone inside a maintenance window. Then:
//  1. TargetConfirmedDown pages (receiver pager, severity critical) for
//     the outage, with the target's own labels (team) to route by, and
//     nothing pages for the others; the fra-only failure becomes an info
//     notification; the outage's own alerts are inhibited; the target
//     in maintenance pages nobody and its incident is recorded resolved
//     as maintenance;
//  2. every query of every dashboard returns data from Prometheus
//     (dashboards/README.md's substitutions), except the few a short run
//     cannot produce, which are listed with the reason;
//  3. the traces of the failed and the slow checks reach the OTLP receiver
//     with a child span per phase (and only those: the sample ratio is 0),
//     the coordinator's verification rounds are the parents of the
//     locations' checks, and the exemplars Prometheus stores point at
//     received traces.
//
// TestHAPairPagesOnce (ha_test.go) runs the same stack with an HA pair of
// coordinators, both scraped as the one vantage-coordinator job through a
// proxy that can fail the scrapes: an outage of the demo target confirmed
// by both is one firing and one resolved notification at the pager, and
// failing every scrape of both coordinators during the outage neither
// resolves the page early nor sends another.
//
// Run them with go test -count=1 -v ./test/e2e/ (make e2e). They need
// Debian's prometheus and prometheus-alertmanager packages (they fail
// without them) and take about half a minute each once the build cache is
// warm.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/promtest"
)

// fraSource is the source address of location fra.
const fraSource = "127.0.0.3"

func TestEndToEnd(t *testing.T) {
	began := time.Now()
	s := startStack(t, stackOptions{})
	s.waitScrapingAll(t)
	s.waitAllUp(t)
	t.Logf("stack up, every check succeeding, in %s", time.Since(began).Round(100*time.Millisecond))

	s.startMaintenance(t)
	failed := time.Now()
	s.target.set(pathMaintained, "*")
	s.target.set(pathOutage, "*")
	s.target.set(pathOneLocation, fraSource)
	s.target.set(pathBlind, fraSource)

	var pageLatency time.Duration
	t.Run("outage pages", func(t *testing.T) {
		pageLatency = s.checkOutagePages(t, failed)
	})
	t.Run("one location failing is a ticket, unknown is not down", func(t *testing.T) {
		s.checkOneLocation(t, failed)
	})
	t.Run("a maintenance window suppresses the page and records the outage", func(t *testing.T) {
		s.checkMaintenance(t)
	})
	t.Run("a stopped heartbeat is a ticket, a critical one pages", func(t *testing.T) {
		s.checkEvents(t)
	})
	t.Run("traces of failed and slow checks", func(t *testing.T) {
		s.checkTraces(t)
	})
	t.Run("dashboards", func(t *testing.T) {
		s.checkDashboards(t)
	})
	t.Run("nothing else pages", func(t *testing.T) {
		if pageLatency == 0 {
			pageLatency = time.Minute // the outage did not page: wait as long as it was given
		}
		s.checkNothingElsePages(t, failed, pageLatency)
	})
	s.procs.checkAlive(t)
	t.Logf("whole run: %s", time.Since(began).Round(100*time.Millisecond))
}

// checkOutagePages waits for the outage's page and checks its content; it
// returns how long the page took from the start of the outage.
func (s *stack) checkOutagePages(t *testing.T, failed time.Time) time.Duration {
	// The target's labels (team) are on the page: pages route by team.
	want := map[string]string{"alertname": "TargetConfirmedDown", "severity": "critical", "target": s.urls.outage, "module": "http_2xx", "team": "e2e"}
	var n notification
	var a alert
	s.procs.waitFor(t, "TargetConfirmedDown for the outage at the webhook", 90*time.Second, func() (bool, string) {
		var ok bool
		n, a, ok = s.hook.find(want)
		msgs, _ := s.hook.received()
		return ok, fmt.Sprintf("%d notifications", len(msgs))
	})
	took := n.at.Sub(failed)
	t.Logf("outage start → page at %s: %s (Alertmanager group_wait %s)", n.path, took.Round(100*time.Millisecond), groupWait)
	if n.path != "/pager" || n.Receiver != "pager" || a.Status != "firing" {
		t.Errorf("the page came to %s (receiver %q), alert %s; want /pager, receiver pager, firing", n.path, n.Receiver, a.Status)
	}
	// No annotation runs a query: the page links its runbook and the
	// target's dashboard instead.
	for _, k := range []string{"summary", "description", "runbook_url", "dashboard_url"} {
		if a.Annotations[k] == "" {
			t.Errorf("annotations %v: want %s", a.Annotations, k)
		}
	}
	if u := a.Annotations["dashboard_url"]; !strings.Contains(u, "/d/vantage-target/") || !strings.Contains(u, url.QueryEscape(s.urls.outage)) {
		t.Errorf("dashboard_url %q: want the target dashboard of %s", u, s.urls.outage)
	}
	return took
}

// checkOneLocation checks the fra-only failure and the unknown target: the
// coordinator dismissed the one and holds the other unknown, Prometheus
// sees the failure from fra only, and it arrives as a ticket.
func (s *stack) checkOneLocation(t *testing.T, failed time.Time) {
	s.procs.waitFor(t, "a false alarm and the blind target unknown at the coordinator", 30*time.Second, func() (bool, string) {
		fa, _, err := s.prom.Value(`vantage_incidents_total{job="vantage-coordinator", resolution="false_alarm"}`)
		if err != nil {
			return false, err.Error()
		}
		unknown, _, err := s.prom.Value(fmt.Sprintf(`vantage_target_state{job="vantage-coordinator", target=%q, state="unknown"}`, s.urls.blind))
		if err != nil {
			return false, err.Error()
		}
		return fa >= 1 && unknown == 1, fmt.Sprintf("false alarms %g, blind target unknown %g", fa, unknown)
	})

	ss, err := s.prom.Instant(fmt.Sprintf(`probe_success{job="vantage-exporter", target=%q} == 0`, s.urls.oneLocation), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if got := locationsOf(ss); !slices.Equal(got, []string{"fra"}) {
		t.Errorf("the one-location target fails in Prometheus from %v, want [fra] (source address %s)", got, fraSource)
	}
	for _, target := range []string{s.urls.oneLocation, s.urls.blind} {
		if v, _, _ := s.prom.Value(fmt.Sprintf(`max_over_time(vantage_target_confirmed_down{job="vantage-coordinator", target=%q}[10m])`, target)); v != 0 {
			t.Errorf("%s was confirmed down", target)
		}
	}

	want := map[string]string{"alertname": "TargetFailureRatioHigh", "severity": "info", "target": s.urls.oneLocation, "location": "fra"}
	var n notification
	s.procs.waitFor(t, "TargetFailureRatioHigh for the one-location target from fra at the webhook", 90*time.Second, func() (bool, string) {
		var ok bool
		n, _, ok = s.hook.find(want)
		msgs, _ := s.hook.received()
		return ok, fmt.Sprintf("%d notifications", len(msgs))
	})
	t.Logf("fra-only failure start → info notification at %s: %s", n.path, n.at.Sub(failed).Round(100*time.Millisecond))
	if n.path != "/info" || n.Receiver != "info" {
		t.Errorf("the info notification came to %s (receiver %q), want /info, receiver info", n.path, n.Receiver)
	}
}

// checkNothingElsePages waits until a page for any other target would have
// arrived (the failures all started together; twice the outage's page
// latency plus group_wait), then checks every notification received and
// every page alert Prometheus fired during the run. It also checks that the
// outage's tickets were inhibited by its page.
func (s *stack) checkNothingElsePages(t *testing.T, failed time.Time, pageLatency time.Duration) {
	ticketFor := map[string]string{"alertname": "TargetFailureRatioHigh", "target": s.urls.outage}
	s.procs.waitFor(t, "the outage's TargetFailureRatioHigh inhibited at Alertmanager", 60*time.Second, func() (bool, string) {
		return s.alertmanagerInhibited(ticketFor)
	})
	inhibitedAt := time.Now()

	quietUntil := failed.Add(2*pageLatency + groupWait)
	if ticketQuiet := inhibitedAt.Add(groupWait + 2*time.Second); ticketQuiet.After(quietUntil) {
		quietUntil = ticketQuiet
	}
	if d := time.Until(quietUntil); d > 0 {
		t.Logf("waiting %s more, until a page or ticket that should not come would have come", d.Round(100*time.Millisecond))
		s.procs.waitFor(t, "the quiet period", d+time.Second, func() (bool, string) { return time.Now().After(quietUntil), "" })
	}

	msgs, bad := s.hook.received()
	for _, b := range bad {
		t.Errorf("undecodable webhook message: %s", b)
	}
	pages, tickets := 0, 0
	for _, n := range msgs {
		for _, a := range n.Alerts {
			page := a.Labels["severity"] == "critical"
			switch {
			case page && a.Labels["alertname"] == "EventRaised" && a.Labels["id"] == criticalEvent:
				// The heartbeat that pages when it stops.
			case page && a.Labels["target"] == s.urls.maintained:
				t.Errorf("the target in maintenance paged, at %s: %v", n.path, a.Labels)
			case page && (a.Labels["alertname"] != "TargetConfirmedDown" || a.Labels["target"] != s.urls.outage):
				t.Errorf("page for something other than the outage, at %s: %v", n.path, a.Labels)
			case page != (n.path == "/pager"):
				t.Errorf("alert with severity %q came to %s: %v", a.Labels["severity"], n.path, a.Labels)
			case !page && a.Labels["target"] == s.urls.outage:
				t.Errorf("ticket for the confirmed outage came through its inhibition: %v", a.Labels)
			case !page && a.Labels["target"] == s.urls.oneLocation && a.Labels["location"] != "fra":
				t.Errorf("ticket for the one-location target from a location where it works: %v", a.Labels)
			}
			if page {
				pages++
			} else {
				tickets++
			}
		}
	}
	t.Logf("%s after the failures began: %d page and %d ticket alerts received", time.Since(failed).Round(100*time.Millisecond), pages, tickets)

	// Firing only: NoCoordinatorUp is pending (absent(up)) from Prometheus'
	// first evaluation to its first scrape of the coordinator, which its
	// 2 minutes' for: is there to absorb.
	ss, err := s.prom.RangeQuery(`count by (alertname, target) (ALERTS{severity="critical", alertstate="firing", alertname!="EventRaised"})`, s.started, time.Now(), scrapeInterval)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ss {
		if x.Metric["alertname"] != "TargetConfirmedDown" || x.Metric["target"] != s.urls.outage {
			t.Errorf("Prometheus fired a page alert for something other than the outage: %v", x.Metric)
		}
	}
	if len(ss) != 1 {
		t.Errorf("page alerts Prometheus fired during the run:%s; want the outage's only", promtest.Describe(ss))
	}

	all, err := s.prom.RangeQuery(`count by (alertname, alertstate, severity, location) (ALERTS)`, s.started, time.Now(), scrapeInterval)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, x := range all {
		lines = append(lines, fmt.Sprintf("%s %s %s %s", x.Metric["alertname"], x.Metric["severity"], x.Metric["alertstate"], x.Metric["location"]))
	}
	slices.Sort(lines)
	t.Logf("alerts Prometheus raised during the run (alertname severity state location):\n  %s", strings.Join(lines, "\n  "))
}

// The pushed events of the end-to-end run: a heartbeat without severity
// (a ticket when it stops) and one labelled severity=critical (a page).
const (
	ticketEvent   = "nightly-backup"
	criticalEvent = "billing-run"
)

// checkEvents sends two heartbeats that stop: each is raised by the
// coordinator, fires EventRaised in Prometheus and reaches its receiver
// through deploy/alertmanager.yml.
func (s *stack) checkEvents(t *testing.T) {
	send := func(id string, labels ...string) {
		form := url.Values{"id": {id}, "raise": {"+2s"}, "label": labels}
		resp, err := http.PostForm(s.coordinator+"/api/v1/events", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("heartbeat %s: %s, want 201", id, resp.Status)
		}
	}
	sent := time.Now()
	send(ticketEvent, "team=e2e")
	send(criticalEvent, "team=e2e", "severity=critical")
	for _, c := range []struct{ id, path, severity string }{
		{ticketEvent, "/ticket", "warning"},
		{criticalEvent, "/pager", "critical"},
	} {
		want := map[string]string{"alertname": "EventRaised", "id": c.id, "severity": c.severity, "team": "e2e"}
		var n notification
		s.procs.waitFor(t, "EventRaised for "+c.id+" at the webhook", 90*time.Second, func() (bool, string) {
			var ok bool
			n, _, ok = s.hook.find(want)
			msgs, _ := s.hook.received()
			return ok, fmt.Sprintf("%d notifications", len(msgs))
		})
		t.Logf("heartbeat %s stopped (raise=+2s) → notification at %s after %s", c.id, n.path, n.at.Sub(sent).Round(100*time.Millisecond))
		if n.path != c.path {
			t.Errorf("EventRaised for %s came to %s, want %s", c.id, n.path, c.path)
		}
	}
}

// startMaintenance opens a maintenance window for the maintained target
// through the coordinator's API, before it fails.
func (s *stack) startMaintenance(t *testing.T) {
	body, err := json.Marshal(map[string]any{"matchers": []string{fmt.Sprintf("target=%q", s.urls.maintained)}, "duration": "1h", "comment": "end-to-end"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.coordinator+"/api/v1/maintenances", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating the maintenance window: %s, want 201", resp.Status)
	}
}

// checkMaintenance: the target failing everywhere inside its window is
// recorded as an incident resolved as maintenance, never confirmed, and
// Prometheus sees vantage_target_maintenance 1 for it. That no page
// reaches the pager for it is checked with every other notification, at
// the end of the run (checkNothingElsePages).
func (s *stack) checkMaintenance(t *testing.T) {
	s.procs.waitFor(t, "the maintained target's incident resolved as maintenance", 30*time.Second, func() (bool, string) {
		resp, err := http.Get(s.coordinator + "/api/v1/incidents?state=all")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		var incidents []struct {
			Target, Resolution string
			ConfirmedAt        *time.Time `json:"confirmed_at"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&incidents); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, inc := range incidents {
			if inc.Target != s.urls.maintained {
				continue
			}
			if inc.ConfirmedAt != nil {
				t.Fatalf("the maintained target's incident was confirmed: %+v", inc)
			}
			if inc.Resolution == "maintenance" {
				return true, ""
			}
			seen = append(seen, inc.Resolution)
		}
		return false, fmt.Sprintf("its incidents' resolutions: %q", seen)
	})
	s.procs.waitFor(t, "vantage_target_maintenance 1 in Prometheus", 30*time.Second, func() (bool, string) {
		v, _, err := s.prom.Value(fmt.Sprintf(`vantage_target_maintenance{job="vantage-coordinator", target=%q}`, s.urls.maintained))
		if err != nil {
			return false, err.Error()
		}
		return v == 1, fmt.Sprintf("value %g", v)
	})
	// The failure is seen from every location, yet never confirmed.
	s.procs.waitFor(t, "the maintained target failing from every location in Prometheus", 30*time.Second, func() (bool, string) {
		ss, err := s.prom.Instant(fmt.Sprintf(`probe_success{job="vantage-exporter", target=%q} == 0`, s.urls.maintained), time.Now())
		if err != nil {
			return false, err.Error()
		}
		got := locationsOf(ss)
		return len(got) == len(locations), fmt.Sprintf("failing from %v", got)
	})
	if v, _, _ := s.prom.Value(fmt.Sprintf(`max_over_time(vantage_target_confirmed_down{job="vantage-coordinator", target=%q}[10m])`, s.urls.maintained)); v != 0 {
		t.Errorf("the maintained target was confirmed down")
	}
}
