package e2e

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/promtest"
)

// The stack with an HA pair: two coordinators, each exporter reporting to
// both, both scraped by Prometheus as the one vantage-coordinator job
// through a scrapeGate each. Issue 11: an HA pair paged twice (two alerts
// differing by instance), and one failed scrape of the coordinator
// resolved the page and fired it again with a new start.

const (
	// haGroupInterval replaces Alertmanager's group_interval (1m for
	// pages) in this test, so that a page that resolves and fires again,
	// even for a second, reaches the webhook as a resolved and a second
	// firing notification instead of falling between two flushes.
	haGroupInterval = 2 * time.Second
	// dropScrapes is how long the coordinators' scrapes keep failing after
	// Prometheus has seen both fail: several scrape and evaluation
	// intervals and a group interval, so that a rule on the bare series
	// would resolve the page and Alertmanager would say so.
	dropScrapes = 3 * time.Second
)

// scrapeGate is a loopback reverse proxy in front of one coordinator, for
// Prometheus' scrapes only. While failing it answers 503, so the scrape
// fails as when Prometheus cannot reach the coordinator, while the
// coordinator itself runs on (its reports and verifications are direct).
type scrapeGate struct {
	base    string // the proxy's base URL
	failing atomic.Bool
}

func startScrapeGate(t *testing.T, backend string) *scrapeGate {
	t.Helper()
	u, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	g := &scrapeGate{}
	g.base = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.failing.Load() {
			http.Error(w, "scrape failed by the end-to-end test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	return g
}

func TestHAPairPagesOnce(t *testing.T) {
	began := time.Now()
	s := startStack(t, stackOptions{coordinators: 2, gateScrapes: true, groupInterval: haGroupInterval})
	s.waitScrapingAll(t)
	s.waitAllUp(t)
	t.Logf("stack with %d coordinators up, every check succeeding, in %s", len(s.coordinators), time.Since(began).Round(100*time.Millisecond))

	page := map[string]string{"alertname": "TargetConfirmedDown", "severity": "critical", "target": s.urls.demo, "module": "http_demo"}
	failed := time.Now()
	s.target.set(pathDemo, "*")

	s.procs.waitFor(t, "the demo target confirmed down by both coordinators", 60*time.Second, func() (bool, string) {
		v, _, err := s.prom.Value(fmt.Sprintf(`count(vantage_target_confirmed_down{job="vantage-coordinator", target=%q} == 1)`, s.urls.demo))
		if err != nil {
			return false, err.Error()
		}
		return int(v) == len(s.coordinators), fmt.Sprintf("confirmed by %g coordinators", v)
	})
	s.procs.waitFor(t, "the page at the pager", 60*time.Second, func() (bool, string) {
		n := s.hook.pages(page)
		return len(n) > 0, fmt.Sprintf("%d notifications of the page", len(n))
	})
	t.Logf("outage start → page: %s", time.Since(failed).Round(100*time.Millisecond))
	activeAt := s.mustFiringOnce(t, page)

	t.Run("a dropped scrape of both coordinators", func(t *testing.T) {
		s.checkDroppedScrape(t, page, activeAt)
	})

	recovered := time.Now()
	s.target.set(pathDemo, "")
	s.procs.waitFor(t, "the page resolved at the pager", 60*time.Second, func() (bool, string) {
		ns := s.hook.pages(page)
		return len(ns) > 0 && ns[len(ns)-1].Status == "resolved", fmt.Sprintf("%d notifications of the page", len(ns))
	})
	t.Logf("recovery → resolved: %s", time.Since(recovered).Round(100*time.Millisecond))
	// Anything after the resolve (a second resolve, a new page) would come
	// within a group interval.
	s.waitQuiet(t, time.Now().Add(2*haGroupInterval+time.Second))

	t.Run("one notification firing, one resolved", func(t *testing.T) {
		s.checkOnePagePerOutage(t, page)
	})
	s.procs.checkAlive(t)
	t.Logf("whole run: %s", time.Since(began).Round(100*time.Millisecond))
}

// checkDroppedScrape fails every scrape of both coordinators for a while
// during the outage, then checks that the page held: still firing with
// the same start, no new notification at the pager.
func (s *stack) checkDroppedScrape(t *testing.T, page map[string]string, activeAt time.Time) {
	before := len(s.hook.pages(page))
	dropped := time.Now()
	s.setScrapesFailing(true)
	s.procs.waitFor(t, "failed scrapes of both coordinators", 10*time.Second, func() (bool, string) {
		v, _, err := s.prom.Value(`count(up{job="vantage-coordinator"} == 0)`)
		if err != nil {
			return false, err.Error()
		}
		return int(v) == len(s.coordinators), fmt.Sprintf("%g coordinators failing their scrapes", v)
	})
	s.waitQuiet(t, time.Now().Add(dropScrapes))
	s.setScrapesFailing(false)
	s.procs.waitFor(t, "both coordinators scraped again", 10*time.Second, func() (bool, string) {
		v, _, err := s.prom.Value(`count(up{job="vantage-coordinator"} == 1)`)
		if err != nil {
			return false, err.Error()
		}
		return int(v) == len(s.coordinators), fmt.Sprintf("%g coordinators scraped", v)
	})
	restored := time.Now()
	t.Logf("scrapes of both coordinators failing for %s", restored.Sub(dropped).Round(100*time.Millisecond))

	// The failed scrapes took the coordinators' series away: a rule on
	// the bare series would have resolved the page. Otherwise this test
	// could not tell.
	gone, err := s.prom.RangeQuery(fmt.Sprintf(`absent(vantage_target_confirmed_down{job="vantage-coordinator", target=%q} == 1)`, s.urls.demo), dropped, restored, evaluationInterval)
	if err != nil {
		t.Fatal(err)
	}
	if len(gone) == 0 {
		t.Fatalf("the coordinators' scrapes failed from %s to %s, yet vantage_target_confirmed_down never went stale: the dropped scrape tested nothing", dropped.Format(time.TimeOnly), restored.Format(time.TimeOnly))
	}

	// A resolve and a new firing would each reach the pager within a
	// group interval of Prometheus' evaluation.
	s.waitQuiet(t, restored.Add(2*haGroupInterval+2*evaluationInterval))
	if got := s.mustFiringOnce(t, page); !got.Equal(activeAt) {
		t.Errorf("TargetConfirmedDown is active since %s, was since %s before the dropped scrape: it resolved and fired again", got.Format(time.StampMilli), activeAt.Format(time.StampMilli))
	}
	gaps, err := s.prom.RangeQuery(fmt.Sprintf(`absent(ALERTS{alertname="TargetConfirmedDown", alertstate="firing", target=%q})`, s.urls.demo), activeAt.Add(2*evaluationInterval), time.Now(), evaluationInterval)
	if err != nil {
		t.Fatal(err)
	}
	if len(gaps) > 0 {
		t.Errorf("TargetConfirmedDown stopped firing for %d evaluations between its start and now", len(gaps[0].Values))
	}
	if ns := s.hook.pages(page); len(ns) != before {
		t.Errorf("%d notifications of the page after the dropped scrape, %d before:%s", len(ns), before, describeNotifications(ns))
	}
}

// checkOnePagePerOutage checks every notification the pager received: one
// firing and one resolved, each with the outage's one alert, aggregated
// over the coordinators (no instance label).
func (s *stack) checkOnePagePerOutage(t *testing.T, page map[string]string) {
	msgs, bad := s.hook.received()
	for _, b := range bad {
		t.Errorf("undecodable webhook message: %s", b)
	}
	var pages []notification
	for _, n := range msgs {
		if n.path == "/pager" {
			pages = append(pages, n)
		}
	}
	if len(pages) != 2 || pages[0].Status != "firing" || pages[1].Status != "resolved" {
		t.Fatalf("the pager received%s; want one firing and one resolved notification", describeNotifications(pages))
	}
	for _, n := range pages {
		if len(n.Alerts) != 1 || !matches(n.Alerts[0].Labels, page) || n.Alerts[0].Status != n.Status {
			t.Errorf("%s notification with alerts%s; want the one alert %v, %s", n.Status, describeNotifications([]notification{n}), page, n.Status)
			continue
		}
		if inst, ok := n.Alerts[0].Labels["instance"]; ok {
			t.Errorf("the page carries instance=%q: the coordinators' alerts are not aggregated into one", inst)
		}
	}
}

// setScrapesFailing makes every scrape of the coordinators fail, or pass
// again.
func (s *stack) setScrapesFailing(failing bool) {
	for _, g := range s.gates {
		g.failing.Store(failing)
	}
}

// mustFiringOnce returns when the one firing alert Prometheus has with
// labels became active; it fails the test unless there is exactly one.
func (s *stack) mustFiringOnce(t *testing.T, labels map[string]string) time.Time {
	t.Helper()
	as, err := s.prom.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	var found []promtest.ActiveAlert
	for _, a := range as {
		if a.State == "firing" && matches(a.Labels, labels) {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Prometheus has %d firing alerts %v (%v), want one", len(found), labels, found)
	}
	return found[0].ActiveAt
}

// waitQuiet waits until the time until, checking that the stack runs on.
func (s *stack) waitQuiet(t *testing.T, until time.Time) {
	t.Helper()
	s.procs.waitFor(t, "until "+until.Format(time.TimeOnly), time.Until(until)+time.Second, func() (bool, string) {
		return !time.Now().Before(until), ""
	})
}

// pages returns the notifications at the pager with an alert matching
// labels, in order of arrival.
func (wh *webhook) pages(labels map[string]string) []notification {
	msgs, _ := wh.received()
	var out []notification
	for _, n := range msgs {
		if n.path != "/pager" {
			continue
		}
		for _, a := range n.Alerts {
			if matches(a.Labels, labels) {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// describeNotifications renders notifications compactly for messages.
func describeNotifications(ns []notification) string {
	if len(ns) == 0 {
		return " (none)"
	}
	var b strings.Builder
	for _, n := range ns {
		fmt.Fprintf(&b, "\n  %s %s %s:", n.at.Format(time.TimeOnly), n.path, n.Status)
		for _, a := range n.Alerts {
			fmt.Fprintf(&b, " [%s %v]", a.Status, a.Labels)
		}
	}
	return b.String()
}
