package exporter

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/exporter/prober"
)

// state is one loaded configuration with its prepared modules. A reload
// builds a new state and swaps it in whole; probes in flight keep the state
// they started with.
type state struct {
	config  *config.Config
	modules map[string]*prober.Module
}

func loadState(path string) (*state, error) {
	c, err := config.LoadFile(path)
	if err != nil {
		return nil, err
	}
	mods, err := prober.PrepareAll(c)
	if err != nil {
		source := path
		if source == "" {
			source = config.DefaultSource
		}
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return &state{config: c, modules: mods}, nil
}

// CheckConfig loads and prepares a configuration file without serving it,
// for --config.check.
func CheckConfig(path string) error {
	_, err := loadState(path)
	return err
}

// configHolder owns the current state and its reload metrics.
type configHolder struct {
	path    string
	logger  *slog.Logger
	current atomic.Pointer[state]
	mu      sync.Mutex // serialises reloads

	lastReloadSuccessful prometheus.Gauge
	lastReloadSuccess    prometheus.Gauge
}

func newConfigHolder(path string, reg prometheus.Registerer, logger *slog.Logger) *configHolder {
	return &configHolder{
		path:   path,
		logger: logger,
		lastReloadSuccessful: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "vantage_exporter_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		lastReloadSuccess: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "vantage_exporter_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
}

// reload loads the configuration file again. On failure the running state
// stays in place.
func (h *configHolder) reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	s, err := loadState(h.path)
	if err != nil {
		h.lastReloadSuccessful.Set(0)
		h.logger.Error("Error loading config; keeping the running configuration", "err", err)
		return err
	}
	h.current.Store(s)
	h.lastReloadSuccessful.Set(1)
	h.lastReloadSuccess.SetToCurrentTime()
	h.logger.Info("Loaded config file", "file", h.source(), "modules", len(s.modules))
	return nil
}

func (h *configHolder) get() *state { return h.current.Load() }

func (h *configHolder) source() string {
	if h.path == "" {
		return config.DefaultSource
	}
	return h.path
}
