package coordinator

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// Labels of the http_sd document that configure a check, as Prometheus
// and the exporters' discovery read them.
const (
	sdParamTarget    = "__param_target"
	sdParamModule    = "__param_module"
	sdScrapeInterval = "__scrape_interval__"
)

// SDGroup is one target group of Prometheus's http_sd format.
type SDGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// sdGroups renders monitors as http_sd target groups, one per monitor:
// the target as __address__ and __param_target, the module as
// __param_module, the interval as __scrape_interval__, and the monitor's
// labels with its id and failure threshold.
func sdGroups(monitors []Monitor) []SDGroup {
	out := make([]SDGroup, 0, len(monitors))
	for _, m := range monitors {
		labels := maps.Clone(m.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		labels[sdParamTarget] = m.Target
		labels[sdParamModule] = m.Module
		labels[sdScrapeInterval] = m.Interval.String()
		labels[MonitorIDLabel] = m.ID
		if m.FailureThreshold != nil {
			labels[FailureThresholdLabel] = strconv.FormatUint(*m.FailureThreshold, 10)
		}
		out = append(out, SDGroup{Targets: []string{m.Target}, Labels: labels})
	}
	return out
}

// handleSD serves the caller's monitors as http_sd: with ?location=NAME
// those the location checks (the monitor lists it, or lists none, and the
// location has its module), else all.
func (c *Coordinator) handleSD(w http.ResponseWriter, r *http.Request, who caller) {
	conf := c.conf.Load()
	location := r.URL.Query().Get("location")
	if location != "" && !slices.ContainsFunc(conf.Locations, func(l config.Location) bool { return l.Name == location }) {
		names := make([]string, len(conf.Locations))
		for i, l := range conf.Locations {
			names[i] = l.Name
		}
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("location: unknown location %q (known: %s)", location, strings.Join(names, ", ")))
		return
	}
	monitors := slices.DeleteFunc(c.registry.list(), func(m Monitor) bool {
		return !m.visibleTo(who) || (location != "" && !m.checkedAt(conf, location))
	})
	jsonapi.Write(w, http.StatusOK, sdGroups(monitors))
}
