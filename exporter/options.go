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
	"time"

	"github.com/prometheus/exporter-toolkit/web"

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
	// Tracing configures OpenTelemetry traces of checks (--tracing.*); off
	// unless an endpoint is set (see tracing.Config.Enabled).
	Tracing tracing.Config
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
		TimeoutOffset:                500 * time.Millisecond,
		HistoryLimit:                 100,
		Tracing:                      tracing.DefaultConfig(),
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
