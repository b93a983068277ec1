package e2e

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

// promAPI queries Prometheus over its HTTP API, as Grafana does.
type promAPI struct {
	base   string
	client *http.Client
}

// series is one series of a query result: an instant vector element (one
// point) or a range vector (many points).
type series struct {
	Metric map[string]string
	Values []float64
}

// finite reports whether the series has at least one value that is not NaN
// or infinite: something a panel can draw.
func (s series) finite() bool {
	for _, v := range s.Values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return true
		}
	}
	return false
}

// get calls a read endpoint and decodes its data.
func (p promAPI) get(path string, params url.Values, data any) error {
	resp, err := p.client.Get(p.base + path + "?" + params.Encode())
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
}

// instant evaluates expr at time at.
func (p promAPI) instant(expr string, at time.Time) ([]series, error) {
	var d queryData
	if err := p.get("/api/v1/query", url.Values{"query": {expr}, "time": {unix(at)}}, &d); err != nil {
		return nil, err
	}
	return decodeResult(d)
}

// rangeQuery evaluates expr from start to end every step.
func (p promAPI) rangeQuery(expr string, start, end time.Time, step time.Duration) ([]series, error) {
	var d queryData
	params := url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := p.get("/api/v1/query_range", params, &d); err != nil {
		return nil, err
	}
	return decodeResult(d)
}

func decodeResult(d queryData) ([]series, error) {
	switch d.ResultType {
	case "vector":
		var r []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &r); err != nil {
			return nil, err
		}
		out := make([]series, 0, len(r))
		for _, s := range r {
			out = append(out, series{Metric: s.Metric, Values: []float64{sampleValue(s.Value)}})
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
		out := make([]series, 0, len(r))
		for _, s := range r {
			vs := make([]float64, 0, len(s.Values))
			for _, v := range s.Values {
				vs = append(vs, sampleValue(v))
			}
			out = append(out, series{Metric: s.Metric, Values: vs})
		}
		return out, nil
	case "scalar":
		var v [2]any
		if err := json.Unmarshal(d.Result, &v); err != nil {
			return nil, err
		}
		return []series{{Values: []float64{sampleValue(v)}}}, nil
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

func unix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// value evaluates expr now and returns its single value; ok is false when
// the result is not exactly one series.
func (p promAPI) value(expr string) (float64, bool, error) {
	r, err := p.instant(expr, time.Now())
	if err != nil || len(r) != 1 {
		return 0, false, err
	}
	return r[0].Values[0], true, nil
}

// exemplars returns the exemplars' labels of the series expr selects.
func (p promAPI) exemplars(expr string, start, end time.Time) ([]map[string]string, error) {
	var d []struct {
		SeriesLabels map[string]string `json:"seriesLabels"`
		Exemplars    []struct {
			Labels map[string]string `json:"labels"`
		} `json:"exemplars"`
	}
	if err := p.get("/api/v1/query_exemplars", url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)}}, &d); err != nil {
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

// activeTarget is one scrape target from /api/v1/targets.
type activeTarget struct {
	Labels    map[string]string `json:"labels"`
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"`
	LastError string            `json:"lastError"`
}

func (p promAPI) targets() ([]activeTarget, error) {
	var d struct {
		Active []activeTarget `json:"activeTargets"`
	}
	err := p.get("/api/v1/targets", url.Values{"state": {"active"}}, &d)
	return d.Active, err
}

// describe renders series compactly for messages.
func describe(ss []series) string {
	var b strings.Builder
	for i, s := range ss {
		if i == 5 {
			fmt.Fprintf(&b, " … (%d series)", len(ss))
			break
		}
		last := math.NaN()
		if len(s.Values) > 0 {
			last = s.Values[len(s.Values)-1]
		}
		fmt.Fprintf(&b, " %v=%g", s.Metric, last)
	}
	if len(ss) == 0 {
		return " (no series)"
	}
	return b.String()
}

// activeAlert is one alert from /api/v1/alerts.
type activeAlert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"`
	ActiveAt time.Time         `json:"activeAt"`
}

// alerts returns the pending and firing alerts of every alerting rule.
func (p promAPI) alerts() ([]activeAlert, error) {
	var d struct {
		Alerts []activeAlert `json:"alerts"`
	}
	err := p.get("/api/v1/alerts", url.Values{}, &d)
	return d.Alerts, err
}
