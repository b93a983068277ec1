// Package mixin runs the monitoring mixin's output (rules/*.yml and
// dashboards/*.json) against Prometheus configured as README.md tells
// users to: Debian's prometheus with README.md's scrape example (only the
// addresses and intervals rewritten) and the rules, scraping three real
// vantage-exporter processes (locations ams, fra, sfo; ams a one-member
// cluster) and a vantage-coordinator on loopback. The exporters check
// HTTP, HTTPS, TCP, DNS (an in-process miekg/dns server), ICMP (127.0.0.1,
// when this process may open an ICMP socket) and gRPC (an in-process
// health server) targets, plus bulkTargets HTTP targets each: the scale.
//
// TestReadmeScrapeExample checks that
//  1. every series selector of every alerting and recording rule selects
//     data;
//  2. every dashboard query returns data, and the phase panels return
//     data for a target of every prober;
//  3. at the scale of bulkTargets per location, every dashboard query over
//     the dashboard's default time range (1h) and step (15s) at the "All"
//     values of $job, $location and $target loads fewer samples than
//     Prometheus' --query.max-samples scaled to that scale
//     (dashboards/README.md, "Query cost"), and a range query over every
//     target's series does not; and no query applies a range function
//     (whose window the short run cannot fill) to every target's series.
package mixin

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	yaml "go.yaml.in/yaml/v3"

	"github.com/vantageprobe/vantage/internal/promtest"
)

// The query-cost model of dashboards/README.md: what a query loads grows
// with the targets, so Prometheus' default limit at fleetTargets targets
// per location is scaled to the targets the test runs.
const (
	bulkTargets       = 300     // HTTP targets per location besides the scenario's
	fleetTargets      = 100_000 // the scale dashboards/README.md documents
	defaultMaxSamples = 50_000_000
	// Grafana's defaults for these dashboards: the time range (their
	// "time"), the step ($__interval: the Prometheus data source's 15s
	// scrape interval, above 1h / panel width) and $__rate_interval
	// (4 × the scrape interval).
	dashboardRange = time.Hour
	dashboardStep  = 15 * time.Second
	rateInterval   = "1m"
)

// scaledMaxSamples is --query.max-samples for the test's scale.
func scaledMaxSamples() int { return defaultMaxSamples / fleetTargets * bulkTargets }

// tooManySamples is Prometheus' error for a query over --query.max-samples.
const tooManySamples = "query processing would load too many samples into memory"

func TestReadmeScrapeExample(t *testing.T) {
	began := time.Now()
	// --query.lookback-delta: a series scraped once is present at every
	// step of a range query an hour long (see the sample limit below).
	s := startStack(t, bulkTargets,
		"--query.max-samples="+strconv.Itoa(scaledMaxSamples()),
		"--query.lookback-delta="+dashboardRange.String())
	s.waitScraped(t)
	t.Logf("programs started and scraped in %s", time.Since(began).Round(100*time.Millisecond))
	s.startScenario(t)
	s.waitChecked(t)
	t.Logf("%d locations × %d bulk targets checked, the down target confirmed, in %s",
		len(locations), bulkTargets, time.Since(began).Round(100*time.Millisecond))

	t.Run("every selector of every rule selects data", func(t *testing.T) {
		s.checkSelectors(t, "the rules", ruleSelectors(t, s.root))
	})
	t.Run("every dashboard query returns data", func(t *testing.T) {
		s.checkDashboardData(t)
	})
	t.Run("the phase panels have data for every prober", func(t *testing.T) {
		s.checkPhasePanels(t)
	})
	t.Run("no dashboard query exceeds the scaled sample limit", func(t *testing.T) {
		s.checkSampleLimit(t)
	})
	t.Run("no dashboard query applies a range function to every target's series", func(t *testing.T) {
		s.checkWindows(t)
	})
	t.Logf("whole run: %s", time.Since(began).Round(100*time.Millisecond))
}

// selector is one series selector of a rule or a query, and where it is.
type selector struct{ where, selector string }

// vectorSelectors returns the series selectors of expr.
func vectorSelectors(expr parser.Expr) []string {
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs.String())
		}
		return nil
	})
	return out
}

// ruleSelectors reads every vector selector of every rule of rules/*.yml.
func ruleSelectors(t *testing.T, root string) []selector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "rules", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in %s: %v", filepath.Join(root, "rules"), err)
	}
	p := parser.NewParser(parser.Options{})
	var out []selector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Groups []struct {
				Rules []struct{ Alert, Record, Expr string }
			}
		}
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					t.Fatalf("%s: %s%s: %v", f, r.Alert, r.Record, err)
				}
				name := "alert " + r.Alert
				if r.Record != "" {
					name = "recording " + r.Record
				}
				for _, vs := range vectorSelectors(expr) {
					out = append(out, selector{name, vs})
				}
			}
		}
	}
	return out
}

// checkSelectors waits until every selector of sels selects at least one
// series, then reports each.
func (s *stack) checkSelectors(t *testing.T, of string, sels []selector) {
	t.Helper()
	counts := map[string]float64{}
	s.waitFor(t, "every selector of "+of+" selecting data", 30*time.Second, func() error {
		var empty []string
		for _, sel := range sels {
			if _, done := counts[sel.selector]; done {
				continue
			}
			ss, err := s.prom.Instant("count("+sel.selector+")", time.Now())
			if err != nil {
				return fmt.Errorf("%s: %s: %v", sel.where, sel.selector, err)
			}
			if len(ss) == 1 {
				counts[sel.selector] = ss[0].Values[0]
			} else {
				empty = append(empty, sel.where+": "+sel.selector)
			}
		}
		if len(empty) > 0 {
			return fmt.Errorf("no series for %s", strings.Join(empty, "; "))
		}
		return nil
	})
	var report []string
	for _, sel := range sels {
		report = append(report, fmt.Sprintf("%s: %s: %g series", sel.where, sel.selector, counts[sel.selector]))
	}
	t.Logf("%d selectors of %s:\n  %s", len(sels), of, strings.Join(report, "\n  "))
}

// allVars are Grafana's variables with $job, $location and $target at
// "All" (their allValue), and Grafana's default step and rate interval.
func allVars(target, dashboardRange string) map[string]map[string]string {
	common := map[string]string{"__rate_interval": rateInterval, "__interval": dashboardStep.String(), "__range": dashboardRange,
		"job": ".+", "location": ".*"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for ck, cv := range common {
			m[ck] = cv
		}
		return m
	}
	return map[string]map[string]string{
		"vantage-fleet.json":    common,
		"vantage-overview.json": with("target", ".*"),
		// The Target dashboard has no "All": it shows one target.
		"vantage-target.json": with("target", target),
	}
}

// checkDashboardData runs every dashboard query (promtest.Runner, as the
// end-to-end test does) until each returns data: the Target dashboard for
// the down target (HTTPS, confirmed down), its unknown annotation for the
// blind target.
func (s *stack) checkDashboardData(t *testing.T) {
	queries := promtest.DashboardQueries(t, s.root)
	vars := allVars(s.targets.down(), "5m")
	blind := allVars(s.targets.blind(), "5m")["vantage-target.json"]
	var outcomes []promtest.Outcome
	s.waitFor(t, "every dashboard query returning data", 30*time.Second, func() error {
		now := time.Now()
		r := promtest.Runner{API: s.prom, Start: s.started, End: now, At: now, Step: scrapeInterval}
		var failed []string
		outcomes, failed = promtest.RunAll(queries, func(q promtest.Query) []promtest.Outcome {
			v := vars[q.File]
			if q.File == "vantage-target.json" && strings.Contains(q.Expr, `state="unknown"} == 1`) {
				v = blind
			}
			return r.Run(q, v)
		})
		if len(failed) > 0 {
			return fmt.Errorf("%s", strings.Join(failed, "; "))
		}
		return nil
	})
	t.Logf("%d queries of %d panels and annotations:%s", len(outcomes), len(queries), promtest.Report(outcomes))

	// A query allowed no data (a state the run need not show, e.g. "== 1"
	// of a healthy stack's self-judgement) still selects data.
	p := parser.NewParser(parser.Options{})
	var sels []selector
	for _, o := range outcomes {
		if o.OK || o.Allowed == "" {
			continue
		}
		expr, err := p.ParseExpr(o.Expr)
		if err != nil {
			t.Fatalf("%s: %v", o.Q, err)
		}
		for _, vs := range vectorSelectors(expr) {
			sels = append(sels, selector{fmt.Sprintf("%s %s", o.Q, o.Kind), vs})
		}
	}
	s.checkSelectors(t, "the dashboard queries without data", sels)
}

// checkPhasePanels runs the Target dashboard's phase panels for a target
// of every prober: "Phases from $location" (the per-target phase series)
// for HTTP(S), DNS, ICMP and gRPC, and the per-module phase histogram for
// TCP, which has no per-target phase series.
func (s *stack) checkPhasePanels(t *testing.T) {
	var perTarget, perModule []promtest.Query
	for _, q := range promtest.DashboardQueries(t, s.root) {
		switch {
		case q.File != "vantage-target.json":
		case strings.HasPrefix(q.Title, "Phases from"):
			perTarget = append(perTarget, q)
		case strings.HasPrefix(q.Title, "Phase durations"):
			perModule = append(perModule, q)
		}
	}
	if len(perTarget) == 0 || len(perModule) == 0 {
		t.Fatalf("vantage-target.json: %d \"Phases from\" and %d \"Phase durations\" queries, want both", len(perTarget), len(perModule))
	}
	tg := s.targets
	cases := []struct {
		prober, target string
		queries        []promtest.Query
	}{
		{"http", tg.down(), perTarget},
		{"dns", tg.dns, perTarget},
		{"icmp", tg.icmp, perTarget},
		{"grpc", tg.grpc, perTarget},
		{"tcp", tg.tcp, perModule},
	}
	for _, c := range cases {
		t.Run(c.prober, func(t *testing.T) {
			if c.target == "" {
				t.Skip("no ICMP target: this process may not open an ICMP socket (raw as root, or a ping socket allowed by net.ipv4.ping_group_range)")
			}
			vars := allVars(c.target, "5m")["vantage-target.json"]
			var outcomes []promtest.Outcome
			s.waitFor(t, c.prober+" phases returning data", 20*time.Second, func() error {
				now := time.Now()
				r := promtest.Runner{API: s.prom, Start: s.started, End: now, At: now, Step: scrapeInterval}
				var failed []string
				outcomes, failed = promtest.RunAll(c.queries, func(q promtest.Query) []promtest.Outcome { return r.Run(q, vars) })
				if len(failed) > 0 {
					return fmt.Errorf("%s", strings.Join(failed, "; "))
				}
				return nil
			})
			t.Logf("%s target %s:%s", c.prober, c.target, promtest.Report(outcomes))
		})
	}
}

// checkSampleLimit runs every dashboard query as Grafana runs it over the
// default time range at the variables' "All" values, against the scaled
// --query.max-samples. The stack has run for seconds, not an hour: the
// range is placed from Prometheus' start to an hour later, and the
// lookback delta of an hour makes every series scraped so far present at
// each of its steps, as at steady state. (Windows of range functions,
// such as rate's, hold the seconds of data there are; see
// dashboards/README.md.)
func (s *stack) checkSampleLimit(t *testing.T) {
	limit := scaledMaxSamples()
	end := s.started.Add(dashboardRange)
	r := promtest.Runner{API: s.prom, Start: s.started, End: end, At: end, Step: dashboardStep, OnlyAsGrafana: true}
	queries := promtest.DashboardQueries(t, s.root)
	vars := allVars(s.targets.down(), dashboardRange.String())
	outcomes, _ := promtest.RunAll(queries, func(q promtest.Query) []promtest.Outcome { return r.Run(q, vars[q.File]) })
	var peak promtest.Outcome
	var report strings.Builder
	for _, o := range outcomes {
		if o.Err != "" {
			t.Errorf("%s %s: %s", o.Q, o.Kind, o.Err)
		}
		if o.Samples.Peak > peak.Samples.Peak {
			peak = o
		}
		fmt.Fprintf(&report, "\n  %s %s: %d series, %d samples at peak", o.Q, o.Kind, o.Series, o.Samples.Peak)
	}
	t.Logf("--query.max-samples=%d (%d × %d/%d) at %d targets per location; %d queries over %s every %s:%s",
		limit, defaultMaxSamples, bulkTargets, fleetTargets, bulkTargets, len(outcomes), dashboardRange, dashboardStep, report.String())
	t.Logf("the most: %s %s, %d samples at peak (%.1f%% of the limit)", peak.Q, peak.Kind, peak.Samples.Peak, 100*float64(peak.Samples.Peak)/float64(limit))

	// The limit bites at this scale: a panel over every target's series
	// over the same range would be refused.
	unbounded := `probe_success{job=~".+"}`
	_, st, refused := s.prom.RangeQueryStats(unbounded, s.started, end, dashboardStep)
	if refused == nil || !strings.Contains(refused.Error(), tooManySamples) {
		t.Errorf("range query %s over %s every %s: %v (%d samples at peak); want %q: the scaled limit does not model the fleet",
			unbounded, dashboardRange, dashboardStep, refused, st.Peak, tooManySamples)
	}
	series, err := s.prom.Instant(`count(probe_success{job=~".+"})`, time.Now())
	if err != nil || len(series) != 1 {
		t.Fatalf("counting probe_success: %v %s", err, promtest.Describe(series))
	}
	steps := int(dashboardRange/dashboardStep) + 1
	t.Logf("control: a range query over all %g probe_success series × %d steps = %.0f samples is refused: %v",
		series[0].Values[0], steps, series[0].Values[0]*float64(steps), refused)
	if !slices.ContainsFunc(outcomes, func(o promtest.Outcome) bool { return o.Q.File == "vantage-overview.json" }) {
		t.Error("no Overview query was run")
	}
}

// checkWindows checks what the sample limit test cannot measure in a short
// run: a range function's window over every target's series loads
// window/scrape interval samples per series (an hour: 240 per target and
// location at 15s), so queries may apply one to per-target series (those
// with a target label) only for the one target a dashboard shows
// (target="…").
func (s *stack) checkWindows(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	perTarget := map[string]bool{}
	vars := allVars(s.targets.down(), dashboardRange.String())
	hasTarget, err := labels.NewMatcher(labels.MatchNotEqual, "target", "")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, q := range promtest.DashboardQueries(t, s.root) {
		expr, err := promtest.Substitute(q.Expr, vars[q.File])
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := p.ParseExpr(expr)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		parser.Inspect(parsed, func(n parser.Node, _ []parser.Node) error {
			ms, ok := n.(*parser.MatrixSelector)
			if !ok {
				return nil
			}
			vs, _ := ms.VectorSelector.(*parser.VectorSelector)
			if vs == nil || slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool {
				return m.Name == "target" && m.Type == labels.MatchEqual
			}) {
				return nil
			}
			checked++
			// The same selector, narrowed to series with a target label.
			narrowed := &parser.VectorSelector{Name: vs.Name, LabelMatchers: append(slices.Clone(vs.LabelMatchers), hasTarget)}
			sel := narrowed.String()
			has, ok := perTarget[sel]
			if !ok {
				ss, err := s.prom.Instant("count("+sel+")", time.Now())
				if err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				has = len(ss) > 0
				perTarget[sel] = has
			}
			if has {
				t.Errorf("%s: %s applies a range function to every target's series: at 100k targets its window loads window/15s samples per target and location; read a recording, or select target=\"$target\"", q, ms)
			}
			return nil
		})
	}
	t.Logf("%d range functions over series without target=\"…\" checked", checked)
}
