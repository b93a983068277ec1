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
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vantageprobe/vantage/internal/tracing"
)

// Options configure the coordinator; cmd/vantage-coordinator fills them
// from flags.
type Options struct {
	// ConfigFile is the configuration file; empty means the embedded
	// default (one location: the exporter on this host).
	ConfigFile string
	// StoragePath is the directory of the incident log.
	StoragePath string
	// ListenAddresses are the addresses the web server listens on.
	ListenAddresses []string
	// EnablePprof serves Go's runtime profiles under /debug/pprof/.
	EnablePprof bool
	// WebConfigFile is an exporter-toolkit web configuration (TLS, basic auth).
	WebConfigFile string
	// WebSystemdSocket serves on systemd socket activation listeners
	// instead of ListenAddresses.
	WebSystemdSocket bool
	// APITokenFile holds the bearer token report batches must carry;
	// empty: reports need no token.
	APITokenFile string
	// Tracing configures OpenTelemetry traces of verification rounds.
	Tracing tracing.Config
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

// DefaultOptions returns the options the flags default to.
func DefaultOptions() Options {
	return Options{
		StoragePath:     "data/",
		ListenAddresses: []string{":9716"},
		TimeoutOffset:   500 * time.Millisecond,
		Logger:          slog.New(slog.DiscardHandler),
		Tracing:         tracing.DefaultConfig(),
	}
}

func (o *Options) validate() error {
	if len(o.ListenAddresses) == 0 && !o.WebSystemdSocket {
		return errors.New("at least one --web.listen-address is needed")
	}
	if o.StoragePath == "" {
		return errors.New("--storage.path must be set")
	}
	if o.TimeoutOffset < 0 {
		return fmt.Errorf("--timeout-offset must not be negative, got %s", o.TimeoutOffset)
	}
	if o.WebConfigFile != "" {
		if err := web.Validate(o.WebConfigFile); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", o.WebConfigFile, err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
