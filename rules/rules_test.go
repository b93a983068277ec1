package rules

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	// alertmanagerConfig is deploy/alertmanager.yml, seen from this package.
	alertmanagerConfig = "../deploy/alertmanager.yml"
	// runbookBase is where every alert's runbook_url annotation points: a
	// section of rules/README.md.
	runbookBase = "https://github.com/vantageprobe/vantage/blob/main/rules/README.md#"
)

// pagingAlerts are the only alerts allowed to page (severity critical): a
// confirmed outage, and no coordinator up to confirm one.
var pagingAlerts = []string{"TargetConfirmedDown", "NoCoordinatorUp"}

// Severities of the alerts, as common Alertmanager trees route them.
const (
	severityCritical = "critical"
	severityWarning  = "warning"
	severityInfo     = "info"
)

// requiredAlerts are the alerts others rely on (dashboards, runbooks, the
// inhibitions of deploy/alertmanager.yml).
var requiredAlerts = []string{
	"TargetConfirmedDown", "TargetSeemsDown", "TargetFailingFromLocation", "TargetUnknown",
	"TargetFailureRatioHigh", "SlowTimeToFirstByte",
	"CertificateExpiresIn30Days", "CertificateExpiresIn14Days", "CertificateExpiresIn7Days",
	"LocationDown", "CoordinatorDown", "NoCoordinatorUp", "SchedulerMissingChecks",
	"LocationSuspect", "TargetFlapping", "CoordinatorStalled", "ExporterDegraded", "ExporterStalled",
}

// Rule files in Prometheus's format, as much of it as the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// promtool unit test files, as much of them as the tests read.
type unitTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string           `yaml:"eval_time"`
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// mustTool returns the path of a binary Debian packages, failing the test
// with the package to install when it is missing: CI installs them, and a
// skipped test would hide a broken rule.
func mustTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s is required: %v; install the Debian package %s (apt-get install %s)", name, err, debianPackage, debianPackage)
	}
	return path
}

// runTool runs bin with args and returns its standard output and error.
// The bound only ends a tool that hangs: promtool test rules over every
// file takes about 15s on a loaded 2-core machine.
func runTool(tb testing.TB, bin string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustGlob returns the files matching pattern, at least one.
func mustGlob(tb testing.TB, pattern string) []string {
	tb.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatalf("no files match %s", pattern)
	}
	return files
}

func ruleFiles(tb testing.TB) []string { return mustGlob(tb, "*.rules.yml") }
func unitTestFiles(tb testing.TB) []string {
	return mustGlob(tb, filepath.Join("tests", "*.test.yml"))
}

// mustDecodeYAML decodes path into v; fields v does not name are ignored
// (the structs above read a subset of each format).
func mustDecodeYAML(tb testing.TB, path string, v any) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// alertingRules returns every alerting rule of the rule files, by file.
func alertingRules(tb testing.TB) map[string][]rule {
	tb.Helper()
	out := map[string][]rule{}
	for _, f := range ruleFiles(tb) {
		var rf ruleFile
		mustDecodeYAML(tb, f, &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					out[f] = append(out[f], r)
				}
			}
		}
	}
	return out
}

// alertNames returns the names of all alerting rules, sorted and unique.
func alertNames(tb testing.TB) []string {
	tb.Helper()
	var names []string
	for _, rules := range alertingRules(tb) {
		for _, r := range rules {
			names = append(names, r.Alert)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := mustTool(t, "promtool", "prometheus")
	files := ruleFiles(t)
	stdout, stderr, err := runTool(t, promtool, append([]string{"check", "rules", "--lint=all", "--lint-fatal"}, files...)...)
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s%s", strings.Join(files, " "), err, stdout, stderr)
	}
	// promtool reports each file; make sure none was skipped.
	if n := strings.Count(stdout, "SUCCESS"); n != len(files) {
		t.Errorf("promtool check rules reported %d successes for %d files:\n%s%s", n, len(files), stdout, stderr)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := mustTool(t, "promtool", "prometheus")
	files := unitTestFiles(t)
	stdout, stderr, err := runTool(t, promtool, append([]string{"test", "rules"}, files...)...)
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s%s", strings.Join(files, " "), err, stdout, stderr)
	}
	if n := strings.Count(stdout, "SUCCESS"); n != len(files) {
		t.Errorf("promtool test rules reported %d successes for %d files:\n%s%s", n, len(files), stdout, stderr)
	}
}

// TestUnitTestsCoverEveryAlert asserts that the promtool unit tests load
// every rule file and check every alert both firing (exp_alerts not empty,
// which promtool then requires to fire) and not firing.
func TestUnitTestsCoverEveryAlert(t *testing.T) {
	fires := map[string]bool{}
	silent := map[string]bool{}
	for _, f := range unitTestFiles(t) {
		var tf unitTestFile
		mustDecodeYAML(t, f, &tf)
		var loaded []string
		for _, rf := range tf.RuleFiles {
			loaded = append(loaded, filepath.Clean(filepath.Join(filepath.Dir(f), rf)))
		}
		for _, want := range ruleFiles(t) {
			if !slices.Contains(loaded, filepath.Clean(want)) {
				t.Errorf("%s: rule_files does not load %s", f, want)
			}
		}
		for _, tc := range tf.Tests {
			for _, at := range tc.AlertRuleTests {
				if len(at.ExpAlerts) > 0 {
					fires[at.Alertname] = true
				} else {
					silent[at.Alertname] = true
				}
			}
		}
	}
	for _, name := range alertNames(t) {
		if !fires[name] {
			t.Errorf("no promtool test expects %s to fire", name)
		}
		if !silent[name] {
			t.Errorf("no promtool test expects %s not to fire", name)
		}
	}
}

// TestAlertingRulesRoutingContract guards what deploy/alertmanager.yml
// routes on: every alert has a known severity, the annotations the
// notifications show (and no query in them), and only pagingAlerts page.
func TestAlertingRulesRoutingContract(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdownAnchors(string(readme))
	for file, rules := range alertingRules(t) {
		for _, r := range rules {
			where := file + ": alert " + r.Alert
			sev := r.Labels["severity"]
			switch {
			case sev != severityCritical && sev != severityWarning && sev != severityInfo:
				t.Errorf("%s: severity %q, want critical, warning or info", where, sev)
			case sev == severityCritical && r.Alert == "EventRaised" && strings.Contains(r.Expr, `severity="critical"`):
				// A pushed event pages when it says so itself.
			case sev == severityCritical && !slices.Contains(pagingAlerts, r.Alert):
				t.Errorf("%s: severity critical, but only %v may page", where, pagingAlerts)
			case slices.Contains(pagingAlerts, r.Alert) && sev != severityCritical:
				t.Errorf("%s: severity %q, want critical", where, sev)
			}
			for _, a := range []string{"summary", "description", "runbook_url", "dashboard_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotation %s is missing or empty", where, a)
				}
			}
			for name, text := range r.Annotations {
				// One query per firing alert and evaluation does not
				// scale: 300k of them in a location outage at 100k targets.
				if queryInTemplateRE.MatchString(text) {
					t.Errorf("%s: annotation %s runs a query; link a dashboard instead", where, name)
				}
			}
			if rb := r.Annotations["runbook_url"]; rb != "" {
				anchor, ok := strings.CutPrefix(rb, runbookBase)
				if !ok || !anchors[anchor] {
					t.Errorf("%s: runbook_url %q is not a section of rules/README.md (%s<anchor>)", where, rb, runbookBase)
				}
			}
		}
	}
	names := alertNames(t)
	for _, want := range requiredAlerts {
		if !slices.Contains(names, want) {
			t.Errorf("alert %s is missing from the rule files", want)
		}
	}
}

// queryInTemplateRE matches the template function query.
var queryInTemplateRE = regexp.MustCompile(`\|\s*query\b|\{\{-?\s*query\b|\(\s*query\b`)

// recordNameRE is level:metric:operations.
var recordNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$`)

// counterRE finds the counters an expression reads, with what precedes
// them.
var counterRE = regexp.MustCompile(`([a-z_]*\(\s*)?\b([a-z_][a-z0-9_]*_total)\b`)

// allRules returns every rule of the rule files.
func allRules(tb testing.TB) []rule {
	tb.Helper()
	var out []rule
	for _, f := range ruleFiles(tb) {
		var rf ruleFile
		mustDecodeYAML(tb, f, &rf)
		for _, g := range rf.Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

// TestRulesReadCountersThroughRate asserts that every counter an
// expression reads goes straight into rate, irate or increase: a counter's
// raw value means nothing across restarts.
func TestRulesReadCountersThroughRate(t *testing.T) {
	for _, r := range allRules(t) {
		for _, m := range counterRE.FindAllStringSubmatch(r.Expr, -1) {
			fn := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[1]), "("))
			if fn != "rate" && fn != "irate" && fn != "increase" {
				t.Errorf("rule %s%s reads the counter %s outside rate/increase: %s", r.Alert, r.Record, m[2], r.Expr)
			}
		}
	}
	if got := counterRE.FindAllStringSubmatch(`0 * sum without (result) (vantage_probe_checks_total{a="b"}) + rate(x_total[5m])`, -1); len(got) != 2 || got[0][1] == "rate(" || got[1][1] != "rate(" {
		t.Errorf("counterRE does not tell a bare counter from a rate: %q", got)
	}
}

// TestRecordingRulesAreNamedAndRead asserts that recording rules are named
// level:metric:operations and that each one is read by an alert or a
// dashboard: a recorded series nobody reads costs one series per target
// for nothing.
func TestRecordingRulesAreNamedAndRead(t *testing.T) {
	var readers strings.Builder
	for _, r := range allRules(t) {
		// Alerts read recorded series, and so do recordings built on
		// others (which are read in turn).
		readers.WriteString(r.Expr + "\n")
	}
	for _, f := range mustGlob(t, filepath.Join("..", "dashboards", "*.json")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		readers.Write(b)
	}
	for _, r := range allRules(t) {
		if r.Record == "" {
			continue
		}
		if !recordNameRE.MatchString(r.Record) {
			t.Errorf("recording rule %s is not named level:metric:operations", r.Record)
		}
		if !strings.Contains(readers.String(), r.Record) {
			t.Errorf("recording rule %s is read by no alert and no dashboard", r.Record)
		}
	}
}

var headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*$`)

// markdownAnchors returns the anchors GitHub generates for the headings of
// a Markdown document: lower case, punctuation dropped, spaces as dashes.
func markdownAnchors(doc string) map[string]bool {
	anchors := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(doc, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
				b.WriteRune(r)
			}
		}
		anchors[b.String()] = true
	}
	return anchors
}

func TestMarkdownAnchors(t *testing.T) {
	got := markdownAnchors("# vantage rules\n## Alerts\n### TargetConfirmedDown\ntext # not a heading\n")
	for _, want := range []string{"vantage-rules", "alerts", "targetconfirmeddown"} {
		if !got[want] {
			t.Errorf("anchor %q missing from %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("got %d anchors %v, want 3", len(got), got)
	}
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := mustTool(t, "amtool", "prometheus-alertmanager")
	stdout, stderr, err := runTool(t, amtool, "check-config", alertmanagerConfig)
	if err != nil {
		t.Fatalf("amtool check-config %s: %v\n%s%s", alertmanagerConfig, err, stdout, stderr)
	}
	if !strings.Contains(stdout, "SUCCESS") {
		t.Errorf("amtool check-config did not report SUCCESS:\n%s%s", stdout, stderr)
	}
}
