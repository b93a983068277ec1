package coordinator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/expfmt"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// metrics are the coordinator's own counters; target states are rendered
// at scrape time by collector.Coordinator (see handleMetrics).
type metrics struct {
	reportsReceived *prometheus.CounterVec
	duplicates      *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	incidents       *prometheus.CounterVec
	reclassified    prometheus.Counter
	discounted      prometheus.Counter
	eventsReceived  *prometheus.CounterVec
	eventsRefused   *prometheus.CounterVec
	suspect         *prometheus.GaugeVec
	confirmation    prometheus.Histogram
	checks          *prometheus.CounterVec
	overload        *prometheus.CounterVec
	roundDuration   prometheus.Histogram
	storeErrors     prometheus.Counter
	pruned          prometheus.Counter
	panics          prometheus.Counter
	unauthorized    prometheus.Counter
	reloadSuccess   prometheus.Gauge
	reloadTime      prometheus.Gauge
}

// Reasons a report batch is refused.
const (
	rejectMalformed       = "malformed"
	rejectTooLarge        = "too_large"
	rejectMediaType       = "unsupported_media_type"
	rejectUnknownLocation = "unknown_location"
	rejectInvalidReport   = "invalid_report"
)

func newMetrics(reg prometheus.Registerer, conf *config.CoordinatorConfig) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		reportsReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_reports_received_total",
			Help: "State-change reports accepted from the exporters, by location and reported state (duplicates excluded).",
		}, []string{"location", "state"}),
		duplicates: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_reports_duplicate_total",
			Help: "Reports received again (a redelivered batch) and ignored.",
		}, []string{"location"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_report_batches_rejected_total",
			Help: "Report batches refused with a 4xx answer, by reason.",
		}, []string{"reason"}),
		incidents: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_incidents_total",
			Help: "Incidents resolved, by resolution: false_alarm (the other locations did not confirm the failure), location_suspect (only suspect locations failed it) or recovered (a confirmed outage ended).",
		}, []string{"resolution"}),
		reclassified: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_incidents_reclassified_total",
			Help: "False alarms found to be confirmed outages once late reports showed enough locations failing at once; vantage_incidents_total{resolution=\"false_alarm\"} counted them and is not decremented.",
		}),
		discounted: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_incidents_discounted_total",
			Help: "False alarms found, once their location became suspect, to be that location's own (resolution location_suspect after all); vantage_incidents_total{resolution=\"false_alarm\"} counted them and is not decremented.",
		}),
		suspect: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vantage_location_suspect",
			Help: "1 while the location is suspect (its failures count for nothing and quorum is taken from the others), by reason: contradicted (the others see its failing targets up far more than usual), self_reported (its exporter says it cannot vouch for its results).",
		}, []string{"location", "reason"}),
		eventsReceived: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_events_received_total",
			Help: "Pushed event submissions accepted, by the state they left the event in.",
		}, []string{"state"}),
		eventsRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_events_refused_total",
			Help: "Pushed event requests refused, by reason: unauthorized, invalid, rate_limited, too_many_events.",
		}, []string{"reason"}),
		confirmation: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "vantage_confirmation_duration_seconds",
			Help:    "Time from an outage's first failed check to its confirmation.",
			Buckets: []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600},
		}),
		checks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_location_checks_total",
			Help: "Checks the coordinator asked of each location during verification rounds, by outcome (success, failure, unknown).",
		}, []string{"location", "result"}),
		overload: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_coordinator_verification_overload_total",
			Help: "Checks of verification rounds the coordinator could not send to a location in time for want of its own capacity (its queue full, or no request slot free before half of verify_timeout had passed); such answers are no evidence about the target.",
		}, []string{"location"}),
		roundDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "vantage_coordinator_verification_round_duration_seconds",
			Help:    "How long verification rounds took, from the requests to the last answer or verify_timeout.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 10),
		}),
		storeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_incident_log_write_errors_total",
			Help: "Failed writes to the incident log.",
		}),
		pruned: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_incidents_pruned_total",
			Help: "Resolved incidents deleted from the incident log because they were resolved longer than --storage.retention ago.",
		}),
		unauthorized: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_api_requests_unauthorized_total",
			Help: "Report batches refused because they lacked the bearer token of --api.token-file.",
		}),
		panics: f.NewCounter(prometheus.CounterOpts{
			Name: "vantage_coordinator_http_handler_panics_total",
			Help: "HTTP requests whose handler panicked; they were answered 500 and logged.",
		}),
		reloadSuccess: f.NewGauge(prometheus.GaugeOpts{
			Name: "vantage_coordinator_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		reloadTime: f.NewGauge(prometheus.GaugeOpts{
			Name: "vantage_coordinator_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	m.reloadSuccess.Set(1)
	m.reloadTime.SetToCurrentTime()
	for _, r := range confirm.Resolutions {
		m.incidents.WithLabelValues(r)
	}
	for _, r := range refuseReasons {
		m.eventsRefused.WithLabelValues(r)
	}
	for _, s := range EventStates {
		m.eventsReceived.WithLabelValues(s)
	}
	for _, r := range []string{rejectMalformed, rejectTooLarge, rejectMediaType, rejectUnknownLocation, rejectInvalidReport} {
		m.rejected.WithLabelValues(r)
	}
	for _, l := range conf.Locations {
		for _, s := range []string{api.StateFailing, api.StateRecovered, api.StateUnknown} {
			m.reportsReceived.WithLabelValues(l.Name, s)
		}
		m.duplicates.WithLabelValues(l.Name)
		for _, r := range confirm.SuspectReasons {
			m.suspect.WithLabelValues(l.Name, r)
		}
		m.overload.WithLabelValues(l.Name)
	}
	return m
}

// handleMetrics serves the coordinator's own metrics, then the series of
// every target, in the Prometheus text format, gzip-compressed (on every
// core) when the scraper accepts it.
func (c *Coordinator) handleMetrics(w http.ResponseWriter, r *http.Request) {
	collector.ServeMetrics(w, r, c.reg, c.series, expfmt.NewFormat(expfmt.TypeTextPlain), c.logger)
}

// gatherer gathers what /metrics serves: the registry and the targets'
// series.
func (c *Coordinator) gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{c.reg, c.series.Gatherer()}
}
