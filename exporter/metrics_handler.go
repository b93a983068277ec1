package exporter

import (
	"net/http"

	"github.com/prometheus/common/expfmt"

	"github.com/vantageprobe/vantage/collector"
)

// handleMetrics serves the exporter's own metrics followed by the latest
// result of every scheduled target, in the Prometheus text format, or, with
// tracing on and when the scraper asks for it, in OpenMetrics, the format
// that carries the phase histograms' trace_id exemplars.
func (e *Exporter) handleMetrics(w http.ResponseWriter, r *http.Request) {
	collector.ServeMetrics(w, r, e.reg, e.table, e.metricsFormat(r), e.logger)
}

// metricsFormat negotiates the exposition format of /metrics: OpenMetrics
// when tracing is on and the scraper accepts it, the text format otherwise.
func (e *Exporter) metricsFormat(r *http.Request) expfmt.Format {
	if e.tracing.Enabled() {
		f := expfmt.NegotiateAccept(r.Header, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText)
		if f.FormatType() == expfmt.TypeOpenMetrics {
			return f
		}
	}
	return expfmt.NewFormat(expfmt.TypeTextPlain)
}
