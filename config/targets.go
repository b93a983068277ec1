package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/yamldoc"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/model/relabel"
	yaml "go.yaml.in/yaml/v3"
)

// DefaultSchedulerConfig holds the scheduler defaults.
var DefaultSchedulerConfig = SchedulerConfig{
	MaxInFlight:         10000,
	Retries:             2,
	RetryInterval:       5 * time.Second,
	Interval:            30 * time.Second,
	FileRefreshInterval: 30 * time.Second,
	Series:              SeriesFull,
}

// The series sets of scheduler.series.
const (
	// SeriesFull renders every series /probe has, plus vantage's own.
	SeriesFull = "full"
	// SeriesMinimal leaves out the series a check cannot change (settings
	// of the module and target) and those that repeat another series.
	SeriesMinimal = "minimal"
)

// DefaultCheckTimeout bounds one attempt of a scheduled check whose module
// sets no timeout (and whose interval is longer).
const DefaultCheckTimeout = 10 * time.Second

// SchedulerConfig configures the continuous checking of targets.
type SchedulerConfig struct {
	// MaxInFlight bounds the check attempts running at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// Retries is how many extra local attempts a failing check makes before
	// the target counts as failing (0: none).
	Retries int `yaml:"retries"`
	// RetryInterval separates attempts.
	RetryInterval time.Duration `yaml:"retry_interval"`
	// Interval is the interval of target groups that set none.
	Interval time.Duration `yaml:"interval"`
	// FileRefreshInterval is how often target_files are checked for changes.
	FileRefreshInterval time.Duration `yaml:"file_refresh_interval"`
	// Series is the set of series each scheduled target has on /metrics:
	// SeriesFull or SeriesMinimal.
	Series string `yaml:"series"`
}

// UnmarshalYAML sets the scheduler defaults before decoding.
func (s *SchedulerConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*s = DefaultSchedulerConfig
	type plain SchedulerConfig
	return unmarshal((*plain)(s))
}

// CanaryConfig is the exporter's connectivity canary: a target that should
// always be up from this location. While its check fails, the location
// itself is taken to be broken and its failures are reported as unknown.
type CanaryConfig struct {
	Module   string        `yaml:"module"`
	Target   string        `yaml:"target"`
	Interval time.Duration `yaml:"interval,omitempty"`
}

// resolveCanary validates the canary section and resolves it into c.canary.
func (c *Config) resolveCanary(path []any, locateFn func([]any) string) error {
	c.canary = nil
	if c.Canary == nil {
		return nil
	}
	if strings.TrimSpace(c.Canary.Target) == "" {
		return yamldoc.Fail(yamldoc.At(path, "target"), "target must be set for the canary")
	}
	g := TargetGroup{Module: c.Canary.Module, Interval: c.Canary.Interval, Targets: []string{c.Canary.Target}}
	ts, err := c.resolveGroup(g, path, locateFn)
	if err != nil {
		return err
	}
	c.canary = &ts[0]
	return nil
}

// CanaryTarget returns the canary as a scheduled target, or nil.
func (c *Config) CanaryTarget() *ScheduledTarget { return c.canary }

// TargetGroup is a list of targets checked with one module on one
// interval: listed in Targets, or discovered with Prometheus's service
// discovery and relabeling (see discovery.go).
type TargetGroup struct {
	// Name names a group with discovery in logs and metrics; by default
	// "targets[i]" after its place in the file.
	Name     string            `yaml:"name,omitempty"`
	Module   string            `yaml:"module,omitempty"`
	Interval time.Duration     `yaml:"interval,omitempty"`
	Targets  []string          `yaml:"targets,omitempty"`
	Labels   map[string]string `yaml:"labels,omitempty"`
	// ServiceDiscoveryConfigs are the discovery blocks, written inline as
	// in a Prometheus scrape_config (static_configs, file_sd_configs, …).
	ServiceDiscoveryConfigs discovery.Configs `yaml:"-"`
	// RelabelConfigs rewrite the discovered targets' labels.
	RelabelConfigs []*relabel.Config `yaml:"relabel_configs,omitempty"`
}

// UnmarshalYAML decodes a group with its inline discovery blocks.
func (g *TargetGroup) UnmarshalYAML(unmarshal func(any) error) error {
	return discovery.UnmarshalYAMLWithInlineConfigs(g, unmarshal)
}

// MarshalYAML renders a group with its inline discovery blocks.
func (g TargetGroup) MarshalYAML() (any, error) {
	return discovery.MarshalYAMLWithInlineConfigs(&g)
}

// ScheduledTarget is one target to check continuously, resolved from the
// configuration file or a target file.
type ScheduledTarget struct {
	Module   string
	Target   string
	Interval time.Duration
	// Timeout bounds one attempt: the module's timeout, or the shorter of
	// the interval and DefaultCheckTimeout.
	Timeout time.Duration
	// Labels are added to the target's series.
	Labels map[string]string
	// Hostname is the probe's hostname parameter, from a discovered
	// target's __param_hostname label; empty otherwise.
	Hostname string
	// Source is where the target was configured ("file:line").
	Source string
}

// FailureThresholdLabel is the target label that sets how many failed
// checks in five minutes the failure-ratio alert tolerates; the exporter
// exposes its value as vantage_probe_failure_threshold.
const FailureThresholdLabel = "failure_threshold"

// ParseFailureThreshold reads a failure_threshold label value: a
// non-negative whole number.
func ParseFailureThreshold(v string) (float64, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("label %s must be a non-negative whole number of failed checks, got %q", FailureThresholdLabel, v)
	}
	return float64(n), nil
}

func (s *SchedulerConfig) validate(path []any) error {
	switch {
	case s.MaxInFlight < 1:
		return yamldoc.Fail(yamldoc.At(path, "max_in_flight"), "max_in_flight must be at least 1, got %d", s.MaxInFlight)
	case s.Retries < 0:
		return yamldoc.Fail(yamldoc.At(path, "retries"), "retries must not be negative, got %d", s.Retries)
	case s.RetryInterval < 0:
		return yamldoc.Fail(yamldoc.At(path, "retry_interval"), "retry_interval must not be negative, got %s", s.RetryInterval)
	case s.Interval < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "interval"), "interval must be at least 1s, got %s", s.Interval)
	case s.FileRefreshInterval < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "file_refresh_interval"), "file_refresh_interval must be at least 1s, got %s", s.FileRefreshInterval)
	case s.Series != SeriesFull && s.Series != SeriesMinimal:
		return yamldoc.Fail(yamldoc.At(path, "series"), "series must be %q or %q, got %q", SeriesFull, SeriesMinimal, s.Series)
	}
	return nil
}

// resolveGroup validates one group against the configuration and expands
// it into scheduled targets; path locates the group in its document.
func (c *Config) resolveGroup(g TargetGroup, path []any, locateFn func([]any) string) ([]ScheduledTarget, error) {
	if g.Module == "" {
		return nil, yamldoc.Fail(path, "module must be set (in a file_sd entry: the __param_module label)")
	}
	interval, timeout, err := c.schedule(g.Module, g.Interval, path)
	if err != nil {
		return nil, err
	}
	if err := checkLabels(g.Labels, yamldoc.At(path, "labels")); err != nil {
		return nil, err
	}
	if len(g.Targets) == 0 {
		return nil, yamldoc.Fail(yamldoc.At(path, "targets"), "targets must list at least one target")
	}
	out := make([]ScheduledTarget, 0, len(g.Targets))
	for i, t := range g.Targets {
		if strings.TrimSpace(t) == "" {
			return nil, yamldoc.Fail(yamldoc.At(path, "targets", i), "target must not be empty")
		}
		out = append(out, ScheduledTarget{
			Module: g.Module, Target: t, Interval: interval, Timeout: timeout,
			Labels: g.Labels, Source: locateFn(yamldoc.At(path, "targets", i)),
		})
	}
	return out, nil
}

// schedule validates a target's module and interval, and returns its
// interval (the scheduler's when unset) and the timeout of one attempt;
// path locates the module and interval.
func (c *Config) schedule(module string, interval time.Duration, path []any) (time.Duration, time.Duration, error) {
	mod, ok := c.Modules[module]
	if !ok {
		return 0, 0, yamldoc.Fail(yamldoc.At(path, "module"), "unknown module %q", module)
	}
	if interval == 0 {
		interval = c.Scheduler.Interval
	}
	if interval < time.Second {
		return 0, 0, yamldoc.Fail(yamldoc.At(path, "interval"), "interval must be at least 1s, got %s", interval)
	}
	if mod.Timeout > 0 && interval < mod.Timeout {
		return 0, 0, yamldoc.Fail(yamldoc.At(path, "interval"), "interval %s is shorter than the timeout %s of module %q", interval, mod.Timeout, module)
	}
	timeout := mod.Timeout
	if timeout == 0 {
		timeout = min(interval, DefaultCheckTimeout)
	}
	return interval, timeout, nil
}

// checkLabels validates the labels of a target; path locates them.
func checkLabels(labels map[string]string, path []any) error {
	for _, name := range slices.Sorted(maps.Keys(labels)) {
		if err := api.CheckLabelName(name); err != nil {
			return yamldoc.Fail(yamldoc.At(path, name), "%s", err)
		}
		if name == FailureThresholdLabel {
			if _, err := ParseFailureThreshold(labels[name]); err != nil {
				return yamldoc.Fail(yamldoc.At(path, name), "%s", err)
			}
		}
	}
	return nil
}

// ScheduledTargets returns every target to check continuously: the groups
// under targets plus those in target_files (globs relative to baseDir, the
// configuration file's directory). A target listed twice with one module is
// an error naming both places.
func (c *Config) ScheduledTargets(baseDir string) ([]ScheduledTarget, error) {
	// The inline groups were resolved, with their locations, when the
	// file was parsed.
	all := slices.Clone(c.inline)
	files, err := c.TargetFilePaths(baseDir)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading target file: %w", err)
		}
		ts, err := c.parseTargetFile(data, f)
		if err != nil {
			return nil, err
		}
		all = append(all, ts...)
	}
	seen := make(map[[2]string]string, len(all))
	for _, t := range all {
		key := [2]string{t.Module, t.Target}
		if first, ok := seen[key]; ok {
			return nil, fmt.Errorf("%s: duplicate target %q for module %q (first listed at %s)", t.Source, t.Target, t.Module, first)
		}
		seen[key] = t.Source
	}
	return all, nil
}

// TargetFilePaths expands target_files into the files they name now, in
// order; relative patterns are relative to baseDir.
func (c *Config) TargetFilePaths(baseDir string) ([]string, error) {
	var out []string
	for i, pattern := range c.TargetFiles {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(baseDir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("target_files[%d]: invalid pattern %q: %w", i, c.TargetFiles[i], err)
		}
		slices.Sort(matches)
		out = append(out, matches...)
	}
	return out, nil
}

// fileGroup is one entry of a target file: a vantage group, or a Prometheus
// file_sd entry whose module and interval come from the __param_module and
// __scrape_interval__ labels.
type fileGroup struct {
	Module   string            `yaml:"module"`
	Interval time.Duration     `yaml:"interval"`
	Targets  []string          `yaml:"targets"`
	Labels   map[string]string `yaml:"labels"`
}

// parseTargetFile decodes a target file (YAML or JSON: a list of groups) and
// resolves its groups, with errors located in that file.
func (c *Config) parseTargetFile(data []byte, source string) ([]ScheduledTarget, error) {
	var groups []fileGroup
	var out []ScheduledTarget
	_, err := yamldoc.Decode(data, source, &groups, func(root *yaml.Node) error {
		locateFn := func(p []any) string { return fmt.Sprintf("%s:%d", source, yamldoc.Locate(root, p)) }
		for i, fg := range groups {
			g, err := fg.toGroup([]any{i})
			if err != nil {
				return err
			}
			ts, err := c.resolveGroup(g, []any{i}, locateFn)
			if err != nil {
				return err
			}
			out = append(out, ts...)
		}
		return nil
	})
	return out, err
}

func (fg fileGroup) toGroup(path []any) (TargetGroup, error) {
	g := TargetGroup{Module: fg.Module, Interval: fg.Interval, Targets: fg.Targets}
	for name, value := range fg.Labels {
		switch {
		case name == "__param_module":
			if g.Module != "" && g.Module != value {
				return g, yamldoc.Fail(yamldoc.At(path, "labels", name), "__param_module %q contradicts module %q", value, g.Module)
			}
			g.Module = value
		case name == "__scrape_interval__":
			d, err := model.ParseDuration(value)
			if err != nil {
				return g, yamldoc.Fail(yamldoc.At(path, "labels", name), "invalid __scrape_interval__ %q: %w", value, err)
			}
			if g.Interval == 0 {
				g.Interval = time.Duration(d)
			}
		case strings.HasPrefix(name, "__"):
			// Other reserved labels configure Prometheus, not checks.
		default:
			if g.Labels == nil {
				g.Labels = map[string]string{}
			}
			g.Labels[name] = value
		}
	}
	return g, nil
}
