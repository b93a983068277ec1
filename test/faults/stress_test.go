package faults

import (
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// The stress scenarios run small in make test; make accuracy runs them at
// the size BENCHMARKS.md reports.
var full = flag.Bool("stress.full", false, "run the stress scenarios at full size (minutes each)")

// paths names n target paths.
func paths(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/t%03d", i)
	}
	return out
}

// locationView is a location as /api/v1/locations lists it.
type locationView struct {
	Name    string `json:"name"`
	Suspect struct {
		Suspect      bool    `json:"suspect"`
		Contradicted int     `json:"contradicted"`
		Share        float64 `json:"share"`
	} `json:"suspect"`
}

func (c *coordinatorProc) locations(t *testing.T) map[string]locationView {
	t.Helper()
	var list []locationView
	if err := c.getJSON("/api/v1/locations", &list); err != nil {
		t.Fatalf("listing locations: %v", err)
	}
	out := map[string]locationView{}
	for _, l := range list {
		out[l.Name] = l
	}
	return out
}

// TestDegradedLocationNeverPages: one location's module timeout drops to
// 300µs (its checks fail for local reasons; its canary-less exporter
// cannot tell) beside two healthy ones, while a few targets really fail
// from fra. No target is ever confirmed down, ams is suspect within a
// minute, and at most 1% of its targets end as false alarms.
func TestDegradedLocationNeverPages(t *testing.T) {
	n, really, interval, degraded := 60, 5, "2s", 30*time.Second
	if *full {
		n, really, interval, degraded = 300, 10, "10s", 3*time.Minute
	}
	t.Parallel()
	ps := paths(n)
	s := newStack(t, stackOptions{coordinators: 1, paths: ps, interval: interval,
		confirmation: "{verify_timeout: 2s, reverify_interval: 5s}",
		exporterArgs: []string{"--coordinator.heartbeat-interval=1s"}})
	c := s.coordinators[0]
	for _, p := range ps[:really] {
		s.target.set(p, true, s.sources("fra")...)
	}
	// fra's own failures are decided first: false alarms, as they fail
	// nowhere else.
	testbin.WaitFor(t, "fra's failures found to be false alarms", time.Minute, func() error {
		ts, err := c.targets(t)
		if err != nil {
			return err
		}
		if len(ts) < n {
			return fmt.Errorf("%d of %d targets known", len(ts), n)
		}
		for _, p := range ps[:really] {
			if v := ts[s.target.url(p)]; v.result("fra") != "failure" || v.State != "up" {
				return fmt.Errorf("%s: %s, fra %q", p, v.State, v.result("fra"))
			}
		}
		return nil
	})

	ams := s.location("ams")
	var targets []string
	for _, p := range ps {
		targets = append(targets, s.target.url(p))
	}
	s.configure(ams, stackOptions{timeouts: map[string]string{"ams": "300us"}}, interval, targets)
	s.reload(ams)
	start := time.Now()
	var suspectAfter time.Duration
	var down []string
	for time.Since(start) < degraded {
		ts, err := c.targets(t)
		if err != nil {
			t.Fatal(err)
		}
		for target, v := range ts {
			if v.State == "down" {
				down = append(down, fmt.Sprintf("%s at %s", target, time.Since(start).Round(time.Millisecond)))
			}
		}
		if suspectAfter == 0 && c.locations(t)["ams"].Suspect.Suspect {
			suspectAfter = time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(down) > 0 {
		t.Errorf("targets confirmed down while only ams (degraded) and fra (%d targets) failed: %s", really, strings.Join(down, ", "))
	}
	if suspectAfter == 0 || suspectAfter > time.Minute {
		t.Errorf("ams suspect after %s, want within a minute (0: never)", suspectAfter)
	}
	var falseAlarms, own, confirmed int
	for _, inc := range c.allIncidents(t) {
		if inc.OpenedAt.Before(start) {
			continue
		}
		switch {
		case !inc.ConfirmedAt.IsZero():
			confirmed++
		case inc.Resolution == "false_alarm" && inc.Reporter == "ams":
			falseAlarms++
		case inc.Resolution == "location_suspect":
			own++
		}
	}
	failed := sumSeries(t, "http://"+ams.addr, "vantage_probe_checks_total{", `result="failure"`)
	t.Logf("ams degraded for %s over %d targets at %s: %.0f checks failed there; suspect after %s; "+
		"%d false alarms by ams, %d incidents resolved as location_suspect, %d confirmed, discounted %s",
		degraded, n, interval, failed, suspectAfter.Round(time.Millisecond), falseAlarms, own, confirmed,
		c.metric(t, "vantage_incidents_discounted_total"))
	if confirmed > 0 {
		t.Errorf("%d incidents confirmed during the degradation", confirmed)
	}
	if limit := n / 100; falseAlarms > limit {
		t.Errorf("%d false alarms by ams, want at most 1%% of its %d targets (%d)", falseAlarms, n, limit)
	}
	if v := c.metric(t, `vantage_location_suspect{location="ams",reason="contradicted"}`); v != "1" {
		t.Errorf("vantage_location_suspect{ams} = %q, want 1", v)
	}
}

// TestFlappingTargetPagesOnce: a target failing everywhere every other
// window is one incident that stays confirmed down (one page) and is
// marked flapping; one answering at its timeout's edge is confirmed at
// most once (when every location times out at once, which a loaded
// machine makes likely, it is confirmed and, held down, does not flap;
// false alarms that late reports show to overlap are recorded as
// outages, recovered at once, and page nobody).
func TestFlappingTargetPagesOnce(t *testing.T) {
	window, cycles := 3*time.Second, 5
	if *full {
		window, cycles = 10*time.Second, 9
	}
	t.Parallel()
	s := newStack(t, stackOptions{coordinators: 1, paths: []string{"/flap", "/edge"},
		confirmation: "{verify_timeout: 2s, reverify_interval: 2s, recovery_hold: 1m, flapping: {window: 10m, changes: 4, hold_down: 5m}}",
		exporterArgs: []string{"--coordinator.heartbeat-interval=1s"}})
	c := s.coordinators[0]
	flap, edge := s.target.url("/flap"), s.target.url("/edge")
	// The edge target answers in 1s ± 0.3s against a 1s timeout.
	s.target.setSlow("/edge", func() time.Duration {
		return 700*time.Millisecond + time.Duration(rand.Int64N(int64(600*time.Millisecond)))
	})
	testbin.WaitFor(t, "both targets known", 30*time.Second, func() error {
		ts, err := c.targets(t)
		if err != nil {
			return err
		}
		if len(ts) < 2 {
			return fmt.Errorf("%d targets known", len(ts))
		}
		return nil
	})
	start := time.Now()
	downTransitions := map[string]int{}
	wasDown := map[string]bool{}
	flapping := map[string]bool{}
	for cycle := range 2 * cycles {
		s.target.set("/flap", cycle%2 == 0, "*")
		until := start.Add(time.Duration(cycle+1) * window)
		for time.Now().Before(until) {
			ts, err := c.targets(t)
			if err != nil {
				t.Fatal(err)
			}
			for _, target := range []string{flap, edge} {
				v := ts[target]
				down := v.State == "down"
				if down && !wasDown[target] {
					downTransitions[target]++
				}
				wasDown[target] = down
				flapping[target] = flapping[target] || v.Flapping
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("over %s: flap confirmed down %d times (flapping %t, %d incidents), edge %d times (flapping %t, %d incidents)",
		time.Since(start).Round(time.Second), downTransitions[flap], flapping[flap], len(c.incidentsOf(t, flap)),
		downTransitions[edge], flapping[edge], len(c.incidentsOf(t, edge)))
	if downTransitions[flap] != 1 {
		t.Errorf("the flapping target went down %d times, want once (one page)", downTransitions[flap])
	}
	if !flapping[flap] {
		t.Error("the flapping target was never marked flapping")
	}
	if incs := c.incidentsOf(t, flap); len(incs) != 1 {
		t.Errorf("the flapping target has %d incidents, want one: %+v", len(incs), incs)
	}
	if downTransitions[edge] > 1 {
		t.Errorf("the target at its timeout's edge went down %d times, want at most once", downTransitions[edge])
	}
}

// sumSeries adds up the values of base's series whose line starts with
// prefix and contains match.
func sumSeries(t *testing.T, base, prefix, match string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, match) {
			continue
		}
		if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += v
		}
	}
	return sum
}
