package compat

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// smokepingBinary is where Debian's prometheus-smokeping-prober package
// installs smokeping_prober, the reference for vantage's multi-packet icmp
// series.
const smokepingBinary = "/usr/bin/prometheus-smokeping-prober"

// smokepingFamilies are the families smokeping_prober 0.6.1 exposes per
// host that vantage's multi-packet icmp probe must expose alike.
var smokepingFamilies = []string{
	"smokeping_requests_total",
	"smokeping_response_duplicates_total",
	"smokeping_response_duration_seconds",
	"smokeping_response_ttl",
}

// TestSmokepingCompat pings 127.0.0.1 with Debian's smokeping_prober and
// with a vantage icmp module sending several packets, and compares the
// smokeping_* families: each must exist in both with the same type, help,
// label names and values (host, ip), and histogram buckets; the values
// must be plausible for loopback in both (every request answered, no
// duplicates, sub-10ms round trips, the same TTL). smokeping_prober's
// counters run for its lifetime while vantage's cover one probe, so counts
// are compared to each exporter's own request count, not to each other.
func TestSmokepingCompat(t *testing.T) {
	if _, err := os.Stat(smokepingBinary); err != nil {
		t.Fatalf("%s is missing (%v): the comparison needs Debian's smokeping_prober; "+
			"install the Debian package prometheus-smokeping-prober", smokepingBinary, err)
	}
	dir := t.TempDir()
	spConfig := filepath.Join(dir, "smokeping_prober.yml")
	if err := os.WriteFile(spConfig, []byte("targets: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const packets = 5
	vtConfig := filepath.Join(dir, "vantage.yml")
	if err := os.WriteFile(vtConfig, fmt.Appendf(nil, `modules:
  icmp_smoke:
    prober: icmp
    timeout: 3s
    icmp:
      preferred_ip_protocol: ip4
      packets: %d
      packet_interval: 50ms
`, packets), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := testbin.FreeAddr(t)
	args := []string{"--config.file=" + spConfig, "--web.listen-address=" + addr, "--ping.interval=50ms"}
	if os.Geteuid() == 0 {
		args = append(args, "--privileged")
	}
	p := testbin.StartReady(t, "smokeping_prober", exec.Command(smokepingBinary, append(args, "127.0.0.1")...), "http://"+addr+"/metrics")
	var sp map[string]*dto.MetricFamily
	testbin.WaitFor(t, "smokeping_prober's first replies", 10*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("smokeping_prober exited: %v", p.Err())
		}
		var err error
		if sp, err = scrapeFamilies("http://" + addr + "/metrics"); err != nil {
			return err
		}
		h := familyMetric(sp, "smokeping_response_duration_seconds")
		if h == nil || h.GetHistogram().GetSampleCount() < packets {
			return fmt.Errorf("fewer than %d replies so far", packets)
		}
		return nil
	})

	vt, err := probe(t.Context(), startVantage(t, vtConfig), "icmp_smoke", "127.0.0.1", false)
	if err != nil {
		t.Fatalf("vantage: %v", err)
	}
	if v, _ := familyValue(vt.families, "probe_success"); v != 1 {
		t.Fatalf("vantage probe_success %v:\n%s", v, vt.raw)
	}
	for _, name := range smokepingFamilies {
		want, got := sp[name], vt.families[name]
		switch {
		case want == nil:
			t.Errorf("smokeping_prober exposes no %s", name)
			continue
		case got == nil:
			t.Errorf("vantage exposes no %s", name)
			continue
		}
		if got.GetType() != want.GetType() || got.GetHelp() != want.GetHelp() {
			t.Errorf("%s: vantage %s %q, smokeping_prober %s %q", name, got.GetType(), got.GetHelp(), want.GetType(), want.GetHelp())
		}
		if g, w := metricLabels(got.GetMetric()[0]), metricLabels(want.GetMetric()[0]); g != w {
			t.Errorf("%s labels: vantage {%s}, smokeping_prober {%s}", name, g, w)
		}
	}
	checkSmokepingValues(t, "smokeping_prober", sp, 0)
	checkSmokepingValues(t, "vantage", vt.families, packets)

	gh, wh := familyMetric(vt.families, "smokeping_response_duration_seconds").GetHistogram(), familyMetric(sp, "smokeping_response_duration_seconds").GetHistogram()
	if !slices.Equal(upperBounds(gh), upperBounds(wh)) {
		t.Errorf("histogram buckets: vantage %v, smokeping_prober %v", upperBounds(gh), upperBounds(wh))
	}
	if g, w := familyMetric(vt.families, "smokeping_response_ttl").GetGauge().GetValue(), familyMetric(sp, "smokeping_response_ttl").GetGauge().GetValue(); g != w {
		t.Errorf("smokeping_response_ttl: vantage %v, smokeping_prober %v", g, w)
	}
	for _, name := range []string{"probe_icmp_packet_loss_ratio", "probe_icmp_rtt_min_seconds", "probe_icmp_rtt_avg_seconds", "probe_icmp_rtt_max_seconds", "probe_icmp_rtt_stddev_seconds"} {
		if _, ok := familyValue(vt.families, name); !ok {
			t.Errorf("vantage exposes no %s", name)
		}
	}
	if loss, _ := familyValue(vt.families, "probe_icmp_packet_loss_ratio"); loss != 0 {
		t.Errorf("vantage loss ratio %v on loopback", loss)
	}
	avg, _ := familyValue(vt.families, "probe_icmp_rtt_avg_seconds")
	if h := gh; math.Abs(avg-h.GetSampleSum()/float64(h.GetSampleCount())) > 1e-9 {
		t.Errorf("probe_icmp_rtt_avg_seconds %v is not the histogram's mean %v", avg, h.GetSampleSum()/float64(h.GetSampleCount()))
	}
}

// checkSmokepingValues checks that the smokeping_* values are those of
// pinging loopback: some requests answered (exactly wantRequests, all
// answered, unless 0), no duplicates, and round trips under 10ms.
func checkSmokepingValues(t *testing.T, who string, fams map[string]*dto.MetricFamily, wantRequests int) {
	t.Helper()
	requests := familyMetric(fams, "smokeping_requests_total").GetCounter().GetValue()
	h := familyMetric(fams, "smokeping_response_duration_seconds").GetHistogram()
	replies := float64(h.GetSampleCount())
	switch {
	case wantRequests > 0 && (requests != float64(wantRequests) || replies != requests):
		t.Errorf("%s: %v replies to %v requests, want every one of %d answered on loopback", who, replies, requests, wantRequests)
	// smokeping_prober's requests in flight, and those it sends before
	// its receiver runs, have no reply when it is scraped.
	case replies < 1 || replies > requests:
		t.Errorf("%s: %v replies to %v requests on loopback", who, replies, requests)
	}
	t.Logf("%s: %v requests, %v replies, mean round trip %.6fs", who, requests, replies, h.GetSampleSum()/replies)
	if mean := h.GetSampleSum() / replies; mean <= 0 || mean > 0.01 {
		t.Errorf("%s: mean round trip %vs, want between 0 and 10ms on loopback", who, mean)
	}
	if d := familyMetric(fams, "smokeping_response_duplicates_total").GetCounter().GetValue(); d != 0 {
		t.Errorf("%s: %v duplicates on loopback", who, d)
	}
}

func scrapeFamilies(url string) (map[string]*dto.MetricFamily, error) {
	client := &http.Client{Timeout: probeClientTimeout}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// familyMetric is the first metric of a family, nil when absent.
func familyMetric(fams map[string]*dto.MetricFamily, name string) *dto.Metric {
	if mf := fams[name]; mf != nil && len(mf.GetMetric()) > 0 {
		return mf.GetMetric()[0]
	}
	return nil
}

func metricLabels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func upperBounds(h *dto.Histogram) []float64 {
	var out []float64
	for _, b := range h.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) {
			out = append(out, b.GetUpperBound())
		}
	}
	return out
}
