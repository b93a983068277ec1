package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// maxMonitorBody bounds a monitor's body.
const maxMonitorBody = 64 << 10

// handleRegistry routes the monitor registry, its http_sd document, and
// the monitors' incidents and stats.
func (c *Coordinator) handleRegistry(mux *http.ServeMux) {
	mux.Handle("POST /api/v1/monitors", c.scoped(config.ScopeWrite, c.handleCreateMonitor))
	mux.Handle("GET /api/v1/monitors", c.scoped(config.ScopeRead, c.handleMonitors))
	mux.Handle("GET /api/v1/monitors/{id}", c.scoped(config.ScopeRead, c.handleMonitor))
	mux.Handle("PUT /api/v1/monitors/{id}", c.scoped(config.ScopeWrite, c.handleUpdateMonitor))
	mux.Handle("DELETE /api/v1/monitors/{id}", c.scoped(config.ScopeWrite, c.handleDeleteMonitor))
	mux.Handle("GET /api/v1/monitors/{id}/incidents", c.scoped(config.ScopeRead, c.handleMonitorIncidents))
	mux.Handle("GET /api/v1/monitors/{id}/stats", c.scoped(config.ScopeRead, c.handleMonitorStats))
	mux.Handle("GET /api/v1/sd", c.scoped(config.ScopeRead, c.handleSD))
}

// readSpec decodes and validates a monitor's body for who: a caller with
// an owner writes its own monitors only.
func (c *Coordinator) readSpec(w http.ResponseWriter, r *http.Request, who caller) (MonitorSpec, bool) {
	var spec MonitorSpec
	status, err := jsonapi.Decode(w, r, maxMonitorBody, &spec, "a JSON object with target, module, interval, labels, failure_threshold and locations")
	if err == nil && who.owner != "" {
		if spec.Owner != "" && spec.Owner != who.owner {
			err = invalid("owner", "token %q writes the monitors of owner %q only", who.token, who.owner)
		}
		spec.Owner = who.owner
	}
	if err == nil {
		err = spec.check(c.conf.Load())
	}
	if err != nil {
		jsonapi.WriteError(w, cmpStatus(status, http.StatusBadRequest), err)
		return spec, false
	}
	return spec, true
}

func (c *Coordinator) handleCreateMonitor(w http.ResponseWriter, r *http.Request, who caller) {
	spec, ok := c.readSpec(w, r, who)
	if !ok {
		return
	}
	m, err := c.registry.create(spec, c.conf.Load().Registry.MaxMonitors, time.Now())
	if err != nil {
		c.writeRegistryError(w, err)
		return
	}
	c.logger.Info("Monitor registered", "id", m.ID, "target", m.Target, "module", m.Module, "owner", m.Owner, "token", who.token)
	w.Header().Set("Location", "/api/v1/monitors/"+m.ID)
	jsonapi.Write(w, http.StatusCreated, m)
}

func (c *Coordinator) handleUpdateMonitor(w http.ResponseWriter, r *http.Request, who caller) {
	spec, ok := c.readSpec(w, r, who)
	if !ok {
		return
	}
	m, err := c.registry.update(r.PathValue("id"), spec, func(m Monitor) bool { return m.visibleTo(who) }, time.Now())
	if err != nil {
		c.writeRegistryError(w, err)
		return
	}
	c.logger.Info("Monitor changed", "id", m.ID, "target", m.Target, "module", m.Module, "token", who.token)
	jsonapi.Write(w, http.StatusOK, m)
}

func (c *Coordinator) handleDeleteMonitor(w http.ResponseWriter, r *http.Request, who caller) {
	id := r.PathValue("id")
	if err := c.registry.remove(id, func(m Monitor) bool { return m.visibleTo(who) }, time.Now()); err != nil {
		c.writeRegistryError(w, err)
		return
	}
	c.logger.Info("Monitor deleted", "id", id, "token", who.token)
	w.WriteHeader(http.StatusNoContent)
}

func (c *Coordinator) writeRegistryError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errMonitorNotFound):
		jsonapi.WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, errMonitorExists):
		jsonapi.WriteError(w, http.StatusConflict, err)
	case errors.Is(err, errTooManyMonitors):
		jsonapi.WriteError(w, http.StatusUnprocessableEntity, err)
	default:
		c.metrics.storeErrors.Inc()
		jsonapi.WriteError(w, http.StatusServiceUnavailable, err)
	}
}

// handleMonitors lists the caller's monitors; ?label=name=value (repeated)
// keeps those with every such label.
func (c *Coordinator) handleMonitors(w http.ResponseWriter, r *http.Request, who caller) {
	want := map[string]string{}
	for _, l := range r.URL.Query()["label"] {
		name, value, ok := strings.Cut(l, "=")
		if !ok || name == "" {
			jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("label: want name=value, got %q", l))
			return
		}
		want[name] = value
	}
	out := slices.DeleteFunc(c.registry.list(), func(m Monitor) bool {
		if !m.visibleTo(who) {
			return true
		}
		for n, v := range want {
			if got, ok := m.Labels[n]; !ok || got != v {
				return true
			}
		}
		return false
	})
	jsonapi.Write(w, http.StatusOK, out)
}

// visibleMonitor is the path's monitor, when the caller may see it; else
// it answers 404.
func (c *Coordinator) visibleMonitor(w http.ResponseWriter, r *http.Request, who caller) (Monitor, bool) {
	id := r.PathValue("id")
	m, ok := c.registry.get(id)
	if !ok || !m.visibleTo(who) {
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Errorf("%w: %q", errMonitorNotFound, id))
		return Monitor{}, false
	}
	return m, true
}

func (c *Coordinator) handleMonitor(w http.ResponseWriter, r *http.Request, who caller) {
	if m, ok := c.visibleMonitor(w, r, who); ok {
		jsonapi.Write(w, http.StatusOK, m)
	}
}

// monitorIncidents are the incidents of the monitor's target and module
// that were open at some time since from (zero: all), newest first.
func (c *Coordinator) monitorIncidents(m Monitor, from time.Time) ([]confirm.Incident, error) {
	out := []confirm.Incident{}
	err := c.store.Each(false, 0, func(inc *confirm.Incident) bool {
		return inc.Target == m.Target && inc.Module == m.Module && (inc.ResolvedAt.IsZero() || !inc.ResolvedAt.Before(from))
	}, func(inc *confirm.Incident) error {
		out = append(out, *inc)
		return nil
	})
	return out, err
}

func (c *Coordinator) handleMonitorIncidents(w http.ResponseWriter, r *http.Request, who caller) {
	m, ok := c.visibleMonitor(w, r, who)
	if !ok {
		return
	}
	incidents, err := c.monitorIncidents(m, time.Time{})
	if err != nil {
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, incidents)
}
