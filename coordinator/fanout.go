package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/webserver"
	"github.com/vantageprobe/vantage/prober/result"
)

// handleProbe fans /probe?target=…&module=… out to every location through
// the check API, as verification rounds do, and answers with each
// location's series labelled location, plus the consensus: probe_success 0
// when at least min_failing_locations saw the target fail, 1 when that
// many failures are out of reach, absent when too many locations could not
// tell (no answer, or a failing canary).
func (c *Coordinator) handleProbe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	target, module := q.Get("target"), q.Get("module")
	switch {
	case target == "":
		http.Error(w, "Target parameter is missing", http.StatusBadRequest)
		return
	case module == "":
		http.Error(w, "Module parameter is missing", http.StatusBadRequest)
		return
	}
	conf := c.conf.Load()
	timeout := conf.Confirmation.VerifyTimeout
	scrape, ok, err := webserver.ScrapeTimeout(r.Header)
	switch {
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case ok && scrape <= c.opts.TimeoutOffset:
		http.Error(w, fmt.Sprintf("Scrape timeout %s is not longer than --timeout-offset %s", scrape, c.opts.TimeoutOffset), http.StatusBadRequest)
		return
	case ok:
		timeout = scrape - c.opts.TimeoutOffset
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	start := time.Now()

	key := confirm.Key{Target: target, Module: module}
	answers := make([]checkAnswer, len(conf.Locations))
	var wg sync.WaitGroup
	for i, l := range conf.Locations {
		wg.Go(func() {
			answers[i] = c.verifier.checkMembers(ctx, l.Name, c.members.urls(ctx, l.MemberURLs()), key, timeout)
		})
	}
	wg.Wait()

	var out probeSeries
	var failing, succeeding, unknown int
	for _, a := range answers {
		c.health.observe(a.Location, a.contact())
		switch a.Result {
		case confirm.OutcomeSuccess:
			succeeding++
		case confirm.OutcomeFailure:
			failing++
		default:
			unknown++
			c.logger.Debug("Location could not probe", "location", a.Location, "target", target, "module", module, "err", a.Error)
		}
		if a.result != nil {
			// A location whose canary fails still shows what it saw.
			a.result.Samples(func(s result.Sample) {
				s.LabelNames = append(s.LabelNames, "location")
				s.LabelValues = append(s.LabelValues, a.Location)
				out = append(out, s)
			})
		}
		answered := 0.0
		if a.Result != confirm.OutcomeUnknown {
			answered = 1
		}
		out.gauge("vantage_probe_location_answered", "Whether the location answered the probe (1) or could not tell (0).",
			answered, "location", a.Location)
	}
	switch confirm.Decide(conf.Confirmation.MinFailingLocations, failing, unknown) {
	case confirm.VerdictDown:
		out.gauge("probe_success", "Displays whether or not the probe was a success", 0)
	case confirm.VerdictUp:
		out.gauge("probe_success", "Displays whether or not the probe was a success", 1)
	}
	for _, v := range []struct {
		result string
		n      int
	}{{"success", succeeding}, {"failure", failing}, {"unknown", unknown}} {
		out.gauge("vantage_probe_locations", "Locations by what they saw of the target: success, failure, or unknown (no answer, or a failing canary).",
			float64(v.n), "result", v.result)
	}
	out.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds", time.Since(start).Seconds())

	// A fresh registry per request, as the exporter's /probe: promhttp
	// negotiates the format (text, OpenMetrics).
	reg := prometheus.NewRegistry()
	reg.MustRegister(out)
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(c.logger.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}).ServeHTTP(w, r)
}

// probeSeries is the fan-out's answer: every location's samples and the
// consensus, rendered as const gauges.
type probeSeries []result.Sample

func (p *probeSeries) gauge(name, help string, value float64, labelPairs ...string) {
	s := result.Sample{Name: name, Help: help, Value: value}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		s.LabelNames = append(s.LabelNames, labelPairs[i])
		s.LabelValues = append(s.LabelValues, labelPairs[i+1])
	}
	*p = append(*p, s)
}

// Describe implements prometheus.Collector; the series vary per request,
// so the collector is unchecked.
func (probeSeries) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (p probeSeries) Collect(ch chan<- prometheus.Metric) {
	for _, s := range p {
		ch <- collector.ConstMetric(s)
	}
}
