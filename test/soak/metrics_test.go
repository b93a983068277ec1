package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeClient makes one request per connection, so that a scrape leaves
// no idle connection (an fd and goroutines) behind in the scraped process,
// and never asks for gzip.
var scrapeClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
}

// metrics are the series of one scrape, by family name.
type metrics map[string]*dto.MetricFamily

// scrape reads base's /metrics. With ownOnly it stops where the
// exporter's per-target table starts (its first probe_ family, written
// after the exporter's own registry): a cheap read however many targets
// are scheduled.
func scrape(ctx context.Context, base string, ownOnly bool) (metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	var text bytes.Buffer
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if ownOnly && startsTable(line) {
			break
		}
		text.Write(line)
		text.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s/metrics: %w", base, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(&text)
	if err != nil {
		return nil, fmt.Errorf("parsing %s/metrics: %w", base, err)
	}
	return fams, nil
}

func startsTable(line []byte) bool {
	for _, p := range [][]byte{[]byte("# HELP "), []byte("# TYPE ")} {
		line = bytes.TrimPrefix(line, p)
	}
	return bytes.HasPrefix(line, []byte("probe_"))
}

// sum adds the values of the series of name whose labels include match
// (name=value pairs); ok is false when there is no such series.
func (m metrics) sum(name string, match ...string) (total float64, ok bool) {
	for _, s := range m[name].GetMetric() {
		if hasLabels(s, match) {
			total += metricValue(s)
			ok = true
		}
	}
	return total, ok
}

// get is sum, 0 when no series matches.
func (m metrics) get(name string, match ...string) float64 {
	v, _ := m.sum(name, match...)
	return v
}

// each calls f with the labels and value of every series of name.
func (m metrics) each(name string, f func(labels map[string]string, v float64)) {
	for _, s := range m[name].GetMetric() {
		ls := make(map[string]string, len(s.GetLabel()))
		for _, l := range s.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		f(ls, metricValue(s))
	}
}

func hasLabels(s *dto.Metric, match []string) bool {
	for i := 0; i+1 < len(match); i += 2 {
		found := false
		for _, l := range s.GetLabel() {
			if l.GetName() == match[i] && l.GetValue() == match[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func metricValue(s *dto.Metric) float64 {
	switch {
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Untyped != nil:
		return s.GetUntyped().GetValue()
	}
	return 0
}

// usage is what a leak would make grow: a process's goroutines, open
// file descriptors, resident memory and heap goal (twice the heap that
// was live at the last GC, with GOGC=100). The exporter's check workers
// (vantage_scheduler_workers, a bounded pool whose size follows how many
// checks ran at once lately) are not counted among the goroutines.
type usage struct {
	Goroutines float64
	FDs        float64
	RSS        float64
	HeapGoal   float64
}

func usageOf(m metrics) usage {
	return usage{
		Goroutines: m.get("go_goroutines") - m.get("vantage_scheduler_workers"),
		FDs:        m.get("process_open_fds"),
		RSS:        m.get("process_resident_memory_bytes"),
		HeapGoal:   m.get("go_memstats_next_gc_bytes"),
	}
}

// floor takes n cheap scrapes of base, every gap, and returns the lowest
// value of each figure: what the process holds at rest, without the
// checks, scrapes and GC cycles that come and go on top of it.
func floor(ctx context.Context, base string, n int, gap time.Duration) (usage, error) {
	var low usage
	for i := range n {
		if i > 0 {
			if err := waitCtx(ctx, gap); err != nil {
				return low, err
			}
		}
		m, err := scrape(ctx, base, true)
		if err != nil {
			return low, err
		}
		u := usageOf(m)
		if i == 0 {
			low = u
			continue
		}
		low.Goroutines = min(low.Goroutines, u.Goroutines)
		low.FDs = min(low.FDs, u.FDs)
		low.RSS = min(low.RSS, u.RSS)
		low.HeapGoal = min(low.HeapGoal, u.HeapGoal)
	}
	return low, nil
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// thousands formats n with thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
