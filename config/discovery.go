package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/vantageprobe/vantage/internal/yamldoc"

	// The discovery mechanisms a targets group may use, registered with
	// Prometheus's discovery package for decoding and running.
	_ "github.com/prometheus/prometheus/discovery/consul"
	_ "github.com/prometheus/prometheus/discovery/dns"
	_ "github.com/prometheus/prometheus/discovery/file"
	_ "github.com/prometheus/prometheus/discovery/http"
	_ "github.com/prometheus/prometheus/discovery/kubernetes"
)

// Labels a discovered target may carry that configure its check rather
// than label its series.
const (
	ParamTargetLabel    = "__param_target"
	ParamModuleLabel    = "__param_module"
	ParamHostnameLabel  = "__param_hostname"
	ScrapeIntervalLabel = "__scrape_interval__"
)

// scrapeIdentityLabels name the scrape in Prometheus; a discovered target
// carries them from relabeling written for Prometheus (blackbox_exporter's
// instance rewrite), but here the target label identifies the check and
// Prometheus sets job and instance when it scrapes the exporter.
var scrapeIdentityLabels = []string{model.JobLabel, model.InstanceLabel}

// discoveryGroup is a targets group with discovery, resolved during
// validation.
type discoveryGroup struct {
	group TargetGroup
	// path and source locate the group: targets[i], and "file:line".
	path   []any
	source string
}

// validateGroups checks the targets groups and resolves the listed
// targets; groups with discovery are kept, by name, for
// ResolveDiscovered.
func (c *Config) validateGroups(locateFn func([]any) string) error {
	c.inline = nil
	c.discovery = map[string]*discoveryGroup{}
	c.discoveryNames = nil
	for i, g := range c.Targets {
		path := []any{"targets", i}
		if len(g.ServiceDiscoveryConfigs) == 0 {
			if len(g.RelabelConfigs) > 0 {
				return yamldoc.Fail(yamldoc.At(path, "relabel_configs"), "relabel_configs applies to discovered targets: the group needs a discovery block (%s)", strings.Join(DiscoveryKeys(), ", "))
			}
			ts, err := c.resolveGroup(g, path, locateFn)
			if err != nil {
				return err
			}
			c.inline = append(c.inline, ts...)
			continue
		}
		name := g.Name
		if name == "" {
			name = "targets[" + strconv.Itoa(i) + "]"
		}
		if _, dup := c.discovery[name]; dup {
			return yamldoc.Fail(yamldoc.At(path, "name"), "group name %q is used twice", name)
		}
		if err := c.checkDiscoveryGroup(g, path); err != nil {
			return err
		}
		if len(g.Targets) > 0 {
			ts, err := c.resolveGroup(g, path, locateFn)
			if err != nil {
				return err
			}
			c.inline = append(c.inline, ts...)
		}
		c.discovery[name] = &discoveryGroup{group: g, path: path, source: locateFn(path)}
		c.discoveryNames = append(c.discoveryNames, name)
	}
	return nil
}

// checkDiscoveryGroup validates what a group with discovery gives every
// target it discovers: module and interval when set, labels, relabeling.
func (c *Config) checkDiscoveryGroup(g TargetGroup, path []any) error {
	if g.Module != "" {
		if _, _, err := c.schedule(g.Module, g.Interval, path); err != nil {
			return err
		}
	} else if g.Interval != 0 && g.Interval < time.Second {
		return yamldoc.Fail(yamldoc.At(path, "interval"), "interval must be at least 1s, got %s", g.Interval)
	}
	if err := checkLabels(g.Labels, yamldoc.At(path, "labels")); err != nil {
		return err
	}
	for j, rc := range g.RelabelConfigs {
		if rc == nil {
			return yamldoc.Fail(yamldoc.At(path, "relabel_configs", j), "empty relabel config")
		}
		if err := rc.Validate(model.LegacyValidation); err != nil {
			return yamldoc.Fail(yamldoc.At(path, "relabel_configs", j), "%s", err)
		}
	}
	return nil
}

// DiscoveryKeys lists the discovery blocks a targets group may carry.
func DiscoveryKeys() []string {
	keys := []string{"static_configs"}
	for _, name := range discovery.RegisteredConfigNames() {
		if name != "static" {
			keys = append(keys, name+"_sd_configs")
		}
	}
	return keys
}

// DiscoveryConfigs returns the discovery blocks of every group with
// discovery, by group name.
func (c *Config) DiscoveryConfigs() map[string]discovery.Configs {
	out := make(map[string]discovery.Configs, len(c.discovery))
	for name, dg := range c.discovery {
		out[name] = dg.group.ServiceDiscoveryConfigs
	}
	return out
}

// DiscoveryGroupNames lists the groups with discovery in file order.
func (c *Config) DiscoveryGroupNames() []string { return slices.Clone(c.discoveryNames) }

// setDirectory makes the relative file paths of the discovery blocks
// (file_sd_configs files, credentials files) relative to dir.
func (c *Config) setDirectory(dir string) {
	for i := range c.Targets {
		c.Targets[i].ServiceDiscoveryConfigs.SetDirectory(dir)
	}
}

// ResolveDiscovered turns the target groups discovered for the named group
// into scheduled targets. Each discovered target gets the group's labels
// beneath its own, then the group's relabel_configs; a target they drop is
// not checked. Then the target is __param_target, or __address__; the
// module __param_module, or the group's; the interval __scrape_interval__,
// or the group's. Labels starting with __, and job and instance, are left
// out; the others label the target's series and are validated as a
// configured group's labels are. An invalid target fails the whole set,
// with an error naming the group, where it is configured, and the target.
// A target is identified by module and target: discovered twice, it is
// checked once, with the settings of the first (in the order of the
// target groups' sources).
func (c *Config) ResolveDiscovered(name string, tgs []*targetgroup.Group) ([]ScheduledTarget, error) {
	dg, ok := c.discovery[name]
	if !ok {
		return nil, fmt.Errorf("no targets group named %q has discovery", name)
	}
	var out []ScheduledTarget
	seen := map[[2]string]bool{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	tgs = slices.Clone(tgs)
	slices.SortStableFunc(tgs, func(a, b *targetgroup.Group) int {
		if a == nil || b == nil {
			return 0
		}
		return strings.Compare(a.Source, b.Source)
	})
	for _, tg := range tgs {
		if tg == nil {
			continue
		}
		for _, tl := range tg.Targets {
			lb.Reset(labels.EmptyLabels())
			for n, v := range dg.group.Labels {
				lb.Set(n, v)
			}
			for n, v := range tg.Labels {
				lb.Set(string(n), string(v))
			}
			for n, v := range tl {
				lb.Set(string(n), string(v))
			}
			discovered := lb.Get(model.AddressLabel)
			if !relabel.ProcessBuilder(lb, dg.group.RelabelConfigs...) {
				continue
			}
			t, err := c.discoveredTarget(dg, lb.Labels())
			if err != nil {
				return nil, fmt.Errorf("%s: %s: target %q discovered by %s: %w", dg.source, name, discovered, tg.Source, err)
			}
			t.Source = fmt.Sprintf("%s (%s, discovered by %s)", dg.source, name, tg.Source)
			key := [2]string{t.Module, t.Target}
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, t)
		}
	}
	return out, nil
}

// discoveredTarget is the scheduled target a relabeled label set
// describes.
func (c *Config) discoveredTarget(dg *discoveryGroup, ls labels.Labels) (ScheduledTarget, error) {
	t := ScheduledTarget{
		Target: ls.Get(ParamTargetLabel), Module: ls.Get(ParamModuleLabel),
		Hostname: ls.Get(ParamHostnameLabel), Interval: dg.group.Interval,
	}
	if t.Target == "" {
		t.Target = ls.Get(model.AddressLabel)
	}
	if strings.TrimSpace(t.Target) == "" {
		return t, fmt.Errorf("neither %s nor %s is set after relabeling", ParamTargetLabel, model.AddressLabel)
	}
	if t.Module == "" {
		t.Module = dg.group.Module
	}
	if t.Module == "" {
		return t, fmt.Errorf("no module: set the group's module or the %s label", ParamModuleLabel)
	}
	if v := ls.Get(ScrapeIntervalLabel); v != "" {
		d, err := model.ParseDuration(v)
		if err != nil {
			return t, fmt.Errorf("invalid %s %q: %w", ScrapeIntervalLabel, v, err)
		}
		t.Interval = time.Duration(d)
	}
	ls.Range(func(l labels.Label) {
		if strings.HasPrefix(l.Name, "__") || slices.Contains(scrapeIdentityLabels, l.Name) {
			return
		}
		if t.Labels == nil {
			t.Labels = map[string]string{}
		}
		t.Labels[l.Name] = l.Value
	})
	var err error
	if t.Interval, t.Timeout, err = c.schedule(t.Module, t.Interval, nil); err != nil {
		return t, fieldMessage(err)
	}
	if err := checkLabels(t.Labels, nil); err != nil {
		return t, fieldMessage(err)
	}
	return t, nil
}

// fieldMessage strips the document path from a field error, for a value
// that comes from discovery rather than from the document.
func fieldMessage(err error) error {
	if fe, ok := err.(*yamldoc.FieldError); ok {
		return fe.Err
	}
	return err
}
