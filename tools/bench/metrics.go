package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// schedMetrics are the exporter's scheduler series at one moment.
type schedMetrics struct {
	Checks   float64 // vantage_scheduler_checks_total
	Missed   map[string]float64
	InFlight float64
	Targets  float64
	LagCount float64
	LagLE    map[float64]float64 // cumulative bucket counts by upper bound
	// The Go runtime's figures, read in the same pass (go_* precede
	// vantage_scheduler_*).
	Goroutines, StackInuse, HeapInuse, HeapAlloc float64
}

func (m schedMetrics) missed() float64 {
	var n float64
	for _, v := range m.Missed {
		n += v
	}
	return n
}

// scrapeScheduler reads /metrics only as far as the vantage_scheduler_
// families. The exporter writes its own registry (sorted by name) before
// the per-target table, so the connection is closed long before the
// table: a cheap scrape even with 100,000 targets.
func scrapeScheduler(ctx context.Context, base string) (schedMetrics, error) {
	m := schedMetrics{Missed: map[string]float64{}, LagLE: map[float64]float64{}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	req.Close = true
	resp, err := plainClient(30 * time.Second).Do(req)
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := false
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, ok := parseSample(line)
		if !ok {
			continue
		}
		switch name {
		case "go_goroutines":
			m.Goroutines = value
		case "go_memstats_stack_inuse_bytes":
			m.StackInuse = value
		case "go_memstats_heap_inuse_bytes":
			m.HeapInuse = value
		case "go_memstats_heap_alloc_bytes":
			m.HeapAlloc = value
		}
		if !strings.HasPrefix(name, "vantage_scheduler_") {
			if seen {
				break
			}
			continue
		}
		seen = true
		switch name {
		case "vantage_scheduler_checks_total":
			m.Checks = value
		case "vantage_scheduler_missed_checks_total":
			m.Missed[label(labels, "reason")] = value
		case "vantage_scheduler_in_flight":
			m.InFlight = value
		case "vantage_scheduler_targets":
			m.Targets = value
		case "vantage_scheduler_lag_seconds_count":
			m.LagCount = value
		case "vantage_scheduler_lag_seconds_bucket":
			le, err := strconv.ParseFloat(label(labels, "le"), 64)
			if err == nil {
				m.LagLE[le] = value
			}
		}
	}
	if !seen {
		return m, fmt.Errorf("no vantage_scheduler_ series on %s/metrics", base)
	}
	return m, sc.Err()
}

// plainClient makes one request per connection and never asks for gzip
// behind the caller's back (http.Transport does unless told not to).
func plainClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableCompression: true, DisableKeepAlives: true}}
}

// parseSample splits `name{labels} value` (no timestamp).
func parseSample(line string) (name, labels string, value float64, ok bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", "", 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", "", 0, false
	}
	head := line[:sp]
	if i := strings.IndexByte(head, '{'); i >= 0 {
		return head[:i], head[i+1 : len(head)-1], v, true
	}
	return head, "", v, true
}

// label returns the value of label k in `a="x",b="y"`. Values in these
// series (module names, farm URLs, numbers) hold no quotes or commas.
func label(labels, k string) string {
	for kv := range strings.SplitSeq(labels, `",`) {
		if name, v, ok := strings.Cut(kv, `="`); ok && name == k {
			return strings.TrimSuffix(v, `"`)
		}
	}
	return ""
}

// lagQuantile estimates quantile q of the lag observed between a and b
// from the histogram buckets, interpolating linearly inside the bucket as
// PromQL's histogram_quantile does. NaN when nothing was observed.
func lagQuantile(a, b schedMetrics, q float64) float64 {
	count := b.LagCount - a.LagCount
	if count <= 0 {
		return math.NaN()
	}
	var les []float64
	for le := range b.LagLE {
		les = append(les, le)
	}
	sort.Float64s(les)
	rank := q * count
	prevLE, prevCum := 0.0, 0.0
	for _, le := range les {
		cum := b.LagLE[le] - a.LagLE[le]
		if cum >= rank {
			if math.IsInf(le, 1) {
				return prevLE // above the highest finite bucket
			}
			if cum == prevCum {
				return le
			}
			return prevLE + (le-prevLE)*(rank-prevCum)/(cum-prevCum)
		}
		prevLE, prevCum = le, cum
	}
	return prevLE
}

// fullScrape is one complete GET /metrics.
type fullScrape struct {
	Duration time.Duration // request sent to last byte read
	Bytes    int64         // bytes on the wire (compressed when gzip)
	Rows     int64         // targets with a vantage_probe_checks_total{result="success"} row
	Success  float64       // sum of vantage_probe_checks_total{result="success"}
	Failure  float64       // sum of vantage_probe_checks_total{result="failure"}
	Series   int64         // samples of a target (with a target label)
	CPU      float64       // exporter CPU seconds during the scrape (scheduled checks included)
	// ReaderCPU is the benchmark process's CPU seconds during the scrape:
	// reading the body (and whatever else the process does meanwhile).
	ReaderCPU float64
}

// scrapeAll times a complete GET /metrics. With gzip it asks for gzip as
// Prometheus does and times the compressed transfer without decoding it
// (Rows, Success and Failure stay 0).
func scrapeAll(ctx context.Context, base string, gzip bool) (fullScrape, error) {
	return scrapeInto(ctx, base, gzip, nil)
}

// scrapeInto is scrapeAll reading a plain body into buf (see fetchInto).
func scrapeInto(ctx context.Context, base string, gzip bool, buf *bytes.Buffer) (fullScrape, error) {
	s, body, err := fetchInto(ctx, base, gzip, buf)
	if err != nil || gzip {
		return s, err
	}
	p := []byte("vantage_probe_checks_total{")
	target := []byte("{target=\"")
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if bytes.Contains(line, target) {
			s.Series++
		}
		if !bytes.HasPrefix(line, p) {
			continue
		}
		_, labels, v, ok := parseSample(string(line))
		if !ok {
			continue
		}
		switch label(labels, "result") {
		case "success":
			s.Rows++
			s.Success += v
		case "failure":
			s.Failure += v
		}
	}
	return s, nil
}

// fetchMetrics times a complete GET /metrics and returns its body; with
// gzip it asks for gzip as Prometheus does and times the compressed
// transfer without decoding it (no body).
func fetchMetrics(ctx context.Context, base string, gzip bool) (fullScrape, []byte, error) {
	return fetchInto(ctx, base, gzip, nil)
}

// fetchInto is fetchMetrics reading a plain body into buf, when not nil,
// instead of a new slice: a buffer kept from one scrape to the next keeps
// its capacity, as Prometheus's scrape loop reuses a buffer sized by the
// previous scrape, so a 200 MiB body is not grown (copied, its pages
// faulted in) on every read. The body returned is buf's bytes.
func fetchInto(ctx context.Context, base string, gzip bool, buf *bytes.Buffer) (s fullScrape, body []byte, err error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	req.Close = true
	if gzip {
		// Setting the header ourselves stops Transport from decoding it.
		req.Header.Set("Accept-Encoding", "gzip")
	}
	r0, _ := readProc(os.Getpid())
	start := time.Now()
	defer func() {
		r1, _ := readProc(os.Getpid())
		s.ReaderCPU = r1.cpuSeconds() - r0.cpuSeconds()
	}()
	resp, err := plainClient(120 * time.Second).Do(req)
	if err != nil {
		return s, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	if gzip {
		s.Bytes, err = io.Copy(io.Discard, resp.Body)
		s.Duration = time.Since(start)
		return s, nil, err
	}
	if buf != nil {
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		body = buf.Bytes()
	} else {
		body, err = io.ReadAll(resp.Body)
	}
	s.Duration = time.Since(start)
	s.Bytes = int64(len(body))
	return s, body, err
}
