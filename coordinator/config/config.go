// Package config is vantage-coordinator's configuration file: the
// locations, the confirmation settings and the HTTP client for the
// exporters. It is apart from the exporter's schema (package
// github.com/vantageprobe/vantage/config), so the coordinator links none of
// the probe modules' libraries.
package config

import (
	_ "embed"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/vantageprobe/vantage/internal/yamldoc"

	promconfig "github.com/prometheus/common/config"
	yaml "go.yaml.in/yaml/v3"
)

// DefaultConfirmation holds the confirmation defaults.
var DefaultConfirmation = ConfirmationConfig{
	MinFailingLocations: 2,
	VerifyTimeout:       10 * time.Second,
	RecoverySuccesses:   2,
	ReverifyInterval:    30 * time.Second,
	ReportFreshness:     2 * time.Minute,
	ContestedHold:       30 * time.Second,
	RecoveryHold:        time.Minute,
	Flapping:            FlappingConfig{Window: 10 * time.Minute, Changes: 4, HoldDown: 5 * time.Minute},
	SuspectLocations:    SuspectConfig{Window: time.Minute, MinTargets: 10, Share: 0.05},
}

// DefaultSource names the embedded default configuration in messages.
const DefaultSource = "<embedded default config>"

// DefaultHealthCheckInterval is how often the coordinator checks that
// each location's exporter answers, by default.
const DefaultHealthCheckInterval = 15 * time.Second

// CoordinatorConfig is vantage-coordinator's configuration file.
type CoordinatorConfig struct {
	// Locations are the exporters, one per place on the network.
	Locations    []Location         `yaml:"locations"`
	Confirmation ConfirmationConfig `yaml:"confirmation"`
	// HealthCheckInterval is how often each location's status (GET
	// /api/v1/status) is requested, for vantage_location_healthy.
	HealthCheckInterval time.Duration `yaml:"health_check_interval"`
	// HTTPClient configures the requests to the exporters (check API,
	// /probe, health checks): bearer token, basic auth, TLS client
	// certificates, proxy.
	HTTPClient CoordinatorHTTPClient `yaml:"http_client"`
	// Events configures pushed events (heartbeats).
	Events EventsConfig `yaml:"events"`
	// Maintenance lists recurring maintenance windows (see
	// maintenance.go); windows made through the API live in the store.
	Maintenance []RecurringMaintenance `yaml:"maintenance"`
	// StatusPage configures the public status page.
	StatusPage StatusPageConfig `yaml:"status_page"`
	// Registry configures the monitor registry (see registry.go).
	Registry RegistryConfig `yaml:"registry"`
	// APITokens are the bearer tokens of the coordinator's API, with
	// their scopes and owners.
	APITokens []APIToken `yaml:"api_tokens"`
}

// CoordinatorHTTPClient is prometheus/common's HTTP client configuration,
// inlined so that validation errors carry their line.
type CoordinatorHTTPClient struct {
	HTTPClientConfig promconfig.HTTPClientConfig `yaml:",inline"`
}

//go:embed default.yml
var defaultCoordinatorYAML []byte

// DefaultCoordinator returns the embedded default coordinator
// configuration: one location, the exporter on this host.
func DefaultCoordinator() *CoordinatorConfig {
	c, err := ParseCoordinator(defaultCoordinatorYAML, DefaultSource)
	if err != nil {
		panic("embedded default coordinator config is invalid: " + err.Error())
	}
	return c
}

// Location is one exporter the coordinator asks for checks.
type Location struct {
	// Name is how the location is known in series and incidents; reports
	// carry it (the exporter's --location).
	Name string `yaml:"name"`
	// URL is the exporter's base URL; when its host name resolves to
	// several addresses, each is a member of the location's cluster.
	URL string `yaml:"url,omitempty"`
	// URLs are the base URLs of the members of the location's cluster
	// (exporters sharing its targets), instead of url.
	URLs []string `yaml:"urls,omitempty"`
	// Modules are the registry modules (registry.modules) the location's
	// exporters have; empty: all of them.
	Modules []string `yaml:"modules,omitempty"`
}

// MemberURLs are the configured base URLs of the location's exporters:
// urls, or url alone.
func (l *Location) MemberURLs() []string {
	if len(l.URLs) > 0 {
		return l.URLs
	}
	return []string{l.URL}
}

// ConfirmationConfig says when failures are confirmed and outages resolved.
type ConfirmationConfig struct {
	// MinFailingLocations is how many locations (the reporter included)
	// must see a target fail for it to be confirmed down.
	MinFailingLocations int `yaml:"min_failing_locations"`
	// VerifyTimeout bounds a verification round: locations that have not
	// answered by then count as unknown.
	VerifyTimeout time.Duration `yaml:"verify_timeout"`
	// RecoverySuccesses is how many successful checks (from at least two
	// locations when more exist) resolve an outage.
	RecoverySuccesses int `yaml:"recovery_successes"`
	// ReverifyInterval is how often a confirmed-down target is checked
	// again from every location.
	ReverifyInterval time.Duration `yaml:"reverify_interval"`
	// ReportFreshness bounds the age of live evidence: a report or
	// snapshot about a check planned longer ago than this (delivered late
	// by a starved or cut-off exporter) is recorded in the failure
	// intervals as history, but opens no round and answers none.
	ReportFreshness time.Duration `yaml:"report_freshness"`
	// ContestedHold is how long a confirmation waits while a location
	// that can tell sees the target succeed: long enough to find out
	// whether one of the failing locations is itself degraded. 0 confirms
	// at once.
	ContestedHold time.Duration `yaml:"contested_hold"`
	// RecoveryHold is how long no location may see the target fail before
	// a confirmed outage resolves (besides recovery_successes).
	RecoveryHold time.Duration `yaml:"recovery_hold"`
	// Flapping says when a target is flapping and how long it must be
	// stable before its incident resolves.
	Flapping FlappingConfig `yaml:"flapping"`
	// SuspectLocations says when a location failing targets that the
	// others see succeed is suspect: its failures then count for nothing.
	SuspectLocations SuspectConfig `yaml:"suspect_locations"`
}

// FlappingConfig detects targets that fail and succeed in turn.
type FlappingConfig struct {
	// Window is the span over which changes are counted.
	Window time.Duration `yaml:"window"`
	// Changes is how many changes between failing and succeeding within
	// window make a target flapping.
	Changes int `yaml:"changes"`
	// HoldDown is how long a flapping target must see no failure before
	// its incident resolves; it stays flapping until then.
	HoldDown time.Duration `yaml:"hold_down"`
}

// SuspectConfig detects a location whose failures the others contradict
// far more than usual.
type SuspectConfig struct {
	// Window is the span over which contradicted failures are counted.
	Window time.Duration `yaml:"window"`
	// MinTargets is how many of a location's targets must have failed
	// there alone within window before it can be suspect.
	MinTargets int `yaml:"min_targets"`
	// Share is how far the share of a location's targets that failed there
	// alone within window must rise above both its usual share and the
	// other locations' (median) share for it to be suspect.
	Share float64 `yaml:"share"`
}

// UnmarshalYAML sets the confirmation defaults before decoding.
func (c *ConfirmationConfig) UnmarshalYAML(unmarshal func(any) error) error {
	*c = DefaultConfirmation
	type plain ConfirmationConfig
	return unmarshal((*plain)(c))
}

var locationNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// LoadCoordinatorFile reads, decodes and validates a coordinator
// configuration file.
func LoadCoordinatorFile(path string) (*CoordinatorConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	c, err := ParseCoordinator(data, path)
	if err != nil {
		return nil, err
	}
	// Files the http_client section names are relative to the
	// configuration file.
	c.HTTPClient.HTTPClientConfig.SetDirectory(filepath.Dir(path))
	c.Events.setDirectory(filepath.Dir(path))
	c.setTokenDirectory(filepath.Dir(path))
	return c, nil
}

// ParseCoordinator decodes and validates a coordinator configuration
// document; errors read "source:line: path: problem".
func ParseCoordinator(data []byte, source string) (*CoordinatorConfig, error) {
	c := &CoordinatorConfig{Confirmation: DefaultConfirmation, HealthCheckInterval: DefaultHealthCheckInterval,
		HTTPClient: CoordinatorHTTPClient{promconfig.DefaultHTTPClientConfig}, Events: DefaultEvents, Registry: DefaultRegistry}
	if _, err := yamldoc.Decode(data, source, c, func(*yaml.Node) error { return c.validate() }); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *CoordinatorConfig) validate() error {
	if len(c.Locations) == 0 {
		return yamldoc.Fail([]any{"locations"}, "at least one location must be listed")
	}
	names := map[string]int{}
	urls := map[string]int{}
	for i, l := range c.Locations {
		path := []any{"locations", i}
		switch {
		case l.Name == "":
			return yamldoc.Fail(yamldoc.At(path, "name"), "name must be set")
		case !locationNameRE.MatchString(l.Name):
			return yamldoc.Fail(yamldoc.At(path, "name"), "invalid location name %q: use letters, digits, '_', '.' and '-'", l.Name)
		}
		if j, ok := names[l.Name]; ok {
			return yamldoc.Fail(yamldoc.At(path, "name"), "location %q is listed twice (also locations[%d])", l.Name, j)
		}
		names[l.Name] = i
		if err := l.validateURLs(path, i, urls, c.Locations); err != nil {
			return err
		}
	}
	cf := c.Confirmation
	path := []any{"confirmation"}
	switch {
	case cf.MinFailingLocations < 1:
		return yamldoc.Fail(yamldoc.At(path, "min_failing_locations"), "min_failing_locations must be at least 1, got %d", cf.MinFailingLocations)
	case cf.MinFailingLocations > len(c.Locations):
		return yamldoc.Fail(yamldoc.At(path, "min_failing_locations"), "min_failing_locations %d is more than the %d locations listed: no outage could ever be confirmed", cf.MinFailingLocations, len(c.Locations))
	case cf.VerifyTimeout <= 0:
		return yamldoc.Fail(yamldoc.At(path, "verify_timeout"), "verify_timeout must be positive, got %s", cf.VerifyTimeout)
	case cf.RecoverySuccesses < 1:
		return yamldoc.Fail(yamldoc.At(path, "recovery_successes"), "recovery_successes must be at least 1, got %d", cf.RecoverySuccesses)
	case cf.ReverifyInterval < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "reverify_interval"), "reverify_interval must be at least 1s, got %s", cf.ReverifyInterval)
	case cf.ReportFreshness < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "report_freshness"), "report_freshness must be at least 1s, got %s", cf.ReportFreshness)
	case cf.ContestedHold < 0:
		return yamldoc.Fail(yamldoc.At(path, "contested_hold"), "contested_hold must not be negative, got %s", cf.ContestedHold)
	case cf.RecoveryHold < 0:
		return yamldoc.Fail(yamldoc.At(path, "recovery_hold"), "recovery_hold must not be negative, got %s", cf.RecoveryHold)
	case cf.Flapping.Window < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "flapping", "window"), "window must be at least 1s, got %s", cf.Flapping.Window)
	case cf.Flapping.Changes < 2:
		return yamldoc.Fail(yamldoc.At(path, "flapping", "changes"), "changes must be at least 2 (one outage is two changes), got %d", cf.Flapping.Changes)
	case cf.Flapping.HoldDown < 0:
		return yamldoc.Fail(yamldoc.At(path, "flapping", "hold_down"), "hold_down must not be negative, got %s", cf.Flapping.HoldDown)
	case cf.SuspectLocations.Window < time.Second:
		return yamldoc.Fail(yamldoc.At(path, "suspect_locations", "window"), "window must be at least 1s, got %s", cf.SuspectLocations.Window)
	case cf.SuspectLocations.MinTargets < 1:
		return yamldoc.Fail(yamldoc.At(path, "suspect_locations", "min_targets"), "min_targets must be at least 1, got %d", cf.SuspectLocations.MinTargets)
	case cf.SuspectLocations.Share <= 0 || cf.SuspectLocations.Share > 1:
		return yamldoc.Fail(yamldoc.At(path, "suspect_locations", "share"), "share must be in (0, 1], got %g", cf.SuspectLocations.Share)
	case c.HealthCheckInterval < time.Second:
		return yamldoc.Fail([]any{"health_check_interval"}, "health_check_interval must be at least 1s, got %s", c.HealthCheckInterval)
	}
	if err := c.Events.validate(); err != nil {
		return err
	}
	if err := c.validateRegistry(); err != nil {
		return err
	}
	if err := c.validateAPITokens(); err != nil {
		return err
	}
	if err := c.HTTPClient.HTTPClientConfig.Validate(); err != nil {
		return &yamldoc.FieldError{Path: []any{"http_client"}, Err: err}
	}
	return c.validateMaintenance()
}

// validateURLs checks url or urls of the location at path (locations[i]);
// urls maps the URLs seen so far to their location's index.
func (l *Location) validateURLs(path []any, i int, urls map[string]int, all []Location) error {
	field := "url"
	switch {
	case l.URL != "" && len(l.URLs) > 0:
		return yamldoc.Fail(yamldoc.At(path, "urls"), "location %q sets both url and urls; use one", l.Name)
	case len(l.URLs) > 0:
		field = "urls"
	}
	for j, raw := range l.MemberURLs() {
		at := yamldoc.At(path, field)
		if field == "urls" {
			at = yamldoc.At(at, j)
		}
		u, err := url.Parse(raw)
		if raw == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return yamldoc.Fail(at, "%s of location %q must be an http(s) URL, got %q", field, l.Name, raw)
		}
		if k, ok := urls[raw]; ok {
			return yamldoc.Fail(at, "locations %q and %q have the same url %s", all[k].Name, l.Name, raw)
		}
		urls[raw] = i
	}
	return nil
}

// LocationURLs maps each location's name to its members' URLs.
func (c *CoordinatorConfig) LocationURLs() map[string][]string {
	m := make(map[string][]string, len(c.Locations))
	for _, l := range c.Locations {
		m[l.Name] = l.MemberURLs()
	}
	return m
}
