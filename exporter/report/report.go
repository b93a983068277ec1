// Package report delivers an exporter's state-change reports (a scheduled
// target started failing after its local retries, or recovered) to the
// coordinators: batched, in order, retried with backoff through a bounded
// buffer whose overflow is counted and logged, never silent.
package report

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/api"
)

// Options configure a Reporter.
type Options struct {
	// URLs are the coordinators' base URLs; each gets every report.
	URLs     []string
	Location string
	// Canary, when set, returns the location's connectivity canary
	// verdict (nil without a canary or before its first check); every
	// batch carries it.
	Canary func() *bool
	// BufferSize bounds the reports waiting per coordinator; when full the
	// oldest is dropped.
	BufferSize int
	// BatchSize bounds the reports sent in one request. A report is sent
	// as soon as the previous request ends, so reports queue up into
	// batches only while a delivery is under way or failing.
	BatchSize  int
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Client     *http.Client
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// DefaultOptions returns the delivery defaults.
func DefaultOptions() Options {
	return Options{
		BufferSize: 10000,
		BatchSize:  100,
		MinBackoff: 250 * time.Millisecond,
		MaxBackoff: 30 * time.Second,
		Client:     &http.Client{Timeout: 10 * time.Second},
	}
}

// Reporter sends reports to every coordinator.
type Reporter struct {
	opts  Options
	run   string
	sinks []*sink
	mu    sync.Mutex
	seq   uint64

	delivered *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

// New builds a reporter; Run delivers.
func New(opts Options) *Reporter {
	def := DefaultOptions()
	if opts.BufferSize <= 0 {
		opts.BufferSize = def.BufferSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = def.BatchSize
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = def.MinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(def.MaxBackoff, opts.MinBackoff)
	}
	if opts.Client == nil {
		opts.Client = def.Client
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(opts.Registerer)
	r := &Reporter{
		opts: opts,
		run:  newRunID(),
		delivered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_reports_delivered_total",
			Help: "State-change reports a coordinator accepted.",
		}, []string{"coordinator"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_reports_dropped_total",
			Help: "State-change reports given up: overflow when the buffer was full, rejected when the coordinator refused them as invalid.",
		}, []string{"coordinator", "reason"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_report_delivery_failures_total",
			Help: "Failed attempts to deliver a batch of reports; the batch is retried.",
		}, []string{"coordinator"}),
	}
	for _, u := range opts.URLs {
		s := &sink{r: r, url: strings.TrimSuffix(u, "/") + api.ReportsPath, name: u, wake: make(chan struct{}, 1)}
		r.delivered.WithLabelValues(u)
		r.dropped.WithLabelValues(u, "overflow")
		r.dropped.WithLabelValues(u, "rejected")
		r.failures.WithLabelValues(u)
		f.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "vantage_exporter_report_queue_length",
			Help:        "Reports waiting for delivery.",
			ConstLabels: prometheus.Labels{"coordinator": u},
		}, s.length)
		r.sinks = append(r.sinks, s)
	}
	return r
}

// Send queues a report for every coordinator; it never blocks.
func (r *Reporter) Send(rep api.Report) {
	// Numbering and queueing under one lock keeps every queue in sequence
	// order: a coordinator takes a report numbered below one it has seen
	// for a redelivery.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	rep.Seq = r.seq
	for _, s := range r.sinks {
		s.push(rep)
	}
}

// canary is the location's canary verdict for a batch.
func (r *Reporter) canary() *bool {
	if r.opts.Canary == nil {
		return nil
	}
	return r.opts.Canary()
}

// Run delivers until ctx ends, then makes one last attempt, bounded by
// grace, to deliver what is queued.
func (r *Reporter) Run(ctx context.Context, grace time.Duration) {
	var wg sync.WaitGroup
	for _, s := range r.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
			flushCtx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			s.flush(flushCtx)
		}()
	}
	wg.Wait()
}

// sink is the queue and delivery loop of one coordinator.
type sink struct {
	r    *Reporter
	url  string
	name string
	wake chan struct{}

	mu    sync.Mutex
	queue []api.Report
	// inflight is how many reports at the front of queue are being
	// delivered; overflow never drops those, so a report counted as
	// dropped is never delivered after all.
	inflight int
}

func (s *sink) length() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.queue))
}

func (s *sink) push(rep api.Report) {
	s.mu.Lock()
	if len(s.queue) >= s.r.opts.BufferSize {
		// Drop the oldest report not being delivered; when every
		// buffered report is in flight, the new one.
		dropped := rep
		if s.inflight < len(s.queue) {
			dropped = s.queue[s.inflight]
			s.queue = append(s.queue[:s.inflight], s.queue[s.inflight+1:]...)
			s.queue = append(s.queue, rep)
		}
		s.mu.Unlock()
		s.r.dropped.WithLabelValues(s.name, "overflow").Inc()
		s.r.opts.Logger.Warn("Report buffer full; dropped the oldest report", "coordinator", s.name, "target", dropped.Target, "module", dropped.Module, "state", dropped.State, "seq", dropped.Seq)
		return
	}
	s.queue = append(s.queue, rep)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// head returns up to BatchSize reports from the front of the queue and
// marks them in flight.
func (s *sink) head() []api.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	batch := append([]api.Report(nil), s.queue[:min(len(s.queue), s.r.opts.BatchSize)]...)
	s.inflight = len(batch)
	return batch
}

// settle ends a delivery attempt: delivered (or rejected) reports leave the
// front of the queue; after a failure they stay for the retry.
func (s *sink) settle(batch []api.Report, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = 0
	if delivered {
		s.queue = s.queue[len(batch):]
	}
}

func (s *sink) run(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			timer := time.NewTimer(jitter(backoff))
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
		}
		switch err := s.deliverAll(ctx); {
		case err == nil:
			backoff = 0
		case ctx.Err() != nil:
			return
		default:
			backoff = min(max(2*backoff, s.r.opts.MinBackoff), s.r.opts.MaxBackoff)
			s.r.opts.Logger.Warn("Delivering reports failed; retrying", "coordinator", s.name, "err", err, "retry_in", backoff)
		}
	}
}

// flush delivers what is queued, batch by batch, until done or ctx ends.
func (s *sink) flush(ctx context.Context) {
	if err := s.deliverAll(ctx); err != nil {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n > 0 {
			s.r.opts.Logger.Error("Reports left undelivered at shutdown", "coordinator", s.name, "reports", n, "err", err)
		}
	}
}

// deliverAll sends batches until the queue is empty or one fails.
func (s *sink) deliverAll(ctx context.Context) error {
	for {
		batch := s.head()
		if len(batch) == 0 {
			return nil
		}
		err := s.deliver(ctx, batch)
		s.settle(batch, err == nil)
		if err != nil {
			return err
		}
	}
}

func (s *sink) deliver(ctx context.Context, batch []api.Report) error {
	body, err := json.Marshal(api.Batch{Location: s.r.opts.Location, Run: s.r.run, CanaryOK: s.r.canary(), Reports: batch})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.r.opts.Client.Do(req)
	if err != nil {
		s.r.failures.WithLabelValues(s.name).Inc()
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		s.r.delivered.WithLabelValues(s.name).Add(float64(len(batch)))
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		// The coordinator will never take this batch; keeping it would
		// block every later report.
		s.r.dropped.WithLabelValues(s.name, "rejected").Add(float64(len(batch)))
		s.r.opts.Logger.Error("Coordinator rejected reports; dropped them", "coordinator", s.name, "reports", len(batch), "status", resp.StatusCode, "response", strings.TrimSpace(string(msg)))
		return nil
	}
	s.r.failures.WithLabelValues(s.name).Inc()
	return fmt.Errorf("coordinator answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
}

// jitter spreads retries of several exporters over ±20% of d.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// newRunID returns a random identifier of this process's reports.
func newRunID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
