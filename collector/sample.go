package collector

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantageprobe/vantage/prober/result"
)

// ConstMetric turns a probe result's sample into a const metric of its type,
// for the registries built per request (/probe, the coordinator's fan-out);
// a sample that makes no valid metric becomes an invalid one, which the
// registry reports.
func ConstMetric(s result.Sample) prometheus.Metric {
	desc := prometheus.NewDesc(s.Name, s.Help, s.LabelNames, nil)
	m, err := constMetric(desc, s)
	if err != nil {
		return prometheus.NewInvalidMetric(desc, err)
	}
	return m
}

func constMetric(desc *prometheus.Desc, s result.Sample) (prometheus.Metric, error) {
	switch s.Type {
	case result.Counter:
		return prometheus.NewConstMetric(desc, prometheus.CounterValue, s.Value, s.LabelValues...)
	case result.HistogramType:
		h := s.Histogram
		buckets := make(map[float64]uint64, len(h.UpperBounds))
		for i, ub := range h.UpperBounds {
			buckets[ub] = h.Cumulative[i]
		}
		return prometheus.NewConstHistogram(desc, h.Count, h.Sum, buckets, s.LabelValues...)
	}
	return prometheus.NewConstMetric(desc, prometheus.GaugeValue, s.Value, s.LabelValues...)
}

// typeName is a sample type's name in the exposition formats.
func typeName(t result.Type) string {
	switch t {
	case result.Counter:
		return "counter"
	case result.HistogramType:
		return "histogram"
	}
	return "gauge"
}
