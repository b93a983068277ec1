// Package exporter is vantage-exporter: it serves blackbox_exporter's /probe
// over vantage's probers, its own /metrics, and the operational endpoints
// (/config, /-/reload, /-/healthy, /-/ready).
package exporter

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vantageprobe/vantage/exporter/cluster"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// Options configure the exporter; cmd/vantage-exporter fills them from flags.
type Options struct {
	// Location names where this exporter probes from (e.g. "ams"); it is
	// reported with every check made for the coordinator.
	Location string
	// APITokenFile holds the bearer token check API requests must carry;
	// empty: no token needed.
	APITokenFile string
	// CoordinatorHTTPConfigFile is a prometheus/common HTTP client
	// configuration for the reports sent to the coordinators (bearer
	// token, TLS client certificates, proxy).
	CoordinatorHTTPConfigFile string
	// CoordinatorURLs are the coordinators (one, or an HA pair) that get
	// this exporter's state-change reports; none disables reporting.
	CoordinatorURLs []string
	// CoordinatorHeartbeatInterval is the longest a coordinator goes
	// without a batch: with no reports queued, an empty one carries the
	// canary's verdict. 0: 10s.
	CoordinatorHeartbeatInterval time.Duration
	// CoordinatorSnapshotInterval is how often each coordinator gets a
	// snapshot of every scheduled target's state, besides when it is new
	// to this exporter, asks for one, or reports to it were dropped. 0: 5m.
	CoordinatorSnapshotInterval time.Duration
	// CoordinatorQueueCapacity bounds the reports waiting for each
	// coordinator; on overflow a target's older report gives way to its
	// newer one first, and a snapshot follows. 0: 10,000.
	CoordinatorQueueCapacity int
	// SchedulerBounds say when the exporter judges its scheduling unfit
	// to vouch for its results (--scheduler.max-lag,
	// --scheduler.max-missed-ratio, --scheduler.stale-after,
	// --scheduler.judge-window); its failures are then reported unknown.
	SchedulerBounds scheduler.Bounds
	// ConfigFile is the configuration file; empty means the embedded default.
	ConfigFile string
	// FlagConfig is where the web server listens (--web.listen-address,
	// --web.systemd-socket) and its exporter-toolkit web configuration of
	// TLS and basic auth (--web.config.file).
	web.FlagConfig
	// EnablePprof serves Go's runtime profiles under /debug/pprof/.
	EnablePprof bool
	// TimeoutOffset is subtracted from Prometheus' scrape timeout header to
	// leave room for the scrape itself.
	TimeoutOffset time.Duration
	// HistoryLimit is how many recent probes the landing page and debug
	// pages keep.
	HistoryLimit int
	// ProbeLogLevel is the level a /probe's own log lines reach Logger
	// at (debug, info, warn, error), or "none" to keep them out of it;
	// "" is info.
	ProbeLogLevel string
	// AutoReload reloads the configuration file when its content changed,
	// checked every AutoReloadInterval.
	AutoReload         bool
	AutoReloadInterval time.Duration
	// ExternalURL is the URL the exporter is reachable under from outside;
	// its path is the default RoutePrefix.
	ExternalURL string
	// RoutePrefix prefixes every endpoint; "" takes ExternalURL's path.
	RoutePrefix string
	// Tracing configures OpenTelemetry traces of checks (--tracing.*); off
	// unless an endpoint is set (see tracing.Config.Enabled).
	Tracing tracing.Config
	// Cluster makes this exporter a member of its location's gossip
	// cluster (--cluster.*): the members share the targets. Without a
	// listen address there is no cluster.
	Cluster cluster.Options
	// DiscoveryUpdateInterval is how often, at most, changes found by the
	// targets groups' service discovery reach the scheduler. 0: 5s.
	DiscoveryUpdateInterval time.Duration
	// Logger receives the program's logs.
	Logger *slog.Logger
	// Reload receives a value for each external reload request (SIGHUP).
	Reload <-chan struct{}
	// Started, when set, is called with the bound listen addresses once the
	// server accepts connections.
	Started func(addrs []net.Addr)
}

// DefaultOptions returns the options the flags default to.
func DefaultOptions() Options {
	return Options{
		FlagConfig: web.FlagConfig{
			WebListenAddresses: &[]string{":9715"},
			WebSystemdSocket:   new(false),
			WebConfigFile:      new(""),
		},
		CoordinatorHeartbeatInterval: 10 * time.Second,
		CoordinatorSnapshotInterval:  5 * time.Minute,
		CoordinatorQueueCapacity:     10000,
		SchedulerBounds:              scheduler.DefaultBounds(),
		TimeoutOffset:                500 * time.Millisecond,
		HistoryLimit:                 100,
		ProbeLogLevel:                "info",
		AutoReloadInterval:           30 * time.Second,
		Tracing:                      tracing.DefaultConfig(),
		Cluster:                      cluster.DefaultOptions(),
		Logger:                       slog.New(slog.DiscardHandler),
	}
}

func (o *Options) validate() error {
	if err := webserver.ValidateFlags(o.FlagConfig); err != nil {
		return err
	}
	if o.TimeoutOffset < 0 {
		return fmt.Errorf("--timeout-offset must not be negative, got %s", o.TimeoutOffset)
	}
	if o.AutoReload && o.AutoReloadInterval <= 0 {
		return fmt.Errorf("--config.auto-reload-interval must be positive, got %s", o.AutoReloadInterval)
	}
	if _, err := o.routePrefix(); err != nil {
		return err
	}
	if _, _, err := o.probeLogLevel(); err != nil {
		return err
	}
	if o.DiscoveryUpdateInterval < 0 {
		return fmt.Errorf("--discovery.update-interval must not be negative, got %s", o.DiscoveryUpdateInterval)
	}
	if o.HistoryLimit < 0 {
		return fmt.Errorf("--history.limit must not be negative, got %d", o.HistoryLimit)
	}
	for _, u := range o.CoordinatorURLs {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("--coordinator.url %q is not an http(s) URL", u)
		}
	}
	if len(o.CoordinatorURLs) > 0 && o.Location == "" {
		return errors.New("--coordinator.url needs --location: the coordinator takes reports only from the locations it lists, by name")
	}
	if o.CoordinatorHeartbeatInterval < 0 {
		return fmt.Errorf("--coordinator.heartbeat-interval must not be negative, got %s", o.CoordinatorHeartbeatInterval)
	}
	if o.CoordinatorQueueCapacity < 0 {
		return fmt.Errorf("--coordinator.queue-capacity must not be negative, got %d", o.CoordinatorQueueCapacity)
	}
	if o.CoordinatorSnapshotInterval < 0 {
		return fmt.Errorf("--coordinator.snapshot-interval must not be negative, got %s", o.CoordinatorSnapshotInterval)
	}
	if err := validateBounds(o.SchedulerBounds); err != nil {
		return err
	}
	if err := o.validateCluster(); err != nil {
		return err
	}
	if o.Tracing.Enabled() {
		if err := o.Tracing.Validate(); err != nil {
			return err
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// routePrefix is the path every endpoint is served under: "/", or a path
// with a leading and a trailing slash ("/vantage/"), from --web.route-prefix
// or else the path of --web.external-url, as blackbox_exporter derives it.
func (o *Options) routePrefix() (string, error) {
	prefix := o.RoutePrefix
	if o.ExternalURL != "" {
		if strings.ContainsAny(o.ExternalURL[:1]+o.ExternalURL[len(o.ExternalURL)-1:], `"'`) {
			return "", fmt.Errorf("--web.external-url %s must not begin or end with quotes", o.ExternalURL)
		}
		u, err := url.Parse(o.ExternalURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("--web.external-url %q is not an http(s) URL", o.ExternalURL)
		}
		if prefix == "" {
			prefix = u.Path
		}
	}
	prefix = "/" + strings.Trim(prefix, "/")
	if prefix != "/" {
		prefix += "/"
	}
	if _, err := url.Parse(prefix); err != nil || strings.ContainsAny(prefix, "?#{} ") {
		return "", fmt.Errorf("--web.route-prefix %q is not a URL path", o.RoutePrefix)
	}
	return prefix, nil
}

// probeLogLevel is the level of --log.prober; ok false for "none".
func (o *Options) probeLogLevel() (level slog.Level, ok bool, err error) {
	switch o.ProbeLogLevel {
	case "none":
		return 0, false, nil
	case "", "info":
		return slog.LevelInfo, true, nil
	}
	if err := level.UnmarshalText([]byte(o.ProbeLogLevel)); err != nil {
		return 0, false, fmt.Errorf("--log.prober %q is not one of debug, info, warn, error, none", o.ProbeLogLevel)
	}
	return level, true, nil
}

// validateBounds checks the --scheduler.* bounds of the self-judgement.
func validateBounds(b scheduler.Bounds) error {
	switch {
	case b.MaxLag < 0:
		return fmt.Errorf("--scheduler.max-lag must not be negative, got %s", b.MaxLag)
	case b.MaxMissedRatio < 0 || b.MaxMissedRatio > 1:
		return fmt.Errorf("--scheduler.max-missed-ratio must be between 0 and 1, got %g", b.MaxMissedRatio)
	case b.StaleAfter < 0:
		return fmt.Errorf("--scheduler.stale-after must not be negative, got %d", b.StaleAfter)
	case b.Window != 0 && b.Window < time.Second:
		return fmt.Errorf("--scheduler.judge-window must be at least 1s, got %s", b.Window)
	}
	return nil
}

// validateCluster checks the --cluster.* flags.
func (o *Options) validateCluster() error {
	c := &o.Cluster
	if c.ListenAddress == "" {
		return nil
	}
	if o.Location == "" {
		return errors.New("--cluster.listen-address needs --location: the members of a cluster are the exporters of one location")
	}
	return c.Validate()
}
