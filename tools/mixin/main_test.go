package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/internal/promtest"
	"go.yaml.in/yaml/v3"
)

const root = "../.."

// TestRenderedFilesAreCurrent fails while the checked-in rules and
// dashboards differ from what the mixin renders: edit mixin/ and run
// `make mixin`.
func TestRenderedFilesAreCurrent(t *testing.T) {
	files, err := render(root)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v; run `make mixin`", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: it differs from what mixin/ renders; run `make mixin`", name)
		}
	}
	// Every dashboard and rule file checked in is rendered: none is left
	// over from a dashboard the mixin no longer has.
	for _, pattern := range []string{"dashboards/*.json", "rules/*.rules.yml"} {
		matches, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			rel, _ := filepath.Rel(root, m)
			if _, ok := files[rel]; !ok {
				t.Errorf("%s is not rendered by the mixin: add it to mixin/ or delete it", rel)
			}
		}
	}
}

// TestRenderDetectsAChange guards the staleness test itself: a changed
// setting changes the rendered files.
func TestRenderDetectsAChange(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "mixin"), os.DirFS(filepath.Join(root, "mixin"))); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "mixin", "config.libsonnet")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), `exporterSelector: 'job="vantage-exporter"'`, `exporterSelector: 'job="probes"'`, 1)
	if changed == string(b) {
		t.Fatal("config.libsonnet has no default exporterSelector to change")
	}
	if err := os.WriteFile(cfg, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := render(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(files["rules/alerts.rules.yml"], []byte(`probe_success{job="probes"}`)) {
		t.Errorf("alerts do not use the changed selector:\n%s", files["rules/alerts.rules.yml"])
	}
	if bytes.Contains(files["rules/alerts.rules.yml"], []byte(`job="vantage-exporter"`)) {
		t.Error("alerts still name the default exporter job")
	}
}

// TestRuleYAMLKeepsExpressionsReadable checks the rendering of rule files:
// keys in Prometheus' order, multi-line expressions as literal blocks.
func TestRuleYAMLKeepsExpressionsReadable(t *testing.T) {
	got, err := ruleYAML([]byte(`{"groups":[{"rules":[{"labels":{"severity":"info"},"expr":"a\nor\nb\n","alert":"X"}],"name":"g"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := header + `groups:
  - name: g
    rules:
      - alert: X
        expr: |
          a
          or
          b
        labels:
          severity: info
`
	if string(got) != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// scrapeJobs returns the job names of the scrape configurations in a YAML
// document, with the ports of their static targets.
func scrapeJobs(t *testing.T, doc []byte) map[string][]string {
	t.Helper()
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(doc, &cfg); err != nil {
		t.Fatal(err)
	}
	jobs := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue // /probe jobs are not the programs' own series
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if i := strings.LastIndex(tg, ":"); i >= 0 {
					jobs[sc.JobName] = append(jobs[sc.JobName], tg[i+1:])
				}
			}
		}
	}
	return jobs
}

// TestSelectorsMatchTheScrapeConfigs checks that the mixin's default
// selectors name the jobs that scrape the exporters (port 9715) and the
// coordinators (port 9716) in README.md's example and in
// deploy/prometheus.yml, and the scrape configurations add no location
// label the exporter already exposes.
func TestSelectorsMatchTheScrapeConfigs(t *testing.T) {
	m, err := load(filepath.Join(root, "mixin"))
	if err != nil {
		t.Fatal(err)
	}
	prom, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for source, doc := range map[string][]byte{"README.md": promtest.ReadmeScrapeConfig(t, root), "deploy/prometheus.yml": prom} {
		jobs := scrapeJobs(t, doc)
		for sel, port := range map[string]string{"exporterSelector": "9715", "coordinatorSelector": "9716"} {
			var names []string
			for name, ports := range jobs {
				if slices.Contains(ports, port) {
					names = append(names, name)
				}
			}
			if len(names) != 1 {
				t.Errorf("%s: jobs %v scrape port %s, want exactly one", source, names, port)
				continue
			}
			if want := `job="` + names[0] + `"`; m.Config[sel] != want {
				t.Errorf("%s scrapes port %s as job %q, but the mixin's %s is %v", source, port, names[0], sel, m.Config[sel])
			}
		}
		if bytes.Contains(doc, []byte("location:")) {
			t.Errorf("%s sets a location label; the exporters expose their --location on every series", source)
		}
	}
}
