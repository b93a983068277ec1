package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const targetsModules = `
modules:
  http_2xx:
    prober: http
    timeout: 5s
  tcp_connect:
    prober: tcp
`

// mustTargetsDir writes a configuration and target files into a temporary
// directory and returns the configuration's path.
func mustTargetsDir(t *testing.T, configYAML string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "vantage.yml")
	if err := os.WriteFile(p, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func loadTargets(t *testing.T, path string) ([]ScheduledTarget, error) {
	t.Helper()
	c, err := LoadFile(path)
	if err != nil {
		return nil, err
	}
	return c.ScheduledTargets(filepath.Dir(path))
}

func TestScheduledTargets(t *testing.T) {
	path := mustTargetsDir(t, targetsModules+`
scheduler:
  interval: 20s
targets:
  - module: http_2xx
    interval: 30s
    targets: [https://a.example, https://b.example]
    labels: {team: web}
  - module: tcp_connect
    targets: [db.example:5432]
target_files: [targets/*.yml, sd/*.json]
`, map[string]string{
		"targets/extra.yml": "- module: http_2xx\n  interval: 1m\n  targets: [https://c.example]\n",
		"sd/blackbox.json": `[{"targets": ["https://d.example"],
		  "labels": {"__param_module": "http_2xx", "__scrape_interval__": "2m", "__meta_x": "dropped", "env": "prod"}}]`,
	})
	got, err := loadTargets(t, path)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		module, target     string
		interval, timeout  time.Duration
		labels, sourceLine string
	}{
		{"http_2xx", "https://a.example", 30 * time.Second, 5 * time.Second, "team=web", "vantage.yml:14"},
		{"http_2xx", "https://b.example", 30 * time.Second, 5 * time.Second, "team=web", "vantage.yml:14"},
		{"tcp_connect", "db.example:5432", 20 * time.Second, 10 * time.Second, "", "vantage.yml:17"},
		{"http_2xx", "https://c.example", time.Minute, 5 * time.Second, "", "extra.yml:3"},
		{"http_2xx", "https://d.example", 2 * time.Minute, 5 * time.Second, "env=prod", "blackbox.json:1"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d targets, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		var labels []string
		for k, v := range g.Labels {
			labels = append(labels, k+"="+v)
		}
		if g.Module != w.module || g.Target != w.target || g.Interval != w.interval || g.Timeout != w.timeout ||
			strings.Join(labels, ",") != w.labels || !strings.HasSuffix(g.Source, w.sourceLine) {
			t.Errorf("target %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestSchedulerDefaults(t *testing.T) {
	c, err := Parse([]byte(targetsModules), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheduler != DefaultSchedulerConfig {
		t.Errorf("scheduler = %+v, want the defaults %+v", c.Scheduler, DefaultSchedulerConfig)
	}
	c, err = Parse([]byte(targetsModules+"scheduler:\n  retries: 0\n"), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Scheduler.Retries != 0 || c.Scheduler.MaxInFlight != DefaultSchedulerConfig.MaxInFlight {
		t.Errorf("a partial scheduler section lost its defaults: %+v", c.Scheduler)
	}
}

func TestScheduledTargetsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		files  map[string]string
		want   string
	}{
		{
			name:   "unknown module",
			config: "targets:\n  - module: http_3xx\n    targets: [https://a.example]\n",
			want:   `vantage.yml:9: targets[0].module: unknown module "http_3xx"`,
		},
		{
			name:   "interval shorter than the module timeout",
			config: "targets:\n  - module: http_2xx\n    interval: 2s\n    targets: [https://a.example]\n",
			want:   `vantage.yml:10: targets[0].interval: interval 2s is shorter than the timeout 5s of module "http_2xx"`,
		},
		{
			name:   "no targets",
			config: "targets:\n  - module: http_2xx\n    targets: []\n",
			want:   `vantage.yml:10: targets[0].targets: targets must list at least one target`,
		},
		{
			name:   "reserved label",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {module: x}\n",
			want:   `vantage.yml:11: targets[0].labels.module: label name "module" is reserved (reserved: target, module, phase, reason, result, location, state, job, instance, le, quantile)`,
		},
		{
			name:   "label Prometheus gives every series",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {job: x}\n",
			want:   `vantage.yml:11: targets[0].labels.job: label name "job" is reserved (reserved: target, module, phase, reason, result, location, state, job, instance, le, quantile)`,
		},
		{
			name:   "instance label",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {instance: x}\n",
			want:   `vantage.yml:11: targets[0].labels.instance: label name "instance" is reserved (reserved: target, module, phase, reason, result, location, state, job, instance, le, quantile)`,
		},
		{
			name:   "histogram bucket label",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {le: x}\n",
			want:   `vantage.yml:11: targets[0].labels.le: label name "le" is reserved (reserved: target, module, phase, reason, result, location, state, job, instance, le, quantile)`,
		},
		{
			name:   "failure_threshold not a number",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {failure_threshold: many}\n",
			want:   `vantage.yml:11: targets[0].labels.failure_threshold: label failure_threshold must be a non-negative whole number of failed checks, got "many"`,
		},
		{
			name:   "invalid label name",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n    labels: {team-name: x}\n",
			want:   `vantage.yml:11: targets[0].labels.team-name: invalid label name "team-name"`,
		},
		{
			name:   "scheduler setting",
			config: "scheduler:\n  max_in_flight: 0\n",
			want:   `vantage.yml:9: scheduler.max_in_flight: max_in_flight must be at least 1, got 0`,
		},
		{
			name:   "unknown series set",
			config: "scheduler:\n  series: small\n",
			want:   `vantage.yml:9: scheduler.series: series must be "full" or "minimal", got "small"`,
		},
		{
			name:   "duplicate in one file",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\n  - module: http_2xx\n    targets: [https://a.example]\n",
			want:   `vantage.yml:12: duplicate target "https://a.example" for module "http_2xx" (first listed at `,
		},
		{
			name:   "duplicate across files",
			config: "targets:\n  - module: http_2xx\n    targets: [https://a.example]\ntarget_files: [t/*.yml]\n",
			files:  map[string]string{"t/a.yml": "- module: http_2xx\n  targets:\n    - https://b.example\n    - https://a.example\n"},
			want:   `a.yml:4: duplicate target "https://a.example" for module "http_2xx" (first listed at `,
		},
		{
			name:   "unknown module in a target file",
			config: "target_files: [t/*.yml]\n",
			files:  map[string]string{"t/a.yml": "- module: http_2xx\n  targets: [https://a.example]\n- module: ftp\n  targets: [ftp://b.example]\n"},
			want:   `a.yml:3: [1].module: unknown module "ftp"`,
		},
		{
			name:   "file_sd entry without module",
			config: "target_files: [t/*.json]\n",
			files:  map[string]string{"t/sd.json": `[{"targets": ["https://a.example"], "labels": {"env": "prod"}}]`},
			want:   `sd.json:1: [0]: module must be set (in a file_sd entry: the __param_module label)`,
		},
		{
			name:   "unparsable target file",
			config: "target_files: [t/*.yml]\n",
			files:  map[string]string{"t/a.yml": "- module: http_2xx\n  targets: [https://a.example\n"},
			want:   `a.yml:2: did not find expected ',' or ']'`,
		},
		{
			name:   "unknown key in a target file",
			config: "target_files: [t/*.yml]\n",
			files:  map[string]string{"t/a.yml": "- module: http_2xx\n  target: [https://a.example]\n"},
			want:   `a.yml:2: [0]: unknown key "target"`,
		},
		{
			name:   "bad file_sd interval",
			config: "target_files: [t/*.json]\n",
			files:  map[string]string{"t/sd.json": `[{"targets": ["x"], "labels": {"__param_module": "http_2xx", "__scrape_interval__": "soon"}}]`},
			want:   `sd.json:1: [0].labels.__scrape_interval__: invalid __scrape_interval__ "soon": not a valid duration string: "soon"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := mustTargetsDir(t, targetsModules+tc.config, tc.files)
			_, err := loadTargets(t, path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %s\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

func TestCanary(t *testing.T) {
	c, err := Parse([]byte(targetsModules+"canary:\n  module: tcp_connect\n  target: 127.0.0.1:53\n  interval: 5s\n"), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	ct := c.CanaryTarget()
	if ct == nil || ct.Module != "tcp_connect" || ct.Target != "127.0.0.1:53" || ct.Interval != 5*time.Second || ct.Timeout != 5*time.Second {
		t.Errorf("canary target = %+v", ct)
	}
	if c, _ := Parse([]byte(targetsModules), "x.yml"); c.CanaryTarget() != nil {
		t.Error("a canary without a canary section")
	}
	for cfg, want := range map[string]string{
		"canary:\n  module: tcp_connect\n":                           `x.yml:8: canary.target: target must be set for the canary`,
		"canary:\n  module: nope\n  target: a:1\n":                   `x.yml:9: canary.module: unknown module "nope"`,
		"canary:\n  module: http_2xx\n  target: a\n  interval: 1s\n": `x.yml:11: canary.interval: interval 1s is shorter than the timeout 5s of module "http_2xx"`,
	} {
		if _, err := Parse([]byte(targetsModules+cfg), "x.yml"); err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	}
}
