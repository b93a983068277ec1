package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	yaml "go.yaml.in/yaml/v3"
)

// promConfig is the part of prometheus.yml the tests read.
type promConfig struct {
	RuleFiles []string `yaml:"rule_files"`
	Alerting  struct {
		Alertmanagers []struct {
			StaticConfigs []staticConfig `yaml:"static_configs"`
		} `yaml:"alertmanagers"`
	} `yaml:"alerting"`
	ScrapeConfigs []struct {
		JobName       string         `yaml:"job_name"`
		MetricsPath   string         `yaml:"metrics_path"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type staticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels"`
}

// mustPrometheus returns the prometheus service, the host path of the
// configuration file it runs with and the mapper of its mounts.
func mustPrometheus(tb testing.TB, p *types.Project) (types.ServiceConfig, string, pathMapper) {
	tb.Helper()
	s := mustService(tb, p, "prometheus")
	file, ok := flagValue(s.Command, "config.file")
	if !ok {
		tb.Fatal("service prometheus has no --config.file")
	}
	m := newPathMapper(tb, s)
	host, ok := m.hostPath(file)
	if !ok {
		tb.Fatalf("service prometheus: --config.file=%s is not a mounted file", file)
	}
	return s, host, m
}

func mustPromConfig(tb testing.TB, file string) (promConfig, []byte) {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var c promConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		tb.Fatalf("%s: %v", file, err)
	}
	return c, data
}

// TestPrometheusConfig runs promtool check config on deploy/prometheus.yml,
// with the rule_files paths mapped to the repository's rules/ as the
// container mounts them, so the rule files Prometheus would load are
// checked too.
func TestPrometheusConfig(t *testing.T) {
	p := mustProject(t)
	s, file, m := mustPrometheus(t, p)
	if !slices.Contains(s.Command, "--enable-feature=exemplar-storage") {
		t.Errorf("prometheus runs without --enable-feature=exemplar-storage: %v", s.Command)
	}
	c, data := mustPromConfig(t, file)

	if len(c.RuleFiles) == 0 {
		t.Fatal("prometheus.yml loads no rule files")
	}
	root := repoRoot(t)
	rewritten := string(data)
	var loaded []string
	for _, rf := range c.RuleFiles {
		host, ok := m.hostPath(rf)
		if !ok {
			t.Errorf("rule_files entry %s is not inside a mount of the prometheus service", rf)
			continue
		}
		matches, err := filepath.Glob(host)
		if err != nil {
			t.Fatalf("rule_files entry %s: %v", rf, err)
		}
		loaded = append(loaded, matches...)
		rewritten = strings.ReplaceAll(rewritten, rf, host)
	}
	if len(loaded) == 0 {
		t.Errorf("rule_files %v match no file in the repository", c.RuleFiles)
	}
	for _, f := range loaded {
		rel, _ := filepath.Rel(root, f)
		if !strings.HasPrefix(rel, "rules/") || strings.HasPrefix(rel, "rules/tests/") {
			t.Errorf("rule_files load %s; only the rule files directly under rules/ belong there", rel)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install the Debian package prometheus")
	}
	tmp := filepath.Join(t.TempDir(), "prometheus.yml")
	if err := os.WriteFile(tmp, []byte(rewritten), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := run(t, promtool, "check", "config", tmp)
	if code != 0 {
		t.Errorf("promtool check config deploy/prometheus.yml (rules from rules/): exit %d\n%s", code, out)
	}
	if want := fmt.Sprintf("SUCCESS: %d rule files found", len(loaded)); !strings.Contains(out, want) {
		t.Errorf("promtool check config did not check the %d rule files of rules/ (%q):\n%s", len(loaded), want, out)
	}
}

// TestPrometheusScrapesTheStack checks that the scrape targets name the
// compose services: every exporter with a location label equal to its
// --location, the coordinator, and Alertmanager for alerts.
func TestPrometheusScrapesTheStack(t *testing.T) {
	p := mustProject(t)
	_, file, _ := mustPrometheus(t, p)
	c, _ := mustPromConfig(t, file)

	jobs := map[string][]staticConfig{}
	for _, sc := range c.ScrapeConfigs {
		if sc.MetricsPath == "" || sc.MetricsPath == "/metrics" {
			jobs[sc.JobName] = sc.StaticConfigs
		}
	}
	exporterJob, ok := jobs["vantage-exporter"]
	if !ok {
		t.Fatal(`prometheus.yml has no /metrics job "vantage-exporter"`)
	}
	// Each exporter labels its own series with its --location; a location
	// target label would rename theirs to exported_location.
	scraped := map[string]bool{}
	for _, sc := range exporterJob {
		for _, tg := range sc.Targets {
			scraped[tg] = true
			if loc, ok := sc.Labels["location"]; ok {
				t.Errorf("job vantage-exporter labels %s location=%q; the exporter exposes its --location itself", tg, loc)
			}
		}
	}
	for _, name := range servicesRunning(p, "vantage-exporter") {
		if loc, ok := flagValue(p.Services[name].Command, "location"); !ok || loc == "" {
			t.Errorf("service %s runs the exporter without --location", name)
		}
		addr := name + ":9715"
		if !scraped[addr] {
			t.Errorf("job vantage-exporter does not scrape %s (targets %v)", addr, exporterJob)
		}
		delete(scraped, addr)
	}
	for addr := range scraped {
		t.Errorf("job vantage-exporter scrapes %s, which is no exporter service", addr)
	}

	coordinators := servicesRunning(p, "vantage-coordinator")
	var coordinatorTargets []string
	for _, sc := range jobs["vantage-coordinator"] {
		coordinatorTargets = append(coordinatorTargets, sc.Targets...)
	}
	var wantTargets []string
	for _, name := range coordinators {
		wantTargets = append(wantTargets, name+":9716")
	}
	if len(coordinators) == 0 || !slices.Equal(coordinatorTargets, wantTargets) {
		t.Errorf("job vantage-coordinator scrapes %v; services running the coordinator: %v", coordinatorTargets, coordinators)
	}

	var am []string
	for _, a := range c.Alerting.Alertmanagers {
		for _, sc := range a.StaticConfigs {
			am = append(am, sc.Targets...)
		}
	}
	mustService(t, p, "alertmanager")
	if !slices.Equal(am, []string{"alertmanager:9093"}) {
		t.Errorf("alerts go to %v, want [alertmanager:9093]", am)
	}
}
