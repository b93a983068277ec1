// Package report delivers an exporter's state-change reports (a scheduled
// target started failing after its local retries, or recovered) to the
// coordinators: batched, in order, retried with backoff through a bounded
// buffer whose overflow is counted and logged, never silent.
//
// Reporting is level-triggered too: each coordinator gets a batch at least
// every heartbeat interval (empty when nothing is queued), and a snapshot
// of every scheduled target's state on the run's first delivery, when its
// run changes (restarted or wiped), when it asks, after reports to it were
// dropped, and every snapshot interval. Overflow keeps each target's
// latest report.
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
	"github.com/vantageprobe/vantage/internal/liveness"
)

// Options configure a Reporter.
type Options struct {
	// URLs are the coordinators' base URLs; each gets every report.
	URLs     []string
	Location string
	// Member names this exporter within its location's cluster; empty
	// without one.
	Member string
	// Run identifies the exporter process in every batch; empty: a new
	// random one (NewRunID).
	Run string
	// Canary, when set, returns the location's connectivity canary
	// verdict (nil without a canary or before its first check); every
	// batch carries it.
	Canary func() *bool
	// Degraded, when set, returns the reasons the exporter cannot vouch
	// for its results (api.Batch.Degraded); every batch carries them.
	Degraded func() []string
	// Delivered, when set, advances with every batch a coordinator
	// accepts, heartbeats included. Waiting says when reports wait for
	// it.
	Delivered *liveness.Clock
	// Snapshot, when set, returns the state of every scheduled target,
	// with UpTargets when withTargets is set. Its Seq must be the number
	// of the latest report Send was given whose change it includes (read
	// with Seq under the lock Send is called with).
	Snapshot func(withTargets bool) *api.Snapshot
	// HeartbeatInterval is the longest a coordinator goes without a
	// batch: with nothing queued, an empty one is sent. It also caps the
	// wait between retries.
	HeartbeatInterval time.Duration
	// SnapshotInterval is how often a coordinator gets a snapshot.
	SnapshotInterval time.Duration
	// BufferSize bounds the reports waiting per coordinator; when full,
	// the oldest report of a target that has a newer one queued is
	// dropped, or, when there is none, the oldest.
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
		HeartbeatInterval: 10 * time.Second,
		SnapshotInterval:  5 * time.Minute,
		BufferSize:        10000,
		BatchSize:         100,
		MinBackoff:        250 * time.Millisecond,
		MaxBackoff:        30 * time.Second,
		Client:            &http.Client{Timeout: 10 * time.Second},
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
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = def.HeartbeatInterval
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = def.SnapshotInterval
	}
	if opts.Run == "" {
		opts.Run = NewRunID()
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
		run:  opts.Run,
		delivered: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_reports_delivered_total",
			Help: "State-change reports a coordinator accepted.",
		}, []string{"coordinator"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_reports_dropped_total",
			Help: "State-change reports given up: overflow when the buffer was full (an older report of a target with a newer one queued, or else the oldest), rejected when the coordinator refused them as invalid. Either way the coordinator gets a snapshot next.",
		}, []string{"coordinator", "reason"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_report_delivery_failures_total",
			Help: "Failed attempts to deliver a batch of reports; the batch is retried.",
		}, []string{"coordinator"}),
	}
	for _, u := range opts.URLs {
		// The run's first delivery carries a snapshot.
		s := &sink{r: r, url: strings.TrimSuffix(u, "/") + api.ReportsPath, name: u, wake: make(chan struct{}, 1), needSnapshot: true}
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

// Seq returns the number of the latest report sent, 0 before the first.
func (r *Reporter) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// canary is the location's canary verdict for a batch.
func (r *Reporter) canary() *bool {
	if r.opts.Canary == nil {
		return nil
	}
	return r.opts.Canary()
}

// Waiting says whether reports wait for delivery to a coordinator, and
// since when the longest-waiting queue has held reports.
func (r *Reporter) Waiting(time.Time) (since time.Time, due bool) {
	for _, s := range r.sinks {
		s.mu.Lock()
		if len(s.queue) > 0 && (!due || s.queuedSince.Before(since)) {
			since, due = s.queuedSince, true
		}
		s.mu.Unlock()
	}
	return since, due
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
	// queuedSince is when the queue last became non-empty.
	queuedSince time.Time
	// inflight is how many reports at the front of queue are being
	// delivered; overflow never drops those, so a report counted as
	// dropped is never delivered after all.
	inflight int
	// needSnapshot: the next batch carries a snapshot (the run's first
	// delivery, a changed coordinator run, asked for, reports dropped);
	// wantTargets: with UpTargets. nextSnapshot is when the periodic one
	// is due.
	needSnapshot bool
	wantTargets  bool
	nextSnapshot time.Time
	// coordRun is the coordinator's run as its latest answer named it.
	coordRun string
}

func (s *sink) length() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return float64(len(s.queue))
}

func (s *sink) push(rep api.Report) {
	s.mu.Lock()
	if len(s.queue) >= s.r.opts.BufferSize {
		// Drop a report not being delivered: the oldest of a target with
		// a newer one queued, so every target keeps its latest; else the
		// oldest. When every buffered report is in flight, the new one.
		// The coordinator then needs a snapshot.
		dropped, merged := rep, false
		if i, m, ok := s.victim(rep); ok {
			dropped, merged = s.queue[i], m
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			s.queue = append(s.queue, rep)
		}
		s.needSnapshot = true
		s.mu.Unlock()
		s.r.dropped.WithLabelValues(s.name, "overflow").Inc()
		msg := "Report buffer full; dropped the oldest report"
		if merged {
			msg = "Report buffer full; dropped a report superseded by a newer one of its target"
		}
		s.r.opts.Logger.Warn(msg, "coordinator", s.name, "target", dropped.Target, "module", dropped.Module, "state", dropped.State, "seq", dropped.Seq)
		return
	}
	if len(s.queue) == 0 {
		s.queuedSince = time.Now()
	}
	s.queue = append(s.queue, rep)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// victim picks the report overflow drops to make room for rep: the oldest
// queued (not in flight) report of a target that has a newer report
// queued, rep included, with true for merged; otherwise the oldest not in
// flight. ok is false when every report is in flight. s.mu is held.
func (s *sink) victim(rep api.Report) (i int, merged, ok bool) {
	type key struct{ module, target string }
	later := map[key]bool{{rep.Module, rep.Target}: true}
	found := -1
	for j := len(s.queue) - 1; j >= s.inflight; j-- {
		k := key{s.queue[j].Module, s.queue[j].Target}
		if later[k] {
			found = j
		}
		later[k] = true
	}
	switch {
	case found >= 0:
		return found, true, true
	case s.inflight < len(s.queue):
		return s.inflight, false, true
	}
	return 0, false, false
}

// head returns up to BatchSize reports from the front of the queue and
// marks them in flight. With limited, it takes only reports numbered up to
// upTo, and complete says whether it took all of those queued.
func (s *sink) head(upTo uint64, limited bool) (batch []api.Report, complete bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for n < len(s.queue) && (!limited || s.queue[n].Seq <= upTo) {
		n++
	}
	complete = n <= s.r.opts.BatchSize
	batch = append([]api.Report(nil), s.queue[:min(n, s.r.opts.BatchSize)]...)
	s.inflight = len(batch)
	return batch, complete
}

// snapshotDue reports whether the next batch should carry a snapshot, and
// with the up targets.
func (s *sink) snapshotDue(now time.Time) (due, withTargets bool) {
	if s.r.opts.Snapshot == nil {
		return false, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.needSnapshot || !now.Before(s.nextSnapshot), s.wantTargets
}

// outcome is how a delivery attempt ended.
type outcome struct {
	delivered bool // accepted, or rejected for good: the reports leave the queue
	rejected  bool
	answer    api.ReportsAnswer
}

// settle ends a delivery attempt: delivered (or rejected) reports leave the
// front of the queue; after a failure they stay for the retry. The
// answer and a rejection decide the next snapshot.
func (s *sink) settle(batch []api.Report, snap *api.Snapshot, withTargets bool, o outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = 0
	if !o.delivered {
		return
	}
	s.queue = s.queue[len(batch):]
	if o.rejected {
		s.needSnapshot = true
		return
	}
	if snap != nil {
		s.needSnapshot = false
		s.nextSnapshot = time.Now().Add(s.r.opts.SnapshotInterval)
		if withTargets {
			s.wantTargets = false
		}
	}
	a := o.answer
	if a.Run != "" {
		if s.coordRun != "" && a.Run != s.coordRun {
			// A restarted or wiped coordinator may have lost what it knew.
			s.needSnapshot = true
		}
		s.coordRun = a.Run
	}
	if a.WantTargets {
		s.wantTargets, s.needSnapshot = true, true
	}
	if a.WantSnapshot {
		s.needSnapshot = true
	}
}

func (s *sink) run(ctx context.Context) {
	backoff := time.Duration(0)
	// When the latest batch went out: none yet, so the first (with the
	// run's first snapshot) goes out at once.
	var last time.Time
	for {
		// A heartbeat is due a heartbeat interval after the latest
		// batch, a retry after the backoff (at most that long), a
		// periodic snapshot when its time comes.
		wait := time.Until(last.Add(s.r.opts.HeartbeatInterval))
		var wake <-chan struct{}
		if backoff > 0 {
			wait = min(jitter(backoff), s.r.opts.HeartbeatInterval)
		} else {
			wake = s.wake
			s.mu.Lock()
			if !s.nextSnapshot.IsZero() && s.r.opts.Snapshot != nil {
				wait = min(wait, time.Until(s.nextSnapshot))
			}
			s.mu.Unlock()
		}
		timer := time.NewTimer(max(wait, 0))
		heartbeat := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
			heartbeat = true
		case <-wake:
			timer.Stop()
		}
		sent, err := s.deliverAll(ctx, heartbeat)
		if sent {
			last = time.Now()
		}
		switch {
		case err == nil:
			backoff = 0
		case ctx.Err() != nil:
			return
		default:
			backoff = min(max(2*backoff, s.r.opts.MinBackoff), s.r.opts.MaxBackoff)
			s.r.opts.Logger.Warn("Delivering reports failed; retrying", "coordinator", s.name, "err", err, "retry_in", min(backoff, s.r.opts.HeartbeatInterval))
		}
	}
}

// flush delivers what is queued, batch by batch, until done or ctx ends.
func (s *sink) flush(ctx context.Context) {
	if _, err := s.deliverAll(ctx, false); err != nil {
		s.mu.Lock()
		n := len(s.queue)
		s.mu.Unlock()
		if n > 0 {
			s.r.opts.Logger.Error("Reports left undelivered at shutdown", "coordinator", s.name, "reports", n, "err", err)
		}
	}
}

// deliverAll sends batches until the queue is empty and no snapshot is
// due, or one fails; with always, at least one (a heartbeat). A snapshot
// rides on the batch that takes the last report it includes; one call
// sends at most one snapshot, so a coordinator that keeps asking gets
// the next with the next heartbeat. sent says whether a batch went out.
func (s *sink) deliverAll(ctx context.Context, always bool) (sent bool, err error) {
	snapshotSent := false
	for {
		var snap *api.Snapshot
		due, withTargets := s.snapshotDue(time.Now())
		if due && !snapshotSent {
			snap = s.r.opts.Snapshot(withTargets)
		}
		// Reports numbered above the snapshot's Seq are newer than it:
		// they follow in the next batch.
		var upTo uint64
		if snap != nil {
			upTo = snap.Seq
		}
		batch, complete := s.head(upTo, snap != nil)
		if !complete {
			snap = nil // first the reports it includes
		}
		if len(batch) == 0 && snap == nil && !always {
			s.settle(nil, nil, false, outcome{})
			return sent, nil
		}
		o, err := s.deliver(ctx, batch, snap)
		s.settle(batch, snap, withTargets, o)
		sent, always = true, false
		if err != nil {
			return sent, err
		}
		if snap != nil {
			snapshotSent = true
			if o.rejected {
				return sent, nil // the next heartbeat tries again
			}
		}
	}
}

func (s *sink) deliver(ctx context.Context, batch []api.Report, snap *api.Snapshot) (outcome, error) {
	if batch == nil {
		batch = []api.Report{}
	}
	var degraded []string
	if s.r.opts.Degraded != nil {
		degraded = s.r.opts.Degraded()
	}
	body, err := json.Marshal(api.Batch{Location: s.r.opts.Location, SentAt: time.Now(), Member: s.r.opts.Member, Run: s.r.run, CanaryOK: s.r.canary(), Degraded: degraded, Reports: batch, Snapshot: snap})
	if err != nil {
		return outcome{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return outcome{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.r.opts.Client.Do(req)
	if err != nil {
		s.r.failures.WithLabelValues(s.name).Inc()
		return outcome{}, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		s.r.delivered.WithLabelValues(s.name).Add(float64(len(batch)))
		s.r.opts.Delivered.Advance(time.Now())
		o := outcome{delivered: true}
		// An older coordinator may answer without a body.
		_ = json.Unmarshal(msg, &o.answer)
		return o, nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusRequestTimeout:
		// The coordinator will never take this batch; keeping it would
		// block every later report. It gets a snapshot instead.
		s.r.dropped.WithLabelValues(s.name, "rejected").Add(float64(len(batch)))
		s.r.opts.Logger.Error("Coordinator rejected reports; dropped them", "coordinator", s.name, "reports", len(batch), "snapshot", snap != nil, "status", resp.StatusCode, "response", strings.TrimSpace(string(msg[:min(len(msg), 1024)])))
		return outcome{delivered: true, rejected: true}, nil
	}
	s.r.failures.WithLabelValues(s.name).Inc()
	return outcome{}, fmt.Errorf("coordinator answered HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg[:min(len(msg), 1024)])))
}

// maxAnswerBytes bounds the coordinator's answer read.
const maxAnswerBytes = 64 << 10

// jitter spreads retries of several exporters over ±20% of d.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// NewRunID returns a random identifier of a process's reports.
func NewRunID() string {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}
