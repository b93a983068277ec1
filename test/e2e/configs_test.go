package e2e

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// The configuration of the stack. The exporters' configuration is written
// here; Prometheus', Alertmanager's and the coordinator's are derived from
// the files in deploy/ that docker-compose.yml mounts, with only addresses
// and intervals rewritten, so the test runs what the demo stack runs.

// location is one exporter: its name and the source address it probes from.
type location struct{ name, source string }

var locations = []location{
	{"ams", "127.0.0.2"},
	{"fra", "127.0.0.3"},
	{"sfo", "127.0.0.4"},
}

// blindLocation has no module for the blind target: the coordinator's
// verification requests for it answer 400 (unknown module), so that
// location is unknown for the target.
const blindLocation = "sfo"

// targetURLs are the URLs the exporters check.
type targetURLs struct {
	outage, oneLocation, blind, slow, demo, canary, maintained string
}

func (u targetURLs) scheduled() []string {
	return []string{u.outage, u.oneLocation, u.blind, u.slow, u.demo, u.maintained}
}

// exporterConfig is one location's configuration: every module probes from
// the location's own source address.
func exporterConfig(l location, caFile string, u targetURLs) string {
	httpSection := fmt.Sprintf(`
      preferred_ip_protocol: ip4
      source_ip_address: %s
      tls_config:
        ca_file: %s`, l.source, caFile)
	var b strings.Builder
	fmt.Fprintf(&b, `modules:
  http_2xx:
    prober: http
    timeout: %[1]s
    http:%[2]s
  # As in deploy/exporter.yml: a 200 with the demo target's heading.
  http_demo:
    prober: http
    timeout: %[1]s
    http:%[2]s
      valid_status_codes: [200]
      fail_if_body_not_matches_regexp:
        - %[3]q
`, moduleTimeout, httpSection, demoBody)
	if l.name != blindLocation {
		fmt.Fprintf(&b, `  http_blind:
    prober: http
    timeout: %s
    http:%s
`, moduleTimeout, httpSection)
	}
	fmt.Fprintf(&b, `scheduler:
  max_in_flight: 100
  retries: 1
  retry_interval: %s
  interval: %s
targets:
  - module: http_2xx
    targets: [%s, %s, %s, %s]
    labels: {team: e2e}
  - module: http_demo
    targets: [%s]
    labels: {team: demo, failure_threshold: "3"}
`, retryInterval, checkInterval, u.outage, u.oneLocation, u.slow, u.maintained, u.demo)
	if l.name != blindLocation {
		fmt.Fprintf(&b, `  - module: http_blind
    targets: [%s]
    labels: {team: e2e}
`, u.blind)
	}
	fmt.Fprintf(&b, `canary:
  module: http_2xx
  target: %s
  interval: %s
`, u.canary, checkInterval)
	return b.String()
}

// mustYAML reads a YAML file of the repository into a generic document.
func mustYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return doc
}

func mustMarshal(t *testing.T, doc any) string {
	t.Helper()
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// rewriteStrings replaces every string of doc that equals a key of repl.
func rewriteStrings(v any, repl map[string]string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = rewriteStrings(e, repl)
		}
	case []any:
		for i, e := range x {
			x[i] = rewriteStrings(e, repl)
		}
	case string:
		if r, ok := repl[x]; ok {
			return r
		}
	}
	return v
}

// stringsContaining lists the strings of doc that contain any of subs.
func stringsContaining(v any, subs []string) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			out = append(out, stringsContaining(e, subs)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, stringsContaining(e, subs)...)
		}
	case string:
		for _, s := range subs {
			if strings.Contains(x, s) {
				out = append(out, x)
				break
			}
		}
	}
	return out
}

// composeHosts are the docker-compose service names deploy/ refers to;
// none may survive the rewriting.
var composeHosts = []string{"exporter-", "coordinator:", "demotarget", "alertmanager:", "grafana:", "localhost:", "jaeger"}

// Where docker-compose.yml mounts rules/ in the Prometheus container.
const composeRulesDir = "/etc/prometheus/rules/"

// prometheusConfig derives Prometheus' configuration from
// deploy/prometheus.yml: the compose services' addresses become the test's
// (addrs maps host:port, or the demo target's URL, to its replacement),
// the vantage-coordinator job scrapes coordinators (host:port each: one, or
// an HA pair) in place of the compose service, scrape and evaluation
// intervals become 1s, the rule files are the repository's rules/*.yml,
// and the grafana job, with no Grafana here, is dropped. Job names and
// labels stay as they are.
func prometheusConfig(t *testing.T, root string, addrs map[string]string, coordinators []string) string {
	t.Helper()
	path := filepath.Join(root, "deploy", "prometheus.yml")
	doc := mustYAML(t, path)

	global, _ := doc["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		doc["global"] = global
	}
	global["scrape_interval"] = scrapeInterval.String()
	global["evaluation_interval"] = evaluationInterval.String()

	rules, _ := doc["rule_files"].([]any)
	if len(rules) == 0 {
		t.Fatalf("%s loads no rule files", path)
	}
	for i, r := range rules {
		s, _ := r.(string)
		if !strings.HasPrefix(s, composeRulesDir) {
			t.Fatalf("%s: rule file %q is not under %s, where docker-compose.yml mounts rules/", path, s, composeRulesDir)
		}
		rules[i] = filepath.Join(root, "rules", strings.TrimPrefix(s, composeRulesDir))
	}

	jobs, _ := doc["scrape_configs"].([]any)
	var kept []any
	var names []string
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		name, _ := job["job_name"].(string)
		if name == "grafana" {
			continue // no Grafana in this test
		}
		names = append(names, name)
		// The global intervals apply to every job.
		delete(job, "scrape_interval")
		delete(job, "scrape_timeout")
		if name == "vantage-coordinator" {
			// The compose stack's pair becomes the test's coordinators.
			dropTargets(job, func(s string) bool { return strings.HasPrefix(s, "coordinator-") })
			replaceTarget(t, path, job, coordinatorService, coordinators)
		}
		dropUnrunExporters(job, addrs)
		kept = append(kept, job)
	}
	for _, want := range []string{"vantage-exporter", "vantage-coordinator"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s has no job %s, which rules/ and dashboards/ need", path, want)
		}
	}
	doc["scrape_configs"] = kept

	rewriteStrings(doc, addrs)
	if left := stringsContaining(doc, composeHosts); len(left) > 0 {
		t.Fatalf("%s refers to %q, which test/e2e does not run or know the address of: add it to the addresses the test rewrites", path, left)
	}
	return mustMarshal(t, doc)
}

// dropUnrunExporters removes from a job's static targets the exporters
// test/e2e does not run: it runs one exporter per location, where the
// compose stack runs a location (ams) as a cluster of two.
func dropUnrunExporters(job map[string]any, addrs map[string]string) {
	dropTargets(job, func(s string) bool { return strings.HasPrefix(s, "exporter-") && addrs[s] == "" })
}

// dropTargets removes from a job's static targets those drop says.
func dropTargets(job map[string]any, drop func(string) bool) {
	scs, _ := job["static_configs"].([]any)
	for _, sc := range scs {
		m, _ := sc.(map[string]any)
		targets, _ := m["targets"].([]any)
		kept := targets[:0]
		for _, tg := range targets {
			if s, _ := tg.(string); drop(s) {
				continue
			}
			kept = append(kept, tg)
		}
		if m != nil {
			m["targets"] = kept
		}
	}
}

// coordinatorService is the coordinator's address in deploy/prometheus.yml.
const coordinatorService = "coordinator:9716"

// replaceTarget replaces the static target from in job (from the file
// path) by the targets to, failing the test when job has no such target.
func replaceTarget(t *testing.T, path string, job map[string]any, from string, to []string) {
	t.Helper()
	replaced := false
	scs, _ := job["static_configs"].([]any)
	for _, sc := range scs {
		c, _ := sc.(map[string]any)
		targets, _ := c["targets"].([]any)
		var out []any
		for _, tg := range targets {
			if tg == from {
				for _, x := range to {
					out = append(out, x)
				}
				replaced = true
				continue
			}
			out = append(out, tg)
		}
		if c != nil {
			c["targets"] = out
		}
	}
	if !replaced {
		t.Fatalf("%s: job %v has no static target %s to replace with the test's %v", path, job["job_name"], from, to)
	}
}

// alertmanagerConfig derives Alertmanager's configuration from
// deploy/alertmanager.yml: the webhook URLs point at the test's receiver
// (same paths), every group_wait becomes groupWait so that the first
// notification of a group comes within seconds, and every group_interval
// becomes groupInterval when that is set. Everything else (routes,
// matchers, inhibitions) is the deployed configuration.
func alertmanagerConfig(t *testing.T, root, webhookBase string, groupInterval time.Duration) string {
	t.Helper()
	path := filepath.Join(root, "deploy", "alertmanager.yml")
	doc := mustYAML(t, path)
	base, err := url.Parse(webhookBase)
	if err != nil {
		t.Fatal(err)
	}
	receivers, _ := doc["receivers"].([]any)
	hooks := 0
	for _, r := range receivers {
		recv, _ := r.(map[string]any)
		wcs, _ := recv["webhook_configs"].([]any)
		for _, w := range wcs {
			wc, _ := w.(map[string]any)
			raw, _ := wc["url"].(string)
			u, err := url.Parse(raw)
			if err != nil || u.Path == "" {
				t.Fatalf("%s: receiver %v: webhook url %q has no path to keep", path, recv["name"], raw)
			}
			u.Scheme, u.Host = base.Scheme, base.Host
			wc["url"] = u.String()
			hooks++
		}
		if len(recv) > 0 && len(wcs) == 0 {
			t.Fatalf("%s: receiver %v has no webhook_configs; test/e2e only knows how to receive webhooks", path, recv["name"])
		}
	}
	if hooks == 0 {
		t.Fatalf("%s has no webhook receivers", path)
	}
	var capWait func(route map[string]any)
	capWait = func(route map[string]any) {
		if _, ok := route["group_wait"]; ok {
			route["group_wait"] = groupWait.String()
		}
		if _, ok := route["group_interval"]; ok && groupInterval > 0 {
			route["group_interval"] = groupInterval.String()
		}
		subs, _ := route["routes"].([]any)
		for _, s := range subs {
			if sub, ok := s.(map[string]any); ok {
				capWait(sub)
			}
		}
	}
	route, _ := doc["route"].(map[string]any)
	if route == nil {
		t.Fatalf("%s has no route", path)
	}
	capWait(route)
	return mustMarshal(t, doc)
}

// coordinatorConfig derives the coordinator's configuration from
// deploy/coordinator.yml: the same locations (ams, fra, sfo) at the test's
// exporters (one each), the same quorum, and short timers.
func coordinatorConfig(t *testing.T, root string, exporterURLs map[string]string) string {
	t.Helper()
	path := filepath.Join(root, "deploy", "coordinator.yml")
	doc := mustYAML(t, path)
	locs, _ := doc["locations"].([]any)
	var names []string
	for _, l := range locs {
		loc, _ := l.(map[string]any)
		name, _ := loc["name"].(string)
		u, ok := exporterURLs[name]
		if !ok {
			t.Fatalf("%s lists location %q; test/e2e runs exporters for %v", path, name, locations)
		}
		// One exporter per location here: ams's cluster members (urls)
		// become its one exporter.
		delete(loc, "urls")
		loc["url"] = u
		names = append(names, name)
	}
	if len(names) != len(locations) {
		t.Fatalf("%s lists locations %v; test/e2e runs %v", path, names, locations)
	}
	conf, _ := doc["confirmation"].(map[string]any)
	if conf == nil {
		conf = map[string]any{}
		doc["confirmation"] = conf
	}
	conf["verify_timeout"] = verifyTimeout.String()
	conf["reverify_interval"] = checkInterval.String()
	// Recoveries held as long as two checks, not a minute, to keep the
	// stack's outages short.
	conf["recovery_hold"] = (2 * checkInterval).String()
	doc["health_check_interval"] = checkInterval.String()
	return mustMarshal(t, doc)
}
