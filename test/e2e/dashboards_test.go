package e2e

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/promtest"
)

// dashboardEnv holds what the queries are run with.
type dashboardEnv struct {
	prom       promtest.API
	start, now time.Time
	vars       map[string]map[string]string // dashboard file → variables
	blindVars  map[string]string            // Target dashboard variables with the unknown target
	traceIDs   map[string]bool              // trace IDs the OTLP receiver got so far
}

// runQuery runs q as Grafana would (promtest.Runner) plus the exemplar
// check, and returns one outcome per run.
func (env dashboardEnv) runQuery(q promtest.Query) []promtest.Outcome {
	vars := env.vars[q.File]
	if q.File == "vantage-target.json" && strings.Contains(q.Expr, `state="unknown"} == 1`) {
		// The outage target is never unknown; the blind one is.
		vars = env.blindVars
	}
	r := promtest.Runner{API: env.prom, Start: env.start, End: env.now, At: env.now, Step: scrapeInterval}
	out := r.Run(q, vars)
	if q.Exemplar && len(out) > 0 && out[0].Kind != "substitution" {
		o := env.exemplars(q, out[0].Expr)
		o.Allowed = promtest.TransientReason(o.Expr)
		out = append(out, o)
	}
	return out
}

// exemplars checks that the panel's exemplars link to traces the OTLP
// receiver got: the "Trace in Jaeger" link of the dots works.
func (env dashboardEnv) exemplars(q promtest.Query, expr string) promtest.Outcome {
	o := promtest.Outcome{Q: q, Kind: "exemplars", Expr: expr}
	ex, err := env.prom.Exemplars(expr, env.start, env.now)
	if err != nil {
		o.Err = err.Error()
		return o
	}
	o.Series = len(ex)
	linked := 0
	for _, labels := range ex {
		if env.traceIDs[labels["trace_id"]] {
			linked++
		}
	}
	o.OK = linked > 0
	if !o.OK {
		o.Err = fmt.Sprintf("%d exemplars, none with a trace_id the OTLP receiver got", len(ex))
	}
	return o
}

// checkDashboards runs every dashboard query until all return data (or the
// limit passes: rate windows need a few samples), then reports each.
func (s *stack) checkDashboards(t *testing.T) {
	queries := promtest.DashboardQueries(t, s.root)
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
			"vantage-overview.json": with("target", promtest.GrafanaRegex(s.urls.scheduled())),
			// Target: one target, the one with an outage, over HTTPS.
			"vantage-target.json": with("target", s.urls.outage),
		},
		blindVars: with("target", s.urls.blind),
	}
	var outcomes []promtest.Outcome
	s.procs.waitFor(t, "every dashboard query returning data", 60*time.Second, func() (bool, string) {
		env.now = time.Now()
		env.traceIDs = map[string]bool{}
		spans := s.otlp.Spans()
		for _, sp := range spans {
			env.traceIDs[sp.TraceID()] = true
		}
		var failed []string
		outcomes, failed = promtest.RunAll(queries, env.runQuery)
		return len(failed) == 0, strings.Join(failed, "; ")
	})
	t.Logf("%d queries of %d panels and annotations:%s", len(outcomes), len(queries), promtest.Report(outcomes))

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

func (s *stack) checkQueryCost(t *testing.T, queries []promtest.Query, env dashboardEnv) {
	perTarget := map[string]bool{}
	isPerTarget := func(name string) bool {
		v, ok := perTarget[name]
		if !ok {
			ss, err := s.prom.Instant(fmt.Sprintf(`count({__name__=~%q, target!=""})`, name), env.now)
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
		if !q.Range {
			continue
		}
		checked++
		for _, m := range metricNameRE.FindAllStringSubmatch(q.Expr, -1) {
			name := m[1] + m[2]
			// ALERTS holds the alerts firing or pending: bounded by the
			// outages, not by the targets.
			if name != "ALERTS" && isPerTarget(name) && !strings.Contains(q.Expr, `target="$target"`) {
				t.Errorf("%s: a range query over every target's %s: at 100k targets it would load more than query.max-samples; read a recording, or select target=\"$target\"", q, name)
			}
		}
	}
	t.Logf("%d range queries checked: none selects every target's series", checked)
}

// checkCertificatePanel checks the value the Target dashboard's certificate
// panel shows: the time left until the target certificate's expiry.
func (s *stack) checkCertificatePanel(t *testing.T, queries []promtest.Query, env dashboardEnv) {
	checked := 0
	for _, q := range queries {
		if q.File != "vantage-target.json" || !strings.Contains(q.Expr, "probe_ssl_earliest_cert_expiry") {
			continue
		}
		expr, err := promtest.Substitute(q.Expr, env.vars[q.File])
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		ss, err := s.prom.Instant(expr, now)
		if err != nil || len(ss) != 1 {
			t.Errorf("%s: %s returned%s (%v), want one value", q, expr, promtest.Describe(ss), err)
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
