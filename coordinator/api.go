package coordinator

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// defaultIncidentLimit bounds GET /api/v1/incidents?state=all without a
// limit.
const defaultIncidentLimit = 1000

// Handler returns the coordinator's HTTP routes, without web config
// protection.
func (c *Coordinator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.handleStatus)
	mux.Handle("POST "+api.ReportsPath, c.scopedHandler(config.ScopeReport, http.HandlerFunc(c.handleReports)))
	mux.HandleFunc("GET /api/v1/incidents", c.handleIncidents)
	mux.HandleFunc("GET /api/v1/incidents/{id}", c.handleIncident)
	mux.HandleFunc("GET /api/v1/targets", c.handleTargets)
	mux.HandleFunc("GET /api/v1/locations", c.handleLocations)
	mux.HandleFunc("POST /api/v1/events", c.handleEventSubmit)
	mux.HandleFunc("GET /api/v1/events", c.handleEvents)
	mux.HandleFunc("GET /api/v1/events/{id}", c.handleEvent)
	mux.HandleFunc("POST /api/v1/events/{id}/ack", c.handleEventAck)
	mux.HandleFunc("DELETE /api/v1/events/{id}", c.handleEventDelete)
	mux.HandleFunc("GET /events", c.handleEventsPage)
	mux.HandleFunc("GET /api/v1/targets/{target}/uptime", c.handleUptime)
	mux.HandleFunc("GET /api/v1/maintenances", c.handleMaintenances)
	mux.Handle("POST /api/v1/maintenances", c.scopedHandler(config.ScopeWrite, http.HandlerFunc(c.handleCreateMaintenance)))
	mux.Handle("DELETE /api/v1/maintenances/{id}", c.scopedHandler(config.ScopeWrite, http.HandlerFunc(c.handleDeleteMaintenance)))
	c.handleRegistry(mux)
	if c.opts.StatusPage {
		c.handleStatusPage(mux)
	}
	mux.HandleFunc("GET /probe", c.handleProbe)
	mux.HandleFunc("GET /metrics", c.handleMetrics)
	mux.HandleFunc("GET /config", c.handleConfig)
	webserver.HandleOperational(mux, c.reloads, c.clocks.set.Unhealthy)
	if c.opts.EnablePprof {
		webserver.HandlePprof(mux)
	}
	return mux
}

// handleIncidents lists incidents newest first:
// ?state=open (default) or all, and ?limit=N.
func (c *Coordinator) handleIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if state != "open" && state != "all" {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("state must be open or all, got %q", state))
		return
	}
	limit := 0
	if state == "all" {
		limit = defaultIncidentLimit
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("limit must be a positive integer, got %q", v))
			return
		}
		limit = n
	}
	// Written as they are read from the log: a list of many incidents,
	// each with up to 200 pieces of evidence, is never whole in memory.
	var list *jsonapi.List
	err := c.store.Each(state == "open", limit, nil, func(inc *confirm.Incident) error {
		if list == nil {
			list = jsonapi.StartList(w, http.StatusOK)
		}
		return list.Add(inc)
	})
	switch {
	case err != nil && list == nil:
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	case err != nil:
		// Part of the list is sent: cut the answer short rather than end
		// it as if it were whole.
		c.logger.Warn("Listing incidents failed", "err", err)
		panic(http.ErrAbortHandler)
	case list == nil:
		list = jsonapi.StartList(w, http.StatusOK)
	}
	_ = list.End()
}

func (c *Coordinator) handleIncident(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "incident")
	if !ok {
		return
	}
	inc, ok, err := c.store.Get(id)
	switch {
	case err != nil:
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
	case !ok:
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Errorf("no incident %d", id))
	default:
		jsonapi.Write(w, http.StatusOK, inc)
	}
}

// handleTargets lists every target the coordinator knows, with each
// location's latest evidence; ?state= keeps one state.
func (c *Coordinator) handleTargets(w http.ResponseWriter, r *http.Request) {
	targets := c.targets()
	if s := r.URL.Query().Get("state"); s != "" {
		if !slices.Contains(confirm.States, confirm.State(s)) {
			jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("state must be one of up, seems_down, down, unknown; got %q", s))
			return
		}
		targets = slices.DeleteFunc(targets, func(t confirm.TargetView) bool { return t.State != confirm.State(s) })
	}
	// Encoded one target at a time: 10,000 targets with three locations'
	// evidence are megabytes of JSON.
	list := jsonapi.StartList(w, http.StatusOK)
	for i := range targets {
		if list.Add(&targets[i]) != nil {
			return
		}
	}
	_ = list.End()
}

func (c *Coordinator) handleLocations(w http.ResponseWriter, _ *http.Request) {
	jsonapi.Write(w, http.StatusOK, c.locations())
}

// locations is every location's health and standing, with its members.
func (c *Coordinator) locations() []locationView {
	views := c.health.views()
	c.mu.Lock()
	suspects := c.machine.Suspects(time.Now())
	c.mu.Unlock()
	for i := range views {
		for _, s := range suspects {
			if s.Location == views[i].Name {
				views[i].Suspect = s
			}
		}
	}
	return c.members.withMembers(views)
}

func (c *Coordinator) handleConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := yaml.Marshal(c.conf.Load())
	if err != nil {
		http.Error(w, fmt.Sprintf("error marshalling configuration: %s", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}
