package result

import (
	"math"
	"slices"
	"time"
)

// ICMPPackets is what an icmp probe sending several echo requests found.
type ICMPPackets struct {
	// Host and IP name the target as smokeping_prober's host and ip
	// labels do: as given, and the address pinged.
	Host string `json:"host"`
	IP   string `json:"ip"`
	// Sent counts the echo requests sent, Duplicates the replies that
	// answered an already answered request.
	Sent       int `json:"sent"`
	Duplicates int `json:"duplicates"`
	// RTTs are the round-trip times of the answered requests, in the
	// order the replies arrived; their count is the packets received.
	RTTs []time.Duration `json:"rtts_ns,omitempty"`
}

// Received is the number of echo requests answered.
func (p *ICMPPackets) Received() int { return len(p.RTTs) }

// RTTStats are the minimum, mean, maximum and population standard
// deviation of round-trip times, as ping prints them.
type RTTStats struct {
	Min, Avg, Max, StdDev time.Duration
}

// Stats summarizes the round-trip times; ok is false without any.
func (p *ICMPPackets) Stats() (s RTTStats, ok bool) {
	if len(p.RTTs) == 0 {
		return s, false
	}
	var sum float64
	for _, d := range p.RTTs {
		sum += float64(d)
	}
	mean := sum / float64(len(p.RTTs))
	var sq float64
	for _, d := range p.RTTs {
		sq += (float64(d) - mean) * (float64(d) - mean)
	}
	return RTTStats{
		Min:    slices.Min(p.RTTs),
		Avg:    time.Duration(mean),
		Max:    slices.Max(p.RTTs),
		StdDev: time.Duration(math.Sqrt(sq / float64(len(p.RTTs)))),
	}, true
}

// SmokepingBuckets are smokeping_prober's default histogram buckets:
// 50µs doubling up to 26.2144s.
var SmokepingBuckets = func() []float64 {
	b := make([]float64, 20)
	for i := range b {
		b[i] = 0.00005 * math.Pow(2, float64(i))
	}
	return b
}()

func (p *ICMPPackets) samples(e emitter, hopLimit *int) {
	labels := []string{"host", p.Host, "ip", p.IP}
	e.counter("smokeping_requests_total", "Number of ping requests sent", float64(p.Sent), labels...)
	e.counter("smokeping_response_duplicates_total", "The number of duplicated response packets.", float64(p.Duplicates), labels...)
	seconds := make([]float64, len(p.RTTs))
	for i, d := range p.RTTs {
		seconds[i] = d.Seconds()
	}
	e.histogram("smokeping_response_duration_seconds", "A histogram of latencies for ping responses.", NewHistogram(SmokepingBuckets, seconds), labels...)
	if hopLimit != nil {
		e.gauge("smokeping_response_ttl", "The last response Time To Live (TTL).", float64(*hopLimit), labels...)
	}
	if p.Sent > 0 {
		e.gauge("probe_icmp_packet_loss_ratio", "Share of the echo requests of the probe that got no reply", float64(p.Sent-p.Received())/float64(p.Sent))
	}
	if s, ok := p.Stats(); ok {
		e.gauge("probe_icmp_rtt_min_seconds", "Shortest round-trip time of the probe's echo requests", s.Min.Seconds())
		e.gauge("probe_icmp_rtt_avg_seconds", "Mean round-trip time of the probe's echo requests", s.Avg.Seconds())
		e.gauge("probe_icmp_rtt_max_seconds", "Longest round-trip time of the probe's echo requests", s.Max.Seconds())
		e.gauge("probe_icmp_rtt_stddev_seconds", "Standard deviation of the round-trip times of the probe's echo requests", s.StdDev.Seconds())
	}
}
