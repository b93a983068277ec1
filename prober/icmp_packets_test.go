package prober

import (
	"math"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/bpf"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// typedResultCollector exposes a result's samples with their types, as
// /probe does.
type typedResultCollector struct{ r *result.Result }

func (c typedResultCollector) Describe(chan<- *prometheus.Desc) {}

func (c typedResultCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.Samples(func(s result.Sample) { ch <- collector.ConstMetric(s) })
}

// gatherResult gathers r's series as /probe exposes them, by name.
func gatherResult(tb testing.TB, r *result.Result) map[string]*dto.MetricFamily {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(typedResultCollector{r})
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func icmpPacketsModule(packets int, interval time.Duration, edit func(*config.ICMPProbe)) config.Module {
	return icmpTestModule(func(p *config.ICMPProbe) {
		p.Packets, p.PacketInterval = packets, interval
		if edit != nil {
			edit(p)
		}
	})
}

// checkPacketSeries checks the multi-packet series of r: their types and
// label sets, sent and received counts, and plausible round-trip times.
func checkPacketSeries(t *testing.T, r *result.Result, sent, received int) {
	t.Helper()
	checkPacketSeriesOf(t, r, "127.0.0.1", sent, received)
}

func checkPacketSeriesOf(t *testing.T, r *result.Result, target string, sent, received int) {
	t.Helper()
	mfs := gatherResult(t, r)
	for name, typ := range map[string]dto.MetricType{
		"smokeping_requests_total":            dto.MetricType_COUNTER,
		"smokeping_response_duplicates_total": dto.MetricType_COUNTER,
		"smokeping_response_duration_seconds": dto.MetricType_HISTOGRAM,
		"probe_icmp_packet_loss_ratio":        dto.MetricType_GAUGE,
		"probe_icmp_reply_hop_limit":          dto.MetricType_GAUGE,
		"smokeping_response_ttl":              dto.MetricType_GAUGE,
		"probe_icmp_rtt_min_seconds":          dto.MetricType_GAUGE,
		"probe_icmp_rtt_avg_seconds":          dto.MetricType_GAUGE,
		"probe_icmp_rtt_max_seconds":          dto.MetricType_GAUGE,
		"probe_icmp_rtt_stddev_seconds":       dto.MetricType_GAUGE,
		`probe_icmp_duration_seconds`:         dto.MetricType_GAUGE,
		"probe_success":                       dto.MetricType_GAUGE,
	} {
		mf, ok := mfs[name]
		if !ok {
			if received == 0 && (strings.HasPrefix(name, "probe_icmp_rtt_") || strings.Contains(name, "ttl") || strings.Contains(name, "hop_limit")) {
				continue
			}
			t.Errorf("series %s missing", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is a %s, want %s", name, mf.GetType(), typ)
		}
		if strings.HasPrefix(name, "smokeping_") {
			m := mf.GetMetric()[0]
			if got, want := labelsOf(m), `host="`+target+`",ip="`+target+`"`; got != want {
				t.Errorf("%s labels = %s", name, got)
			}
		}
	}
	if received > 0 {
		if _, ok := mfs["probe_icmp_rtt_min_seconds"]; !ok {
			return
		}
		minRTT := mfs["probe_icmp_rtt_min_seconds"].GetMetric()[0].GetGauge().GetValue()
		avg := mfs["probe_icmp_rtt_avg_seconds"].GetMetric()[0].GetGauge().GetValue()
		maxRTT := mfs["probe_icmp_rtt_max_seconds"].GetMetric()[0].GetGauge().GetValue()
		if !(0 < minRTT && minRTT <= avg && avg <= maxRTT && maxRTT < 1) {
			t.Errorf("rtt min %g avg %g max %g, want 0 < min <= avg <= max < 1s on loopback", minRTT, avg, maxRTT)
		}
	}
	if got := mfs["smokeping_requests_total"].GetMetric()[0].GetCounter().GetValue(); got != float64(sent) {
		t.Errorf("smokeping_requests_total = %v, want %d", got, sent)
	}
	h := mfs["smokeping_response_duration_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != uint64(received) || len(h.GetBucket()) != len(result.SmokepingBuckets) {
		t.Errorf("histogram count %d with %d buckets, want %d with %d", h.GetSampleCount(), len(h.GetBucket()), received, len(result.SmokepingBuckets))
	}
	wantLoss := 1 - float64(received)/float64(sent)
	if got := mfs["probe_icmp_packet_loss_ratio"].GetMetric()[0].GetGauge().GetValue(); math.Abs(got-wantLoss) > 1e-9 {
		t.Errorf("probe_icmp_packet_loss_ratio = %v, want %v", got, wantLoss)
	}
}

func labelsOf(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return strings.Join(parts, ",")
}

func TestICMPPackets(t *testing.T) {
	requireRawICMP(t)
	const packets, interval = 5, 30 * time.Millisecond
	sniffer := newICMPSniffer(t, 4)
	start := time.Now()
	r := runTestProbe(t, icmpPacketsModule(packets, interval, nil), "127.0.0.1", 3*time.Second)
	took := time.Since(start)
	requireReason(t, r, result.ReasonNone)
	checkPacketSeries(t, r, packets, packets)
	if took < (packets-1)*interval || took > 2*time.Second {
		t.Errorf("probe took %v, want at least %v for %d packets %v apart, and no wait for the deadline once all replied", took, (packets-1)*interval, packets, interval)
	}
	// Every request went out with the probe's ID and consecutive sequence
	// numbers.
	for i := range packets {
		sniffer.request(t, r.ICMP.ID, (r.ICMP.Sequence+i)&0xffff)
	}
	if got := r.ICMP.Packets.Duplicates; got != 0 {
		t.Errorf("duplicates = %d", got)
	}
}

func TestICMPPacketsIPv6(t *testing.T) {
	requireRawICMP(t)
	m := icmpPacketsModule(3, 20*time.Millisecond, func(p *config.ICMPProbe) { p.IPProtocol = "ip6" })
	r := runTestProbe(t, m, "::1", 3*time.Second)
	requireReason(t, r, result.ReasonNone)
	checkPacketSeriesOf(t, r, "::1", 3, 3)
}

func TestICMPPacketsDatagramSocket(t *testing.T) {
	allowPingSockets(t)
	m := icmpPacketsModule(4, 20*time.Millisecond, nil)
	r := probeModule(t, icmpProbeWithoutRaw(t, m), "127.0.0.1", 3*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.ICMP.Socket != "datagram" {
		t.Fatalf("socket = %q, want datagram", r.ICMP.Socket)
	}
	checkPacketSeries(t, r, 4, 4)
}

// lossyConn drops the echo requests whose index (from 0) drop selects and
// sends the others dup times.
type lossyConn struct {
	net.PacketConn
	mu   sync.Mutex
	n    int
	drop func(int) bool
	dup  int
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	c.mu.Lock()
	i := c.n
	c.n++
	c.mu.Unlock()
	if c.drop(i) {
		return len(b), nil
	}
	for range c.dup - 1 {
		if _, err := c.PacketConn.WriteTo(b, addr); err != nil {
			return 0, err
		}
	}
	return c.PacketConn.WriteTo(b, addr)
}

// lossyICMPProbe prepares m with its raw socket wrapped in a lossyConn.
func lossyICMPProbe(tb testing.TB, m config.Module, drop func(int) bool, dup int) *Module {
	tb.Helper()
	q, err := newICMPProber(m.ICMP)
	if err != nil {
		tb.Fatal(err)
	}
	q.listenRaw = func(family int, source string, df bool) (*icmpSocket, error) {
		s, err := listenRawICMP(family, source, df)
		if err == nil {
			s.conn = &lossyConn{PacketConn: s.conn, drop: drop, dup: dup}
		}
		return s, err
	}
	return &Module{Name: "test", Config: m, probe: q.probe}
}

func TestICMPPacketsLoss(t *testing.T) {
	requireRawICMP(t)
	m := icmpPacketsModule(4, 20*time.Millisecond, nil)
	start := time.Now()
	r := probeModule(t, lossyICMPProbe(t, m, func(i int) bool { return i%2 == 1 }, 1), "127.0.0.1", 400*time.Millisecond)
	took := time.Since(start)
	requireReason(t, r, result.ReasonNone)
	checkPacketSeries(t, r, 4, 2)
	if took < 350*time.Millisecond || took > 2*time.Second {
		t.Errorf("probe took %v; want it to wait for the lost replies until the 400ms deadline", took)
	}
}

func TestICMPPacketsAllLost(t *testing.T) {
	requireRawICMP(t)
	before := runtime.NumGoroutine()
	m := icmpPacketsModule(3, 20*time.Millisecond, nil)
	r := probeModule(t, lossyICMPProbe(t, m, func(int) bool { return true }, 1), "127.0.0.1", 300*time.Millisecond)
	requireReason(t, r, result.ReasonTimeout)
	checkPacketSeries(t, r, 3, 0)
	if _, ok := gatherResult(t, r)["probe_icmp_rtt_avg_seconds"]; ok {
		t.Error("round-trip statistics exported without any reply")
	}
	waitForGoroutinesAtMost(t, before)
}

func TestICMPPacketsDuplicates(t *testing.T) {
	requireRawICMP(t)
	m := icmpPacketsModule(3, 20*time.Millisecond, nil)
	r := probeModule(t, lossyICMPProbe(t, m, func(int) bool { return false }, 2), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	// Each request went out twice: three replies answer the requests; the
	// second replies still in flight when the last request is answered
	// are not waited for, so 0 to 3 of them are counted as duplicates.
	checkPacketSeries(t, r, 3, 3)
	if d := r.ICMP.Packets.Duplicates; d < 1 || d > 3 {
		t.Errorf("duplicates = %d, want 1 to 3", d)
	}
}

func TestICMPPacketsDeadlineCoversAllPackets(t *testing.T) {
	requireRawICMP(t)
	before := runtime.NumGoroutine()
	m := icmpPacketsModule(20, 100*time.Millisecond, nil)
	start := time.Now()
	r := runTestProbe(t, m, "127.0.0.1", 250*time.Millisecond)
	took := time.Since(start)
	requireReason(t, r, result.ReasonNone)
	if took > time.Second {
		t.Errorf("probe took %v past its 250ms deadline", took)
	}
	// Packets at 0, 100 and 200ms went out (the third may miss the
	// deadline on a loaded machine); the 4th was due after it.
	sent := r.ICMP.Packets.Sent
	if sent < 2 || sent > 3 {
		t.Fatalf("sent %d packets 100ms apart within 250ms", sent)
	}
	checkPacketSeries(t, r, sent, r.ICMP.Packets.Received())
	if r.ICMP.Packets.Received() < 2 {
		t.Errorf("%d replies to %d requests on loopback", r.ICMP.Packets.Received(), sent)
	}
	waitForGoroutinesAtMost(t, before)
}

func TestICMPSinglePacketHasNoPacketSeries(t *testing.T) {
	requireRawICMP(t)
	for _, packets := range []int{0, 1} {
		r := runTestProbe(t, icmpPacketsModule(packets, 0, nil), "127.0.0.1", 2*time.Second)
		requireReason(t, r, result.ReasonNone)
		for name := range seriesOfResult(r) {
			if strings.HasPrefix(name, "smokeping_") || strings.HasPrefix(name, "probe_icmp_rtt") || strings.HasPrefix(name, "probe_icmp_packet") {
				t.Errorf("packets: %d exports %s; a single packet keeps blackbox_exporter's series", packets, name)
			}
		}
		if r.ICMP.Packets != nil {
			t.Errorf("packets: %d recorded packet details %+v", packets, r.ICMP.Packets)
		}
	}
}

func TestICMPPacketsStats(t *testing.T) {
	ms := time.Millisecond
	p := &result.ICMPPackets{Sent: 5, RTTs: []time.Duration{4 * ms, 1 * ms, 3 * ms, 2 * ms}}
	s, ok := p.Stats()
	if !ok {
		t.Fatal("no stats")
	}
	want := result.RTTStats{Min: ms, Avg: 2500 * time.Microsecond, Max: 4 * ms, StdDev: time.Duration(math.Sqrt(1.25) * float64(ms))}
	if s != want {
		t.Errorf("stats = %+v, want %+v", s, want)
	}
	if _, ok := (&result.ICMPPackets{Sent: 2}).Stats(); ok {
		t.Error("stats without any round-trip time")
	}
	h := result.NewHistogram([]float64{0.001, 0.002, 0.004}, []float64{0.004, 0.001, 0.003, 0.002})
	if got := h.Cumulative; got[0] != 1 || got[1] != 2 || got[2] != 4 || h.Count != 4 || math.Abs(h.Sum-0.010) > 1e-12 {
		t.Errorf("histogram = %+v", h)
	}
	if err := testutil.CollectAndCompare(typedResultCollector{&result.Result{Prober: "icmp", ICMP: &result.ICMPDetails{Packets: p}}}, strings.NewReader(`
# HELP probe_icmp_packet_loss_ratio Share of the echo requests of the probe that got no reply
# TYPE probe_icmp_packet_loss_ratio gauge
probe_icmp_packet_loss_ratio 0.2
`), "probe_icmp_packet_loss_ratio"); err != nil {
		t.Error(err)
	}
}

func TestEchoReplyFilterAnySequence(t *testing.T) {
	msg := func(typ byte, id, seq int) []byte {
		return append(make([]byte, 20), typ, 0, 0, 0, byte(id>>8), byte(id), byte(seq>>8), byte(seq), 'x')
	}
	for _, tc := range []struct {
		name   string
		packet []byte
		pass   bool
	}{
		{"reply", msg(0, 7, 9), true},
		{"reply with another seq", msg(0, 7, 1000), true},
		{"reply with another id", msg(0, 8, 9), false},
		{"request", msg(8, 7, 9), false},
	} {
		tc.packet[0] = 0x45
		vm, err := bpf.NewVM(echoReplyFilter(true, 0, 7, -1))
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(tc.packet)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter kept %d bytes, want pass=%v", tc.name, n, tc.pass)
		}
	}
}
