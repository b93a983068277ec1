package config

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/internal/yamldoc"
	"github.com/vantageprobe/vantage/prober/endpoint"
)

// RegistryConfig configures the monitor registry (/api/v1/monitors): the
// modules monitors may use, which the exporters must have, and its bounds.
type RegistryConfig struct {
	// Modules are the exporters' modules that monitors may use, by name,
	// with the prober kind (to validate targets) and timeout (to validate
	// intervals). Each location has every one of them unless it lists its
	// own (locations[].modules).
	Modules map[string]RegistryModule `yaml:"modules"`
	// DefaultInterval is a monitor's interval when it sets none.
	DefaultInterval time.Duration `yaml:"default_interval"`
	// MaxMonitors bounds the monitors the registry holds.
	MaxMonitors int `yaml:"max_monitors"`
}

// RegistryModule is what the coordinator knows of an exporter's module.
type RegistryModule struct {
	// Prober is the module's prober kind (http, tcp, dns, ...).
	Prober string `yaml:"prober"`
	// Timeout is the module's timeout; a monitor's interval must not be
	// shorter. 0: unknown, not checked.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// DefaultRegistry holds the registry defaults.
var DefaultRegistry = RegistryConfig{DefaultInterval: time.Minute, MaxMonitors: 10000}

// UnmarshalYAML sets the registry defaults before decoding.
func (c *RegistryConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultRegistry
	type plain RegistryConfig
	return unmarshal((*plain)(c))
}

// ModuleNames lists the registry's modules, sorted.
func (c *RegistryConfig) ModuleNames() []string {
	names := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// HasModule reports whether the location has the registry module: the
// location lists it, or lists none and the registry has it.
func (c *CoordinatorConfig) HasModule(location, module string) bool {
	if _, ok := c.Registry.Modules[module]; !ok {
		return false
	}
	for _, l := range c.Locations {
		if l.Name == location {
			return len(l.Modules) == 0 || slices.Contains(l.Modules, module)
		}
	}
	return false
}

func (c *CoordinatorConfig) validateRegistry() error {
	path := []any{"registry"}
	for _, name := range c.Registry.ModuleNames() {
		m := c.Registry.Modules[name]
		p := yamldoc.At(path, "modules", name)
		switch {
		case !slices.Contains(endpoint.Probers, m.Prober):
			return yamldoc.Fail(yamldoc.At(p, "prober"), "module %q: unknown prober %q (known: %s)", name, m.Prober, strings.Join(endpoint.Probers, ", "))
		case m.Timeout < 0:
			return yamldoc.Fail(yamldoc.At(p, "timeout"), "module %q: timeout must not be negative, got %s", name, m.Timeout)
		}
	}
	switch {
	case c.Registry.DefaultInterval < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "default_interval"), "default_interval must be at least 1s, got %s", c.Registry.DefaultInterval)
	case c.Registry.MaxMonitors < 1:
		return yamldoc.Fail(yamldoc.At(path, "max_monitors"), "max_monitors must be at least 1, got %d", c.Registry.MaxMonitors)
	}
	for i, l := range c.Locations {
		for j, m := range l.Modules {
			if _, ok := c.Registry.Modules[m]; !ok {
				return yamldoc.Fail([]any{"locations", i, "modules", j}, "location %q lists module %q, which registry.modules does not define (defined: %s)", l.Name, m, strings.Join(c.Registry.ModuleNames(), ", "))
			}
		}
	}
	return nil
}

// Scopes an API token may grant.
const (
	// ScopeRead: list and read monitors, their stats, and the http_sd
	// document.
	ScopeRead = "read"
	// ScopeWrite: create, change and delete monitors and maintenance
	// windows.
	ScopeWrite = "write"
	// ScopeReport: send the exporters' report batches.
	ScopeReport = "report"
)

// Scopes lists every scope.
var Scopes = []string{ScopeRead, ScopeWrite, ScopeReport}

// APIToken is one bearer token of the coordinator's API.
type APIToken struct {
	// Name identifies the token in logs and errors.
	Name string `yaml:"name"`
	// TokenFile holds the token; relative to the configuration file.
	// Re-read every 5s.
	TokenFile string `yaml:"token_file"`
	// Scopes are what the token may do (read, write, report).
	Scopes []string `yaml:"scopes"`
	// Owner, when set, confines the token to the monitors it owns: it
	// sees, changes and creates only those.
	Owner string `yaml:"owner,omitempty"`
}

func (c *CoordinatorConfig) validateAPITokens() error {
	names := map[string]int{}
	for i, t := range c.APITokens {
		p := []any{"api_tokens", i}
		switch {
		case !EventNameRE.MatchString(t.Name):
			return yamldoc.Fail(yamldoc.At(p, "name"), "invalid token name %q: %s", t.Name, NameRule)
		case t.TokenFile == "":
			return yamldoc.Fail(yamldoc.At(p, "token_file"), "token_file of token %q must be set", t.Name)
		case len(t.Scopes) == 0:
			return yamldoc.Fail(yamldoc.At(p, "scopes"), "token %q has no scopes (known: %s)", t.Name, strings.Join(Scopes, ", "))
		case t.Owner != "" && !EventNameRE.MatchString(t.Owner):
			return yamldoc.Fail(yamldoc.At(p, "owner"), "invalid owner %q: %s", t.Owner, NameRule)
		}
		for j, s := range t.Scopes {
			if !slices.Contains(Scopes, s) {
				return yamldoc.Fail(yamldoc.At(p, "scopes", j), "unknown scope %q (known: %s)", s, strings.Join(Scopes, ", "))
			}
		}
		if j, ok := names[t.Name]; ok {
			return yamldoc.Fail(yamldoc.At(p, "name"), "token %q is listed twice (also api_tokens[%d])", t.Name, j)
		}
		names[t.Name] = i
	}
	return nil
}

// setTokenDirectory makes the API tokens' files relative to dir.
func (c *CoordinatorConfig) setTokenDirectory(dir string) {
	for i := range c.APITokens {
		if f := c.APITokens[i].TokenFile; f != "" && !filepath.IsAbs(f) {
			c.APITokens[i].TokenFile = filepath.Join(dir, f)
		}
	}
}
