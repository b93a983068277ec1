package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// panelQuery is one PromQL query of a dashboard: a panel's target or an
// annotation.
type panelQuery struct {
	file, title, refID string
	expr               string // as written, with Grafana's variables
	instant, rangeQ    bool   // how Grafana runs it
	exemplar           bool
}

func (q panelQuery) String() string {
	kind := "annotation"
	if q.refID != "" {
		kind = "panel " + q.refID
	}
	return fmt.Sprintf("%s %q (%s)", q.file, q.title, kind)
}

// dashboardQueries reads every panel and annotation query of the
// dashboards in dashboards/.
func dashboardQueries(t testing.TB, root string) []panelQuery {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s: %v", filepath.Join(root, "dashboards"), err)
	}
	type target struct {
		RefID    string `json:"refId"`
		Expr     string `json:"expr"`
		Instant  *bool  `json:"instant"`
		Range    *bool  `json:"range"`
		Exemplar bool   `json:"exemplar"`
	}
	type panel struct {
		Title   string            `json:"title"`
		Targets []target          `json:"targets"`
		Panels  []json.RawMessage `json:"panels"` // a collapsed row's panels
	}
	var out []panelQuery
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels      []json.RawMessage `json:"panels"`
			Annotations struct {
				List []struct {
					Name string `json:"name"`
					Expr string `json:"expr"`
				} `json:"list"`
			} `json:"annotations"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		name := filepath.Base(f)
		var walk func([]json.RawMessage)
		walk = func(raws []json.RawMessage) {
			for _, raw := range raws {
				var p panel
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatalf("%s: panel: %v", f, err)
				}
				for _, tg := range p.Targets {
					if tg.Expr == "" {
						continue
					}
					instant := tg.Instant != nil && *tg.Instant
					// Grafana runs a range query unless told it is instant only.
					rangeQ := tg.Range != nil && *tg.Range || !instant
					out = append(out, panelQuery{file: name, title: p.Title, refID: tg.RefID, expr: tg.Expr,
						instant: instant, rangeQ: rangeQ, exemplar: tg.Exemplar})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				out = append(out, panelQuery{file: name, title: a.Name, expr: a.Expr, rangeQ: true})
			}
		}
	}
	return out
}

var variableRE = regexp.MustCompile(`\$\{?([A-Za-z0-9_]+)\}?`)

// substitute replaces Grafana's variables as dashboards/README.md says to
// when running the queries outside Grafana; an unknown variable is an error.
func substitute(expr string, vars map[string]string) (string, error) {
	var unknown []string
	out := variableRE.ReplaceAllStringFunc(expr, func(m string) string {
		name := variableRE.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			unknown = append(unknown, m)
			return m
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("variables %v are not in dashboards/README.md's query contract", unknown)
	}
	return out, nil
}

// grafanaRegex renders a multi-value variable inside =~ as Grafana does:
// each value regex-escaped, joined in a group, and escaped again for the
// PromQL string.
func grafanaRegex(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	return "(" + strings.Join(quoted, "|") + ")"
}

// fallbackRE matches the "or vector(0)" a stat panel ends with so that it
// shows 0 rather than "No data".
var fallbackRE = regexp.MustCompile(`\s+or\s+vector\(0\)\s*$`)

// Queries whose data depends on a state a short run cannot be relied on to
// show; they are run and reported, but no data is not a failure.
var transient = []struct{ match, why string }{
	{`state="seems_down"} == 1`,
		"seems_down lasts one verification round (milliseconds here: the other locations answer at once), " +
			"so only a scrape that happens to fall inside the round records it; the panel shows rounds that outlast a scrape interval"},
	// The programs' self-judgement series: the rules and panels use the
	// names the programs expose them with; no data is allowed until they
	// do, and while none is degraded, stalled or suspect (== 1).
	{`vantage_exporter_last_`, selfJudgement},
	{`vantage_coordinator_last_`, selfJudgement},
	{`vantage_exporter_degraded{`, selfJudgement},
	{`vantage_exporter_clock_stalled{`, selfJudgement},
	{`vantage_coordinator_clock_stalled{`, selfJudgement},
	{`vantage_location_suspect{`, selfJudgement},
}

const selfJudgement = "a series of the programs' self-judgement (liveness clocks, degraded, stalled, suspect): " +
	"the panel shows it once the programs expose it, and a healthy stack has none at 1"

func transientReason(expr string) string {
	for _, tr := range transient {
		if strings.Contains(expr, tr.match) {
			return tr.why
		}
	}
	return ""
}

// queryOutcome is what one query returned.
type queryOutcome struct {
	q       panelQuery
	kind    string // instant, range, range without "or vector(0)", exemplars
	expr    string // as run
	series  int
	ok      bool   // returned something a panel can draw
	allowed string // why no data is acceptable, for transient queries
	err     string
}

// dashboardEnv holds what the queries are run with.
type dashboardEnv struct {
	prom       promAPI
	start, now time.Time
	vars       map[string]map[string]string // dashboard file → variables
	blindVars  map[string]string            // Target dashboard variables with the unknown target
	traceIDs   map[string]bool              // trace IDs the OTLP receiver got so far
}

// runQuery runs q as Grafana would (instant and/or range) plus the checks
// this test adds, and returns one outcome per run.
func (env dashboardEnv) runQuery(q panelQuery) []queryOutcome {
	vars := env.vars[q.file]
	if q.file == "vantage-target.json" && strings.Contains(q.expr, `state="unknown"} == 1`) {
		// The outage target is never unknown; the blind one is.
		vars = env.blindVars
	}
	expr, err := substitute(q.expr, vars)
	if err != nil {
		return []queryOutcome{{q: q, kind: "substitution", err: err.Error()}}
	}
	run := func(kind, expr string, rangeQ bool) queryOutcome {
		o := queryOutcome{q: q, kind: kind, expr: expr}
		var ss []series
		if rangeQ {
			ss, err = env.prom.rangeQuery(expr, env.start, env.now, scrapeInterval)
		} else {
			ss, err = env.prom.instant(expr, env.now)
		}
		if err != nil {
			o.err = err.Error()
			return o
		}
		o.series = len(ss)
		for _, s := range ss {
			o.ok = o.ok || s.finite()
			if s.Metric["job"] == "vantage-probe" {
				o.ok, o.err = false, "mixes in the series of the coordinator's /probe (job vantage-probe)"
				break
			}
		}
		return o
	}
	var out []queryOutcome
	if q.instant {
		out = append(out, run("instant", expr, false))
	}
	if q.rangeQ {
		out = append(out, run("range", expr, true))
	}
	// "X or vector(0)" always returns data; X itself must too, over the run.
	if fallbackRE.MatchString(expr) {
		o := run("range without \"or vector(0)\"", fallbackRE.ReplaceAllString(expr, ""), true)
		out = append(out, o)
	}
	if q.exemplar {
		out = append(out, env.exemplars(q, expr))
	}
	for i := range out {
		out[i].allowed = transientReason(out[i].expr)
	}
	return out
}

// exemplars checks that the panel's exemplars link to traces the OTLP
// receiver got: the "Trace in Jaeger" link of the dots works.
func (env dashboardEnv) exemplars(q panelQuery, expr string) queryOutcome {
	o := queryOutcome{q: q, kind: "exemplars", expr: expr}
	ex, err := env.prom.exemplars(expr, env.start, env.now)
	if err != nil {
		o.err = err.Error()
		return o
	}
	o.series = len(ex)
	linked := 0
	for _, labels := range ex {
		if env.traceIDs[labels["trace_id"]] {
			linked++
		}
	}
	o.ok = linked > 0
	if !o.ok {
		o.err = fmt.Sprintf("%d exemplars, none with a trace_id the OTLP receiver got", len(ex))
	}
	return o
}

// checkDashboards runs every dashboard query until all return data (or the
// limit passes: rate windows need a few samples), then reports each.
func (s *stack) checkDashboards(t *testing.T) {
	queries := dashboardQueries(t, s.root)
	common := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "5m", "location": ".*", "job": "vantage-exporter"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for ck, cv := range common {
			m[ck] = cv
		}
		return m
	}
	env := dashboardEnv{
		prom: s.prom, start: s.started,
		vars: map[string]map[string]string{
			"vantage-fleet.json": common,
			// Overview: target is multi-value; all scheduled targets picked.
			"vantage-overview.json": with("target", grafanaRegex(s.urls.scheduled())),
			// Target: one target, the one with an outage, over HTTPS.
			"vantage-target.json": with("target", s.urls.outage),
		},
		blindVars: with("target", s.urls.blind),
	}
	var outcomes []queryOutcome
	s.procs.waitFor(t, "every dashboard query returning data", 60*time.Second, func() (bool, string) {
		env.now = time.Now()
		env.traceIDs = map[string]bool{}
		spans := s.otlp.Spans()
		for _, sp := range spans {
			env.traceIDs[sp.TraceID()] = true
		}
		outcomes = outcomes[:0]
		var missing []string
		for _, q := range queries {
			for _, o := range env.runQuery(q) {
				outcomes = append(outcomes, o)
				if o.err != "" || !o.ok && o.allowed == "" {
					missing = append(missing, fmt.Sprintf("%s %s", q, o.kind))
				}
			}
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})

	sort.SliceStable(outcomes, func(i, j int) bool { return outcomes[i].q.file < outcomes[j].q.file })
	var report strings.Builder
	for _, o := range outcomes {
		status := fmt.Sprintf("%d series", o.series)
		if o.kind == "exemplars" {
			status = fmt.Sprintf("%d exemplars", o.series)
		}
		switch {
		case o.ok:
		case o.allowed != "":
			status += " — no data, allowed: " + o.allowed
		default:
			status += " — FAILED " + o.err
		}
		fmt.Fprintf(&report, "\n  %s %s: %s", o.q, o.kind, status)
	}
	t.Logf("%d queries of %d panels and annotations:%s", len(outcomes), len(queries), report.String())

	s.checkCertificatePanel(t, queries, env)
	s.checkQueryCost(t, queries, env)
}

// Query cost at scale (dashboards/README.md): a range query loads one
// sample per series it selects and step, so one over every target's series
// (300,000 at 100k targets from 3 locations, ~1,000 steps per panel)
// loads 300M samples, beyond Prometheus' default query.max-samples of 50M.
// Range queries may therefore select per-target series (those with a
// target label) only for the one target a dashboard shows (target="…");
// the fleet-wide panels read recordings. An instant query loads one sample
// per series: at most a few per target, under 1M at that scale.
var metricNameRE = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)\s*\{|__name__=~"([^"]+)"`)

func (s *stack) checkQueryCost(t *testing.T, queries []panelQuery, env dashboardEnv) {
	perTarget := map[string]bool{}
	isPerTarget := func(name string) bool {
		v, ok := perTarget[name]
		if !ok {
			ss, err := s.prom.instant(fmt.Sprintf(`count({__name__=~%q, target!=""})`, name), env.now)
			if err != nil {
				t.Fatalf("asking whether %s has a target label: %v", name, err)
			}
			v = len(ss) > 0
			perTarget[name] = v
		}
		return v
	}
	checked := 0
	for _, q := range queries {
		if !q.rangeQ {
			continue
		}
		checked++
		for _, m := range metricNameRE.FindAllStringSubmatch(q.expr, -1) {
			name := m[1] + m[2]
			// ALERTS holds the alerts firing or pending: bounded by the
			// outages, not by the targets.
			if name != "ALERTS" && isPerTarget(name) && !strings.Contains(q.expr, `target="$target"`) {
				t.Errorf("%s: a range query over every target's %s: at 100k targets it would load more than query.max-samples; read a recording, or select target=\"$target\"", q, name)
			}
		}
	}
	t.Logf("%d range queries checked: none selects every target's series", checked)
}

// checkCertificatePanel checks the value the Target dashboard's certificate
// panel shows: the time left until the target certificate's expiry.
func (s *stack) checkCertificatePanel(t *testing.T, queries []panelQuery, env dashboardEnv) {
	checked := 0
	for _, q := range queries {
		if q.file != "vantage-target.json" || !strings.Contains(q.expr, "probe_ssl_earliest_cert_expiry") {
			continue
		}
		expr, err := substitute(q.expr, env.vars[q.file])
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		ss, err := s.prom.instant(expr, now)
		if err != nil || len(ss) != 1 {
			t.Errorf("%s: %s returned%s (%v), want one value", q, expr, describe(ss), err)
			continue
		}
		want := s.target.notAfter.Sub(now).Seconds()
		if got := ss[0].Values[0]; math.Abs(got-want) > 60 {
			t.Errorf("%s shows %.0fs, want the certificate's remaining %.0fs", q, got, want)
		} else {
			t.Logf("%s shows %.0fs (%.1f days); the certificate has %.0fs left", q, got, got/86400, want)
		}
		checked++
	}
	if checked == 0 {
		t.Error("found no certificate expiry panel in vantage-target.json")
	}
}
