package result

import (
	"fmt"
	"hash/fnv"
	"net"
	"strings"
	"time"
)

// Sample is one series rendered from a Result: a blackbox_exporter series
// name, its labels and its value. /probe turns samples into const metrics of
// a fresh registry; the scheduled-results collector adds target and module
// labels to the same samples.
type Sample struct {
	Name        string
	Help        string
	LabelNames  []string
	LabelValues []string
	// Value is the gauge's or counter's value; a histogram's count.
	Value float64
	// Type is the kind of series: a gauge unless set.
	Type Type
	// Histogram holds a Histogram sample's buckets and sum.
	Histogram *Histogram
}

// Type is the metric type of a sample.
type Type int

// The metric types a sample may have.
const (
	Gauge Type = iota
	Counter
	HistogramType
)

// Histogram is a histogram's state: cumulative counts per upper bound (the
// +Inf bucket implied by Count), the observations' count and sum.
type Histogram struct {
	UpperBounds []float64
	Cumulative  []uint64
	Count       uint64
	Sum         float64
}

// NewHistogram counts values into buckets with the given upper bounds,
// which must be sorted ascending.
func NewHistogram(upperBounds []float64, values []float64) *Histogram {
	h := &Histogram{UpperBounds: upperBounds, Cumulative: make([]uint64, len(upperBounds))}
	for _, v := range values {
		h.Count++
		h.Sum += v
		for i, ub := range upperBounds {
			if v <= ub {
				h.Cumulative[i]++
			}
		}
	}
	return h
}

// String renders the sample's series as name{label="value",...}, labels in
// the order the prober emits them.
func (s Sample) String() string {
	if len(s.LabelNames) == 0 {
		return s.Name
	}
	var b strings.Builder
	b.WriteString(s.Name)
	b.WriteByte('{')
	for i, n := range s.LabelNames {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", n, s.LabelValues[i])
	}
	b.WriteByte('}')
	return b.String()
}

// emitter renders samples through a callback.
type emitter func(Sample)

func (e emitter) gauge(name, help string, value float64, labelPairs ...string) {
	e.typed(Sample{Name: name, Help: help, Value: value}, labelPairs)
}

func (e emitter) counter(name, help string, value float64, labelPairs ...string) {
	e.typed(Sample{Name: name, Help: help, Value: value, Type: Counter}, labelPairs)
}

func (e emitter) histogram(name, help string, h *Histogram, labelPairs ...string) {
	e.typed(Sample{Name: name, Help: help, Value: float64(h.Count), Type: HistogramType, Histogram: h}, labelPairs)
}

func (e emitter) typed(s Sample, labelPairs []string) {
	for i := 0; i+1 < len(labelPairs); i += 2 {
		s.LabelNames = append(s.LabelNames, labelPairs[i])
		s.LabelValues = append(s.LabelValues, labelPairs[i+1])
	}
	e(s)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return float64(time.Time{}.Unix())
	}
	return float64(t.UnixNano()) / 1e9
}

// phaseSeries names the per-phase duration series of each prober.
var phaseSeries = map[string]struct{ name, help string }{
	"http": {"probe_http_duration_seconds", "Duration of http request by phase, summed over all redirects"},
	"dns":  {"probe_dns_duration_seconds", "Duration of DNS request by phase"},
	"icmp": {"probe_icmp_duration_seconds", "Duration of icmp request by phase"},
	"grpc": {"probe_grpc_duration_seconds", "Duration of gRPC request by phase"},

	"http_steps": {"probe_http_duration_seconds", "Duration of http request by phase, summed over all redirects"},
}

// Samples renders the result as blackbox_exporter's series for its prober,
// plus probe_failure_info{reason} when the probe failed.
func (r *Result) Samples(fn func(Sample)) {
	e := emitter(fn)
	e.gauge("probe_success", "Displays whether or not the probe was a success", boolValue(r.Success))
	e.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds", r.Duration.Seconds())
	if r.Timeout > 0 {
		e.gauge("probe_timeout_seconds", "Returns how long the probe will wait before giving up in seconds", r.Timeout.Seconds())
	}
	if !r.Success && r.Reason != ReasonNone {
		e.gauge("probe_failure_info", "Why the probe failed, from a fixed vocabulary of reasons", 1, "reason", string(r.Reason))
	}
	if ps, ok := phaseSeries[r.Prober]; ok {
		for _, p := range r.Phases {
			e.gauge(ps.name, ps.help, p.Duration.Seconds(), "phase", p.Name)
		}
	}
	if r.Resolve != nil {
		r.Resolve.samples(e)
	}
	if r.TLS != nil {
		r.TLS.samples(e)
	}
	switch {
	case r.HTTP != nil:
		r.HTTP.samples(e, r)
	case r.TCP != nil:
		r.TCP.samples(e, r)
	case r.DNS != nil:
		r.DNS.samples(e, r)
	case r.ICMP != nil:
		r.ICMP.samples(e, r)
	case r.GRPC != nil:
		r.GRPC.samples(e, r)
	case r.HTTPSteps != nil:
		r.HTTPSteps.samples(e)
	case r.Websocket != nil:
		r.Websocket.samples(e)
	}
}

// ResolveDetails is the resolution of the target's host name.
type ResolveDetails struct {
	Host       string        `json:"host"`
	IP         string        `json:"ip,omitempty"`
	IPProtocol int           `json:"ip_protocol,omitempty"` // 4 or 6 once resolved
	Lookup     time.Duration `json:"lookup_ns"`
}

func (d *ResolveDetails) samples(e emitter) {
	e.gauge("probe_dns_lookup_time_seconds", "Returns the time taken for probe dns lookup in seconds", d.Lookup.Seconds())
	e.gauge("probe_ip_protocol", "Specifies whether probe ip protocol is IP4 or IP6", float64(d.IPProtocol))
	e.gauge("probe_ip_addr_hash", "Specifies the hash of IP address. It's useful to detect if the IP address changes.", ipHash(d.IP))
}

// ipHash hashes the address bytes (4 for IPv4, 16 for IPv6) with FNV-32a,
// as blackbox_exporter does, so the series has the same value in both.
func ipHash(ip string) float64 {
	parsed := net.ParseIP(ip)
	if parsed == nil {
		return 0
	}
	raw := []byte(parsed.To16())
	if v4 := parsed.To4(); v4 != nil {
		raw = v4
	}
	h := fnv.New32a()
	h.Write(raw)
	return float64(h.Sum32())
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
