package promtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

// Query is one PromQL query of a dashboard: a panel's target or an
// annotation.
type Query struct {
	File, Title, RefID string
	Expr               string // as written, with Grafana's variables
	Instant, Range     bool   // how Grafana runs it
	Exemplar           bool
}

func (q Query) String() string {
	kind := "annotation"
	if q.RefID != "" {
		kind = "panel " + q.RefID
	}
	return fmt.Sprintf("%s %q (%s)", q.File, q.Title, kind)
}

// DashboardQueries reads every panel and annotation query of the
// dashboards in dashboards/.
func DashboardQueries(t testing.TB, root string) []Query {
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
	var out []Query
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
					out = append(out, Query{File: name, Title: p.Title, RefID: tg.RefID, Expr: tg.Expr,
						Instant: instant, Range: rangeQ, Exemplar: tg.Exemplar})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, a := range d.Annotations.List {
			if a.Expr != "" {
				out = append(out, Query{File: name, Title: a.Name, Expr: a.Expr, Range: true})
			}
		}
	}
	return out
}

var variableRE = regexp.MustCompile(`\$\{?([A-Za-z0-9_]+)\}?`)

// Substitute replaces Grafana's variables as dashboards/README.md says to
// when running the queries outside Grafana; an unknown variable is an error.
func Substitute(expr string, vars map[string]string) (string, error) {
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

// GrafanaRegex renders a multi-value variable inside =~ as Grafana does:
// each value regex-escaped, joined in a group, and escaped again for the
// PromQL string.
func GrafanaRegex(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strings.ReplaceAll(regexp.QuoteMeta(v), `\`, `\\`)
	}
	return "(" + strings.Join(quoted, "|") + ")"
}

// FallbackRE matches the "or vector(0)" a stat panel ends with so that it
// shows 0 rather than "No data".
var FallbackRE = regexp.MustCompile(`\s+or\s+vector\(0\)\s*$`)

// Queries whose data depends on a state a short run cannot be relied on to
// show; they are run and reported, but no data is not a failure.
var transient = []struct{ match, why string }{
	{`state="seems_down"} == 1`,
		"seems_down lasts one verification round (milliseconds here: the other locations answer at once), " +
			"so only a scrape that happens to fall inside the round records it; the panel shows rounds that outlast a scrape interval"},
	// The programs' self-judgement: the panels show an exporter degraded,
	// a clock stalled or a location suspect (== 1), which a healthy stack
	// has none of.
	{`vantage_exporter_degraded{`, selfJudgement},
	{`vantage_exporter_clock_stalled{`, selfJudgement},
	{`vantage_coordinator_clock_stalled{`, selfJudgement},
	{`vantage_location_suspect{`, selfJudgement},
}

const selfJudgement = "the programs' self-judgement (degraded, stalled, suspect): a healthy stack has none at 1"

// TransientReason says why expr may return no data in a short run, or ""
// when it must return data.
func TransientReason(expr string) string {
	for _, tr := range transient {
		if strings.Contains(expr, tr.match) {
			return tr.why
		}
	}
	return ""
}

// Outcome is what one query returned.
type Outcome struct {
	Q       Query
	Kind    string // instant, range, range without "or vector(0)", exemplars
	Expr    string // as run
	Series  int
	Samples Stats  // what Prometheus loaded for it
	OK      bool   // returned something a panel can draw
	Allowed string // why no data is acceptable, for transient queries
	Err     string
}

// Runner runs dashboard queries as Grafana does: range queries from Start
// to End every Step, instant queries at At.
type Runner struct {
	API            API
	Start, End, At time.Time
	Step           time.Duration
	// OnlyAsGrafana leaves out the run without "or vector(0)": only the
	// runs Grafana makes.
	OnlyAsGrafana bool
}

// Run substitutes vars into q and runs it as Grafana would (instant and/or
// range), plus, for a query ending in "or vector(0)", the query without it
// over the range: "X or vector(0)" always returns data, X itself must too.
// It returns one outcome per run, with the samples Prometheus loaded.
func (r Runner) Run(q Query, vars map[string]string) []Outcome {
	expr, err := Substitute(q.Expr, vars)
	if err != nil {
		return []Outcome{{Q: q, Kind: "substitution", Err: err.Error()}}
	}
	run := func(kind, expr string, rangeQ bool) Outcome {
		o := Outcome{Q: q, Kind: kind, Expr: expr}
		var ss []Series
		if rangeQ {
			ss, o.Samples, err = r.API.RangeQueryStats(expr, r.Start, r.End, r.Step)
		} else {
			ss, o.Samples, err = r.API.InstantStats(expr, r.At)
		}
		if err != nil {
			o.Err = err.Error()
			return o
		}
		o.Series = len(ss)
		for _, s := range ss {
			o.OK = o.OK || s.Finite()
			if s.Metric["job"] == "vantage-probe" {
				o.OK, o.Err = false, "mixes in the series of the coordinator's /probe (job vantage-probe)"
				break
			}
		}
		return o
	}
	var out []Outcome
	if q.Instant {
		out = append(out, run("instant", expr, false))
	}
	if q.Range {
		out = append(out, run("range", expr, true))
	}
	if !r.OnlyAsGrafana && FallbackRE.MatchString(expr) {
		out = append(out, run("range without \"or vector(0)\"", FallbackRE.ReplaceAllString(expr, ""), true))
	}
	for i := range out {
		out[i].Allowed = TransientReason(out[i].Expr)
	}
	return out
}

// Failed reports whether the outcome is a failure: an error, or no data
// where no data is not allowed.
func (o Outcome) Failed() bool { return o.Err != "" || !o.OK && o.Allowed == "" }

// Report renders outcomes one a line, with what each returned.
func Report(outcomes []Outcome) string {
	var b strings.Builder
	for _, o := range outcomes {
		status := fmt.Sprintf("%d series", o.Series)
		if o.Kind == "exemplars" {
			status = fmt.Sprintf("%d exemplars", o.Series)
		}
		if o.Samples.Peak > 0 {
			status += fmt.Sprintf(", %d samples at peak", o.Samples.Peak)
		}
		switch {
		case o.OK:
		case o.Allowed != "":
			status += " — no data, allowed: " + o.Allowed
		default:
			status += " — FAILED " + o.Err
		}
		fmt.Fprintf(&b, "\n  %s %s: %s", o.Q, o.Kind, status)
	}
	return b.String()
}

// RunAll runs every query with run and returns the outcomes, sorted by
// dashboard, and the failed ones named ("file "title" (panel A) range").
func RunAll(queries []Query, run func(Query) []Outcome) (outcomes []Outcome, failed []string) {
	for _, q := range queries {
		for _, o := range run(q) {
			outcomes = append(outcomes, o)
			if o.Failed() {
				failed = append(failed, fmt.Sprintf("%s %s", q, o.Kind))
			}
		}
	}
	sort.SliceStable(outcomes, func(i, j int) bool { return outcomes[i].Q.File < outcomes[j].Q.File })
	return outcomes, failed
}
