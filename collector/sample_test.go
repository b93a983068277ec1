package collector

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/prober/result"
)

func icmpPacketsResult() *result.Result {
	ms := time.Millisecond
	hop := 64
	return &result.Result{Prober: "icmp", Success: true, Duration: 50 * ms,
		ICMP: &result.ICMPDetails{ReplyHopLimit: &hop, Packets: &result.ICMPPackets{
			Host: "gw.example", IP: "127.0.0.1", Sent: 4, Duplicates: 1,
			RTTs: []time.Duration{ms / 10, ms / 5, 30 * ms},
		}},
	}
}

// TestTypedSamples renders counters and histograms of a result as the
// same families, with the same values, on /probe (ConstMetric) and on the
// scheduled results' /metrics (the table).
func TestTypedSamples(t *testing.T) {
	r := icmpPacketsResult()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(probeResult{r})
	probe, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}

	tab := NewTable(prometheus.NewRegistry())
	row := Row{Module: "icmp_smoke", Target: "gw.example"}
	tab.Sync([]Row{row})
	tab.Record(checkOf(row, Check{Result: r, Attempts: 1}))
	var b bytes.Buffer
	if _, err := tab.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	scheduled, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, b.String())
	}

	for _, mf := range probe {
		got, ok := scheduled[mf.GetName()]
		if !ok {
			t.Errorf("%s is on /probe but not in the table", mf.GetName())
			continue
		}
		if got.GetType() != mf.GetType() {
			t.Errorf("%s: table type %s, /probe type %s", mf.GetName(), got.GetType(), mf.GetType())
		}
		want, have := mf.GetMetric()[0], got.GetMetric()[0]
		if labels := labelString(have); labels != `host="gw.example",ip="127.0.0.1",module="icmp_smoke",target="gw.example"` && strings.HasPrefix(mf.GetName(), "smokeping_") {
			t.Errorf("%s labels in the table: %s", mf.GetName(), labels)
		}
		have.Label, want.Label = nil, nil
		if hh := have.GetHistogram(); hh != nil {
			// The text format spells out the +Inf bucket that a gathered
			// histogram implies.
			hh.Bucket = hh.Bucket[:len(hh.Bucket)-1]
		}
		if have.String() != want.String() {
			t.Errorf("%s differs:\n table: %s\n/probe: %s", mf.GetName(), have, want)
		}
	}
	h := scheduled["smokeping_response_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || h.GetBucket()[0].GetCumulativeCount() != 0 || h.GetBucket()[1].GetCumulativeCount() != 1 ||
		h.GetBucket()[2].GetCumulativeCount() != 2 || len(h.GetBucket()) != 20 || h.GetSampleSum() != 0.0303 {
		t.Errorf("histogram = %v", h)
	}
	if c := scheduled["smokeping_requests_total"]; c.GetType() != dto.MetricType_COUNTER || c.GetMetric()[0].GetCounter().GetValue() != 4 {
		t.Errorf("smokeping_requests_total = %v", c)
	}

	// OpenMetrics names the counter family without _total and parses.
	b.Reset()
	if _, err := tab.WriteFormat(&b, FormatOpenMetrics); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "# TYPE smokeping_requests counter\n") || !strings.Contains(b.String(), "# TYPE smokeping_response_duration_seconds histogram\n") {
		t.Errorf("OpenMetrics rendering lacks the counter or histogram family:\n%s", b.String())
	}
}

type probeResult struct{ r *result.Result }

func (probeResult) Describe(chan<- *prometheus.Desc) {}

func (p probeResult) Collect(ch chan<- prometheus.Metric) {
	p.r.Samples(func(s result.Sample) { ch <- ConstMetric(s) })
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
