// Package promtest queries a Prometheus the tests start, over its HTTP API
// as Grafana does, and runs the dashboards' queries against it
// (dashboards/README.md's query contract).
package promtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// API queries Prometheus over its HTTP API, as Grafana does.
type API struct {
	Base   string
	Client *http.Client
}

// Series is one series of a query result: an instant vector element (one
// point) or a range vector (many points).
type Series struct {
	Metric map[string]string
	Values []float64
}

// Finite reports whether the series has at least one value that is not NaN
// or infinite: something a panel can draw.
func (s Series) Finite() bool {
	for _, v := range s.Values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return true
		}
	}
	return false
}

// get calls a read endpoint and decodes its data.
func (p API) get(path string, params url.Values, data any) error {
	resp, err := p.Client.Get(p.Base + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %s: %.200s", path, resp.Status, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
	Stats      *struct {
		Samples struct {
			PeakSamples           int `json:"peakSamples"`
			TotalQueryableSamples int `json:"totalQueryableSamples"`
		} `json:"samples"`
	} `json:"stats"`
}

// Stats are the samples a query loaded, as Prometheus counts them
// against its --query.max-samples: the peak held at once, and the total.
type Stats struct{ Peak, Total int }

// Instant evaluates expr at time at.
func (p API) Instant(expr string, at time.Time) ([]Series, error) {
	ss, _, err := p.query("/api/v1/query", url.Values{"query": {expr}, "time": {Unix(at)}})
	return ss, err
}

// RangeQuery evaluates expr from start to end every step.
func (p API) RangeQuery(expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	ss, _, err := p.query("/api/v1/query_range", rangeParams(expr, start, end, step))
	return ss, err
}

// InstantStats is Instant, with the samples the query loaded.
func (p API) InstantStats(expr string, at time.Time) ([]Series, Stats, error) {
	return p.query("/api/v1/query", url.Values{"query": {expr}, "time": {Unix(at)}, "stats": {"all"}})
}

// RangeQueryStats is RangeQuery, with the samples the query loaded.
func (p API) RangeQueryStats(expr string, start, end time.Time, step time.Duration) ([]Series, Stats, error) {
	params := rangeParams(expr, start, end, step)
	params.Set("stats", "all")
	return p.query("/api/v1/query_range", params)
}

func rangeParams(expr string, start, end time.Time, step time.Duration) url.Values {
	return url.Values{"query": {expr}, "start": {Unix(start)}, "end": {Unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
}

func (p API) query(path string, params url.Values) ([]Series, Stats, error) {
	var d queryData
	if err := p.get(path, params, &d); err != nil {
		return nil, Stats{}, err
	}
	var st Stats
	if d.Stats != nil {
		st = Stats{Peak: d.Stats.Samples.PeakSamples, Total: d.Stats.Samples.TotalQueryableSamples}
	}
	ss, err := decodeResult(d)
	return ss, st, err
}

func decodeResult(d queryData) ([]Series, error) {
	switch d.ResultType {
	case "vector":
		var r []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &r); err != nil {
			return nil, err
		}
		out := make([]Series, 0, len(r))
		for _, s := range r {
			out = append(out, Series{Metric: s.Metric, Values: []float64{sampleValue(s.Value)}})
		}
		return out, nil
	case "matrix":
		var r []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		}
		if err := json.Unmarshal(d.Result, &r); err != nil {
			return nil, err
		}
		out := make([]Series, 0, len(r))
		for _, s := range r {
			vs := make([]float64, 0, len(s.Values))
			for _, v := range s.Values {
				vs = append(vs, sampleValue(v))
			}
			out = append(out, Series{Metric: s.Metric, Values: vs})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		return []Series{{Values: []float64{sampleValue(v)}}}, nil
	}
	return nil, fmt.Errorf("result type %q", d.ResultType)
}

// sampleValue reads the value of a [timestamp, "value"] pair; NaN when it
// does not parse.
func sampleValue(v [2]any) float64 {
	s, _ := v[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// Unix renders t as the API's seconds since the epoch.
func Unix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// Value evaluates expr now and returns its single value; ok is false when
// the result is not exactly one series.
func (p API) Value(expr string) (float64, bool, error) {
	r, err := p.Instant(expr, time.Now())
	if err != nil || len(r) != 1 {
		return 0, false, err
	}
	return r[0].Values[0], true, nil
}

// Exemplars returns the exemplars' labels of the series expr selects.
func (p API) Exemplars(expr string, start, end time.Time) ([]map[string]string, error) {
	var d []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	if err := p.get("/api/v1/query_exemplars", url.Values{"query": {expr}, "start": {Unix(start)}, "end": {Unix(end)}}, &d); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, s := range d {
		for _, e := range s.Exemplars {
			out = append(out, e.Labels)
		}
	}
	return out, nil
}

// ActiveTarget is one scrape target from /api/v1/targets.
type ActiveTarget struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

// Targets returns the active scrape targets.
func (p API) Targets() ([]ActiveTarget, error) {
	var d struct {
		Active []ActiveTarget `json:"activeTargets"`
	}
	err := p.get("/api/v1/targets", url.Values{"state": {"active"}}, &d)
	return d.Active, err
}

// Describe renders series compactly for messages.
func Describe(ss []Series) string {
	var b strings.Builder
	for i, s := range ss {
		if i == 5 {
			fmt.Fprintf(&b, " … (%d Series)", len(ss))
			break
		}
		last := math.NaN()
		if len(s.Values) > 0 {
			last = s.Values[len(s.Values)-1]
		}
		fmt.Fprintf(&b, " %v=%g", s.Metric, last)
	}
	if len(ss) == 0 {
		return " (no Series)"
	}
	return b.String()
}

// ActiveAlert is one alert from /api/v1/alerts.
type ActiveAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// Alerts returns the pending and firing alerts of every alerting rule.
func (p API) Alerts() ([]ActiveAlert, error) {
	var d struct {
		Alerts []ActiveAlert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", url.Values{}, &d)
	return d.Alerts, err
}
