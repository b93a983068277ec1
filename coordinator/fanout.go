package coordinator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// maxProbeAnswerBytes bounds one location's /probe answer.
const maxProbeAnswerBytes = 16 << 20

// locationProbe is one location's answer to a fanned-out /probe.
type locationProbe struct {
	name     string
	families map[string]*dto.MetricFamily
	err      error
}

// handleProbe fans /probe?target=…&module=… out to every location and
// answers with each location's series labelled location, plus the
// consensus: probe_success 0 when at least min_failing_locations saw the
// target fail, 1 when that many failures are out of reach, absent when
// too many locations could not tell.
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

	answers := make([]locationProbe, len(conf.Locations))
	var wg sync.WaitGroup
	for i, l := range conf.Locations {
		wg.Go(func() {
			fams, err := c.probeLocation(ctx, l.URL, target, module, timeout)
			answers[i] = locationProbe{name: l.Name, families: fams, err: err}
		})
	}
	wg.Wait()

	out := map[string]*dto.MetricFamily{}
	var failing, succeeding, unknown int
	for _, a := range answers {
		success, known := a.verdict()
		if known && c.health.canaryFailing(a.name) {
			known = false
			a.err = api.ErrCanaryFailing
		}
		switch {
		case !known:
			unknown++
			if a.err != nil {
				c.logger.Debug("Location could not probe", "location", a.name, "target", target, "module", module, "err", a.err)
			}
		case success:
			succeeding++
		default:
			failing++
		}
		for name, f := range a.families {
			merged, ok := out[name]
			if !ok {
				merged = &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
				out[name] = merged
			}
			for _, m := range f.Metric {
				m.Label = append(m.Label, &dto.LabelPair{Name: proto.String("location"), Value: proto.String(a.name)})
				merged.Metric = append(merged.Metric, m)
			}
		}
		answered := 0.0
		if known {
			answered = 1
		}
		addGauge(out, "vantage_probe_location_answered", "Whether the location answered the probe (1) or could not tell (0).",
			answered, "location", a.name)
	}
	switch confirm.Decide(conf.Confirmation.MinFailingLocations, failing, unknown) {
	case confirm.VerdictDown:
		addGauge(out, "probe_success", "Displays whether or not the probe was a success", 0)
	case confirm.VerdictUp:
		addGauge(out, "probe_success", "Displays whether or not the probe was a success", 1)
	}
	for _, v := range []struct {
		result string
		n      int
	}{{"success", succeeding}, {"failure", failing}, {"unknown", unknown}} {
		addGauge(out, "vantage_probe_locations", "Locations by what they saw of the target: success, failure, or unknown (no answer, or a failing canary).",
			float64(v.n), "result", v.result)
	}
	addGauge(out, "probe_duration_seconds", "Returns how long the probe took to complete in seconds", time.Since(start).Seconds())

	format := expfmt.NegotiateIncludingOpenMetrics(r.Header)
	if format.FormatType() == expfmt.TypeProtoDelim {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := enc.Encode(out[name]); err != nil {
			c.logger.Error("Writing a /probe answer failed", "err", err)
			return
		}
	}
	if closer, ok := enc.(expfmt.Closer); ok {
		_ = closer.Close()
	}
}

// verdict reads the location's probe_success; known is false when the
// location did not answer or answered without it.
func (a *locationProbe) verdict() (success, known bool) {
	if a.err != nil {
		return false, false
	}
	f, ok := a.families["probe_success"]
	if !ok || len(f.Metric) != 1 || f.Metric[0].GetGauge() == nil {
		a.err = fmt.Errorf("the answer has no probe_success")
		return false, false
	}
	return f.Metric[0].GetGauge().GetValue() == 1, true
}

// probeLocation runs /probe at one location and parses its series.
func (c *Coordinator) probeLocation(ctx context.Context, baseURL, target, module string, timeout time.Duration) (map[string]*dto.MetricFamily, error) {
	u := strings.TrimSuffix(baseURL, "/") + "/probe?" + url.Values{"target": {target}, "module": {module}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	// The exporter subtracts its own --timeout-offset from this.
	webserver.SetScrapeTimeout(req.Header, timeout)
	resp, err := c.client.Load().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("/probe answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(io.LimitReader(resp.Body, maxProbeAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("parsing the /probe answer: %w", err)
	}
	return fams, nil
}

// addGauge adds one gauge sample with the given label pairs to fams.
func addGauge(fams map[string]*dto.MetricFamily, name, help string, value float64, labelPairs ...string) {
	f, ok := fams[name]
	if !ok {
		f = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: dto.MetricType_GAUGE.Enum()}
		fams[name] = f
	}
	m := &dto.Metric{Gauge: &dto.Gauge{Value: proto.Float64(value)}}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labelPairs[i]), Value: proto.String(labelPairs[i+1])})
	}
	f.Metric = append(f.Metric, m)
}
