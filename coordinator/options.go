// Package coordinator is vantage-coordinator: it receives the exporters'
// state-change reports, asks the other locations to check a failing
// target at once, and only when enough locations agree marks the target
// confirmed down. It keeps an incident log and never reports a
// monitoring-side fault as downtime: a location that cannot tell makes a
// target unknown, not down.
package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vantageprobe/vantage/coordinator/peers"
	"github.com/vantageprobe/vantage/internal/gossip"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// Options configure the coordinator; cmd/vantage-coordinator fills them
// from flags.
type Options struct {
	// ConfigFile is the configuration file; empty means the embedded
	// default (one location: the exporter on this host).
	ConfigFile string
	// PeerName names this coordinator among its peers, in the versions of
	// the replicated state it writes and as a gossip member
	// (--cluster.name); empty: the host name.
	PeerName string
	// Cluster is where this coordinator gossips with its peers
	// (--cluster.*); an empty ListenAddress: it has none.
	Cluster gossip.Options
	// StoragePath is the directory of the incident log.
	StoragePath string
	// Retention is how long resolved incidents are kept in the incident
	// log after they were resolved (--storage.retention); open ones are
	// kept however old.
	Retention time.Duration
	// PruneInterval is how often incidents older than Retention are
	// deleted; they are also deleted when Serve starts.
	PruneInterval time.Duration
	// FlagConfig is where the web server listens (--web.listen-address,
	// --web.systemd-socket) and its exporter-toolkit web configuration of
	// TLS and basic auth (--web.config.file).
	web.FlagConfig
	// EnablePprof serves Go's runtime profiles under /debug/pprof/.
	EnablePprof bool
	// APITokenFile holds a bearer token with the report and write scopes
	// (see the configuration's api_tokens); empty: none.
	APITokenFile string
	// Tracing configures OpenTelemetry traces of verification rounds.
	Tracing tracing.Config
	// StatusPage serves the public status page under /status
	// (--web.status-page).
	StatusPage bool
	// TimeoutOffset is subtracted from Prometheus' scrape timeout on
	// /probe, to leave room for the scrape itself.
	TimeoutOffset time.Duration
	// Logger receives the program's logs.
	Logger *slog.Logger
	// Reload receives a value for each external reload request (SIGHUP).
	Reload <-chan struct{}
	// Started, when set, is called with the bound listen addresses once the
	// server accepts connections.
	Started func(addrs []net.Addr)
}

// defaultPeerName is the host name, or "coordinator" when it is unknown.
func defaultPeerName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "coordinator"
}

// DefaultRetention is --storage.retention's default: 90 days.
const DefaultRetention = 90 * 24 * time.Hour

// DefaultOptions returns the options the flags default to.
func DefaultOptions() Options {
	return Options{
		StoragePath:   "data/",
		Retention:     DefaultRetention,
		PruneInterval: time.Hour,
		FlagConfig: web.FlagConfig{
			WebListenAddresses: &[]string{":9716"},
			WebSystemdSocket:   new(false),
			WebConfigFile:      new(""),
		},
		TimeoutOffset: 500 * time.Millisecond,
		Logger:        slog.New(slog.DiscardHandler),
		Tracing:       tracing.DefaultConfig(),
		Cluster:       peers.DefaultOptions().Options,
	}
}

func (o *Options) validate() error {
	if err := webserver.ValidateFlags(o.FlagConfig); err != nil {
		return err
	}
	if o.StoragePath == "" {
		return errors.New("--storage.path must be set")
	}
	if o.Retention <= 0 {
		return fmt.Errorf("--storage.retention must be positive, got %s", o.Retention)
	}
	if o.PruneInterval <= 0 {
		return fmt.Errorf("the incident log's prune interval must be positive, got %s", o.PruneInterval)
	}
	if o.TimeoutOffset < 0 {
		return fmt.Errorf("--timeout-offset must not be negative, got %s", o.TimeoutOffset)
	}
	if err := o.Cluster.Validate(); err != nil {
		return err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
