package exporter

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober"
)

// state is one loaded configuration with its prepared modules. A reload
// builds a new state and swaps it in whole; probes in flight keep the state
// they started with.
type state struct {
	config  *config.Config
	modules map[string]*prober.Module
	// targets are the scheduled targets: static, then those discovered
	// that no static one already names, then the canary.
	targets []scheduler.Target
	// static are the targets of the file and target_files, with the
	// canary last; discovered those of the groups with discovery.
	static, discovered []scheduler.Target
	// files is the signature of the target files the targets came from.
	files string
}

func loadState(path string) (*state, error) {
	c, err := config.LoadFile(path)
	if err != nil {
		return nil, err
	}
	mods, err := prober.PrepareAll(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sourceName(path), err)
	}
	st := &state{config: c, modules: mods}
	if err := st.loadTargets(path); err != nil {
		return nil, err
	}
	return st, nil
}

func sourceName(path string) string {
	if path == "" {
		return config.DefaultSource
	}
	return path
}

// loadTargets resolves the scheduled targets of st's configuration, reading
// the target files.
func (st *state) loadTargets(path string) error {
	baseDir := configDir(path)
	sig, err := targetFilesSignature(st.config, baseDir)
	if err != nil {
		return err
	}
	resolved, err := st.config.ScheduledTargets(baseDir)
	if err != nil {
		return err
	}
	st.static = scheduledTargets(resolved)
	if ct := st.config.CanaryTarget(); ct != nil {
		st.static = append(st.static, scheduler.Target{Module: ct.Module, Target: ct.Target, Interval: ct.Interval, Timeout: ct.Timeout, Canary: true})
	}
	st.files = sig
	st.compose()
	return nil
}

// scheduledTargets are resolved targets as the scheduler takes them.
func scheduledTargets(resolved []config.ScheduledTarget) []scheduler.Target {
	out := make([]scheduler.Target, len(resolved))
	for i, t := range resolved {
		labels := make([]scheduler.Label, 0, len(t.Labels))
		for name, value := range t.Labels {
			labels = append(labels, scheduler.Label{Name: name, Value: value})
		}
		slices.SortFunc(labels, func(a, b scheduler.Label) int { return strings.Compare(a.Name, b.Name) })
		out[i] = scheduler.Target{Module: t.Module, Target: t.Target, Interval: t.Interval, Timeout: t.Timeout, Labels: labels, Hostname: t.Hostname}
	}
	return out
}

// compose sets the scheduled targets from the static and discovered ones.
// A discovered target that a static one, or an earlier group, already
// names is left out: the first place that names a target configures it.
func (st *state) compose() {
	if len(st.discovered) == 0 {
		// The static targets as they are, the canary already last: a
		// million targets are not held twice.
		st.targets = st.static
		return
	}
	n := len(st.static)
	canary := n > 0 && st.static[n-1].Canary
	if canary {
		n--
	}
	st.targets = make([]scheduler.Target, 0, len(st.static)+len(st.discovered))
	st.targets = append(st.targets, st.static[:n]...)
	seen := make(map[string]bool, len(st.targets))
	for i := range st.targets {
		seen[st.targets[i].Key()] = true
	}
	for _, t := range st.discovered {
		if !seen[t.Key()] {
			seen[t.Key()] = true
			st.targets = append(st.targets, t)
		}
	}
	if canary {
		st.targets = append(st.targets, st.static[n])
	}
}

// configDir is the directory relative target_files patterns start from:
// the configuration file's, or the working directory for the embedded one.
func configDir(path string) string {
	if path == "" {
		return "."
	}
	return filepath.Dir(path)
}

// targetFilesSignature names the target files with their sizes and
// modification times: a change of it means the targets must be read again.
func targetFilesSignature(c *config.Config, baseDir string) (string, error) {
	files, err := c.TargetFilePaths(baseDir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("reading target file: %w", err)
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
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
	// tried is the checksum of the configuration file as last loaded,
	// successfully or not: auto-reload loads it again when it changes.
	tried [sha256.Size]byte
	// seen is the checksum auto-reload saw last: a change is loaded once
	// two checks in a row see the same content, not while it is written.
	seen [sha256.Size]byte
	// discover, when set, gets each configuration loaded and returns the
	// targets discovered for it.
	discover func(*config.Config) []scheduler.Target

	lastReloadSuccessful prometheus.Gauge
	lastReloadSuccess    prometheus.Gauge
	targetFilesOK        prometheus.Gauge
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
		targetFilesOK: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "vantage_exporter_target_files_last_read_successful",
			Help: "Whether the target files were last read successfully.",
		}),
	}
}

// reload loads the configuration file again. On failure the running state
// stays in place.
func (h *configHolder) reload() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reloadLocked()
}

func (h *configHolder) reloadLocked() error {
	if sum, ok := h.fileSum(); ok {
		h.tried = sum
	}
	s, err := loadState(h.path)
	if err != nil {
		h.lastReloadSuccessful.Set(0)
		h.logger.Error("Error loading config; keeping the running configuration", "err", err)
		return err
	}
	if h.discover != nil {
		s.discovered = h.discover(s.config)
		s.compose()
	}
	h.current.Store(s)
	h.lastReloadSuccessful.Set(1)
	h.lastReloadSuccess.SetToCurrentTime()
	h.targetFilesOK.Set(1)
	h.logger.Info("Loaded config file", "file", h.source(), "modules", len(s.modules), "scheduled_targets", len(s.targets))
	return nil
}

// refreshTargets reads the target files again when they changed, keeping
// the running targets if they no longer load. It reports whether the
// targets changed.
func (h *configHolder) refreshTargets() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.get()
	sig, err := targetFilesSignature(cur.config, configDir(h.path))
	if err == nil && sig == cur.files {
		return false
	}
	next := &state{config: cur.config, modules: cur.modules, discovered: cur.discovered}
	if err == nil {
		err = next.loadTargets(h.path)
	}
	if err != nil {
		h.targetFilesOK.Set(0)
		h.logger.Error("Error reading target files; keeping the running targets", "err", err)
		return false
	}
	h.current.Store(next)
	h.targetFilesOK.Set(1)
	h.logger.Info("Target files changed", "scheduled_targets", len(next.targets))
	return true
}

// reloadIfChanged reloads the configuration file when its content differs
// from the one last loaded (or tried) and has not changed since the
// previous check, so a file caught half-written is not loaded; it reports
// whether it reloaded successfully. A file that fails to load is not tried
// again until it changes.
func (h *configHolder) reloadIfChanged() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	sum, ok := h.fileSum()
	if !ok || sum == h.tried {
		return false
	}
	if sum != h.seen {
		h.seen = sum
		return false
	}
	h.logger.Info("Configuration file changed; reloading", "file", h.source())
	return h.reloadLocked() == nil
}

// fileSum is the checksum of the configuration file; ok false for the
// embedded configuration or a file that cannot be read (loading it says why).
func (h *configHolder) fileSum() (sum [sha256.Size]byte, ok bool) {
	if h.path == "" {
		return sum, false
	}
	b, err := os.ReadFile(h.path)
	if err != nil {
		return sum, false
	}
	return sha256.Sum256(b), true
}

// setDiscovered swaps in the running state with the given discovered
// targets. It reports whether the scheduled targets changed.
func (h *configHolder) setDiscovered(discovered []scheduler.Target) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.get()
	next := *cur
	next.discovered = discovered
	next.compose()
	if slices.EqualFunc(next.targets, cur.targets, sameTarget) {
		return false
	}
	h.current.Store(&next)
	return true
}

func (h *configHolder) get() *state { return h.current.Load() }

func (h *configHolder) source() string { return sourceName(h.path) }
