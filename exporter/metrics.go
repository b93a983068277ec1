package exporter

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// newRegistry returns the registry of the exporter's /metrics with the Go
// runtime, process and build information collectors, and the registerer
// every part of the exporter registers with: with a location (its
// --location), it labels every series location, so the scrape
// configuration need not.
func newRegistry(location string) (*prometheus.Registry, prometheus.Registerer) {
	reg := prometheus.NewRegistry()
	var registerer prometheus.Registerer = reg
	if location != "" {
		registerer = prometheus.WrapRegistererWith(prometheus.Labels{"location": location}, reg)
	}
	registerer.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("vantage_exporter"),
	)
	return reg, registerer
}

// metrics are the exporter's counters of its HTTP surface. The parts it is
// built of (configuration, results table, canary, scheduler, reporter,
// tracing) register their own.
type metrics struct {
	probes *prometheus.CounterVec
	checks *prometheus.CounterVec
	// checksFromSchedule counts the checks answered with a fresh
	// scheduled result.
	checksFromSchedule *prometheus.CounterVec
	// panics counts handler panics; unauthorized, check API requests
	// refused for want of the --api.token-file token.
	panics       prometheus.Counter
	unauthorized prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		probes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_probes_total",
			Help: "Probes answered on /probe, by module and result.",
		}, []string{"module", "result"}),
		checks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_api_checks_total",
			Help: "Checks answered through the check API (POST /api/v1/check and /api/v1/checks), by module and result; those answered with a fresh scheduled result included.",
		}, []string{"module", "result"}),
		checksFromSchedule: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_api_checks_from_schedule_total",
			Help: "Checks asked for through the check API that were answered with the target's latest scheduled result, fresh enough not to check again, by module.",
		}, []string{"module"}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_exporter_http_handler_panics_total",
			Help: "HTTP requests whose handler panicked; they were answered 500 and logged.",
		}),
		unauthorized: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_exporter_api_requests_unauthorized_total",
			Help: "Check API requests refused because they lacked the bearer token of --api.token-file.",
		}),
	}
}
