package coordinator

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/tracing"
)

// dispatchLimits bound the verification checks the coordinator sends.
type dispatchLimits struct {
	// batchSize is the most checks one batch request carries.
	batchSize int
	// linger is how long a location's queue waits for more checks before
	// sending a batch smaller than batchSize.
	linger time.Duration
	// requests is how many batch requests each location has in flight at
	// most.
	requests int
	// queue is how many checks may wait for each location; a check beyond
	// it is answered as overload.
	queue int
	// singles is how many single check requests one batch turns into at
	// once for an exporter without the batch API.
	singles int
	// legacyRecheck is how long a location that answered 404 to the batch
	// API is asked with single checks before the batch API is tried again.
	legacyRecheck time.Duration
}

var defaultDispatchLimits = dispatchLimits{
	batchSize:     128,
	linger:        5 * time.Millisecond,
	requests:      32,
	queue:         50000,
	singles:       16,
	legacyRecheck: 5 * time.Minute,
}

// dispatcher runs verification rounds: each round's checks wait in their
// location's queue (first verifications before re-verifications), go out
// in batch requests (at most limits.requests per location at once), and
// the round ends, on one goroutine, once every location answered or its
// timeout passed. A check that could not be sent in time for want of the
// coordinator's own capacity is answered as overload (confirm.SourceOverload),
// which is no evidence.
//
// Goroutines: one reaper, one pump per location with checks waiting, one
// per batch request in flight; none per round or per check.
type dispatcher struct {
	v      *verifier
	tracer trace.Tracer
	limits dispatchLimits
	// done receives every finished round, on the reaper's goroutine, in
	// the order they finished.
	done func(*round)
	// inject writes a span context's traceparent into a header.
	inject func(context.Context, http.Header)

	mu       sync.Mutex
	ctx      context.Context // ends the pumps and requests
	queues   map[queueKey]*locQueue
	deadline roundHeap // open rounds by deadline
	ready    []*round  // finished, for the reaper to hand to done
	wake     chan struct{}
	wg       sync.WaitGroup
}

// queueKey names a location's queue: its name and its members' base URLs
// (space-separated), so a location whose members change gets a new queue.
type queueKey struct{ name, urls string }

// locQueue is one location's checks waiting to be sent.
type locQueue struct {
	key queueKey
	// urls are the location's members, asked one after another until one
	// answers.
	urls     []string
	first    []*item // checks of rounds deciding a new incident
	again    []*item // re-verifications
	queued   int     // items waiting, not yet answered
	inFlight int     // batch requests in flight
	running  bool    // a pump serves the queue
	wake     chan struct{}
	// legacyUntil: until then the location is asked with single checks
	// (it answered 404 to the batch API).
	legacyUntil time.Time
}

// round is one verification round in progress.
type round struct {
	req      confirm.RoundRequest
	span     trace.Span
	started  time.Time
	deadline time.Time
	items    []*item
	pending  int
	finished bool
	index    int // in the deadline heap; -1 once out
}

// answers are the round's answers, one per location asked.
func (r *round) answers() []checkAnswer {
	out := make([]checkAnswer, len(r.items))
	for i, it := range r.items {
		out[i] = it.answer
	}
	return out
}

type itemState int

const (
	itemQueued itemState = iota
	itemSent
	itemAnswered
)

// item is one location's check of a round.
type item struct {
	r      *round
	q      *locQueue
	state  itemState
	answer checkAnswer
	// span is the CLIENT span of the location's check, a child of the
	// round's span, while a request carries it; the exporter's check span
	// is its child.
	span trace.Span
}

func newDispatcher(v *verifier, tracer trace.Tracer, inject func(context.Context, http.Header), limits dispatchLimits, done func(*round)) *dispatcher {
	return &dispatcher{
		v: v, tracer: tracer, inject: inject, limits: limits, done: done,
		ctx:    context.Background(),
		queues: map[queueKey]*locQueue{},
		wake:   make(chan struct{}, 1),
	}
}

// submit starts a round: its checks join the locations' queues. urls maps
// location names to their members' base URLs; a location without any is
// not asked.
func (d *dispatcher) submit(ctx context.Context, req confirm.RoundRequest, urls map[string][]string) {
	now := time.Now()
	// The round is a span; the locations' check spans are its children
	// (each check carries its traceparent).
	_, span := d.tracer.Start(ctx, "verify "+req.Key.Module, trace.WithTimestamp(now), trace.WithAttributes(
		tracing.AttrTarget.String(req.Key.Target), tracing.AttrModule.String(req.Key.Module)))
	r := &round{req: req, span: span, started: now, deadline: now.Add(req.Timeout), index: -1}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range req.Locations {
		if us := urls[name]; len(us) > 0 {
			r.items = append(r.items, &item{r: r, q: d.queue(queueKey{name, strings.Join(us, " ")}, us)})
		}
	}
	r.pending = len(r.items)
	if r.pending == 0 {
		d.finishLocked(r)
		return
	}
	heap.Push(&d.deadline, r)
	for _, it := range r.items {
		q := it.q
		if q.queued >= d.limits.queue {
			d.answerLocked(it, overload(q.key.name, now, fmt.Sprintf("the coordinator's queue of checks for the location is full (%d)", d.limits.queue)))
			continue
		}
		if req.First {
			q.first = append(q.first, it)
		} else {
			q.again = append(q.again, it)
		}
		q.queued++
		d.kickLocked(q)
	}
	if !r.finished && d.deadline[0] == r {
		signal(d.wake)
	}
}

func (d *dispatcher) queue(k queueKey, urls []string) *locQueue {
	q, ok := d.queues[k]
	if !ok {
		q = &locQueue{key: k, urls: urls, wake: make(chan struct{}, 1)}
		d.queues[k] = q
	}
	return q
}

// kickLocked makes sure a pump serves q, unless the dispatcher stopped.
func (d *dispatcher) kickLocked(q *locQueue) {
	if q.running {
		signal(q.wake)
		return
	}
	if d.ctx.Err() != nil {
		return
	}
	q.running = true
	d.wg.Go(func() { d.pump(q) })
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run is the reaper: it ends rounds whose timeout passed and hands every
// finished round to done, until ctx ends. Rounds open then are dropped.
func (d *dispatcher) run(ctx context.Context) {
	d.mu.Lock()
	d.ctx = ctx
	for _, q := range d.queues {
		if q.queued > 0 {
			d.kickLocked(q)
		}
	}
	d.mu.Unlock()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		now := time.Now()
		for len(d.deadline) > 0 && !d.deadline[0].deadline.After(now) {
			r := heap.Pop(&d.deadline).(*round)
			d.expireLocked(r, now)
		}
		ready := d.ready
		d.ready = nil
		wait := time.Hour
		if len(d.deadline) > 0 {
			wait = d.deadline[0].deadline.Sub(now)
		}
		d.mu.Unlock()
		for _, r := range ready {
			if ctx.Err() != nil {
				r.span.End()
				continue
			}
			d.done(r)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			d.wg.Wait()
			return
		case <-timer.C:
		case <-d.wake:
		}
	}
}

// expireLocked ends a round at its timeout: a location whose check still
// waited in the queue is overload, one whose request was under way did not
// answer in time.
func (d *dispatcher) expireLocked(r *round, now time.Time) {
	r.index = -1
	for _, it := range r.items {
		switch it.state {
		case itemQueued:
			it.q.queued--
			d.answerLocked(it, overload(it.q.key.name, now, fmt.Sprintf("no request slot for the location before verify_timeout (%s)", r.req.Timeout)))
		case itemSent:
			d.answerLocked(it, checkAnswer{Evidence: confirm.UnknownEvidence(it.q.key.name, confirm.SourceCheck, now,
				fmt.Sprintf("no answer within verify_timeout (%s)", r.req.Timeout))})
		}
	}
}

// answerLocked records one location's answer; the round finishes with its
// last.
func (d *dispatcher) answerLocked(it *item, a checkAnswer) {
	if it.state == itemAnswered || it.r.finished {
		return
	}
	it.state = itemAnswered
	it.answer = a
	r := it.r
	if r.pending--; r.pending == 0 {
		if r.index >= 0 {
			heap.Remove(&d.deadline, r.index)
		}
		d.finishLocked(r)
	}
}

func (d *dispatcher) finishLocked(r *round) {
	r.finished = true
	d.ready = append(d.ready, r)
	signal(d.wake)
}

// pump sends q's checks in batches while any wait, at most
// limits.requests at once, and ends when the queue is empty.
func (d *dispatcher) pump(q *locQueue) {
	lingered := false
	for {
		d.mu.Lock()
		ctx := d.ctx
		if q.queued == 0 || ctx.Err() != nil {
			q.running = false
			q.first, q.again = nil, nil
			d.mu.Unlock()
			return
		}
		if q.inFlight >= d.limits.requests {
			// Wait for a request to end.
			d.mu.Unlock()
			sleep(ctx, q.wake, time.Hour)
			continue
		}
		if !lingered && q.queued < d.limits.batchSize {
			// Linger once for a fuller batch.
			lingered = true
			d.mu.Unlock()
			sleep(ctx, nil, d.limits.linger)
			continue
		}
		lingered = false
		batch := d.takeLocked(q)
		if len(batch) == 0 {
			d.mu.Unlock()
			continue
		}
		q.inFlight++
		legacy := time.Now().Before(q.legacyUntil)
		d.mu.Unlock()
		d.wg.Go(func() {
			d.send(ctx, q, batch, legacy)
			d.mu.Lock()
			q.inFlight--
			d.mu.Unlock()
			signal(q.wake)
		})
	}
}

// sleep waits for wait, a signal on wake (none when nil), or the end of
// ctx.
func sleep(ctx context.Context, wake chan struct{}, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// takeLocked takes up to batchSize waiting checks, first verifications
// first. A check whose round has too little time left for the location to
// check (less than half the round's budget) is answered as overload
// instead: a check cut that short could fail only for want of time.
func (d *dispatcher) takeLocked(q *locQueue) []*item {
	now := time.Now()
	var batch []*item
	for _, list := range []*[]*item{&q.first, &q.again} {
		for len(*list) > 0 && len(batch) < d.limits.batchSize {
			it := (*list)[0]
			(*list)[0] = nil
			*list = (*list)[1:]
			if it.state != itemQueued {
				continue
			}
			q.queued--
			if it.r.deadline.Sub(now) < it.r.req.Timeout/2 {
				d.answerLocked(it, overload(q.key.name, now, fmt.Sprintf("no request slot for the location before half of verify_timeout (%s) had passed", it.r.req.Timeout)))
				continue
			}
			it.state = itemSent
			batch = append(batch, it)
		}
	}
	return batch
}

// send asks q's location for batch's checks and records the answers. An
// exporter that answers 404 to the batch API gets single check requests,
// now and until limits.legacyRecheck has passed.
func (d *dispatcher) send(ctx context.Context, q *locQueue, batch []*item, legacy bool) {
	started := time.Now()
	end := started
	links := make([]trace.Link, len(batch))
	for i, it := range batch {
		end = later(end, it.r.deadline)
		links[i] = trace.Link{SpanContext: it.r.span.SpanContext()}
	}
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	// The request is a span of its own, linked to the rounds it serves.
	ctx, span := d.tracer.Start(ctx, "check batch", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindClient), trace.WithLinks(links...),
		trace.WithAttributes(tracing.AttrLocation.String(q.key.name), attribute.Int("vantage.verification.checks", len(batch))))
	defer span.End()
	// Each check is a CLIENT span of its own under its round's span: the
	// round's trace shows every location it asked.
	path := api.CheckBatchPath
	if legacy {
		path = api.CheckPath
	}
	for _, it := range batch {
		_, it.span = d.tracer.Start(trace.ContextWithSpan(ctx, it.r.span), http.MethodPost, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(tracing.AttrLocation.String(q.key.name), semconv.HTTPRequestMethodKey.String(http.MethodPost),
				semconv.URLFull(strings.TrimSuffix(q.urls[0], "/")+path)))
	}
	var answers []checkAnswer
	if !legacy {
		var err error
		answers, err = d.sendBatch(ctx, q, batch, started)
		if errors.Is(err, errBatchUnsupported) {
			d.mu.Lock()
			q.legacyUntil = time.Now().Add(d.limits.legacyRecheck)
			d.mu.Unlock()
			legacy = true
		}
	}
	if legacy {
		span.SetAttributes(attribute.Bool("vantage.verification.single_checks", true))
		answers = d.sendSingles(ctx, q, batch)
	}
	d.mu.Lock()
	for i, it := range batch {
		endCheckSpan(it.span, answers[i])
		it.span = nil
		d.answerLocked(it, answers[i])
	}
	d.mu.Unlock()
}

// endCheckSpan ends a check's CLIENT span with what the location answered.
func endCheckSpan(span trace.Span, a checkAnswer) {
	if a.answered {
		span.SetAttributes(semconv.HTTPResponseStatusCode(http.StatusOK))
	} else {
		span.SetStatus(codes.Error, a.Error)
	}
	span.End()
}

// checkRequest is the check of it, with its round's remaining budget and
// traceparent. A first verification asks for a check made since the round
// began: a scheduled success from before the failure it verifies must not
// answer it. A re-verification takes a fresh scheduled result.
func (d *dispatcher) checkRequest(it *item, now time.Time) api.CheckRequest {
	cr := api.CheckRequest{Target: it.r.req.Key.Target, Module: it.r.req.Key.Module, TimeoutSeconds: checkBudget(it.r.deadline.Sub(now)).Seconds()}
	if it.r.req.First {
		cr.NotBefore = it.r.started
	}
	parent := it.r.span
	if it.span != nil {
		parent = it.span
	}
	if parent.SpanContext().IsValid() {
		h := http.Header{}
		d.inject(trace.ContextWithSpan(context.Background(), parent), h)
		cr.Traceparent = h.Get("Traceparent")
	}
	return cr
}

// sendBatch sends batch as one batch request.
func (d *dispatcher) sendBatch(ctx context.Context, q *locQueue, batch []*item, started time.Time) ([]checkAnswer, error) {
	req := &api.CheckBatchRequest{Checks: make([]api.CheckRequest, len(batch))}
	for i, it := range batch {
		req.Checks[i] = d.checkRequest(it, started)
	}
	answers := make([]checkAnswer, len(batch))
	// The location's members in turn, until one answers.
	var resp *api.CheckBatchResponse
	var err error
	for _, u := range q.urls {
		resp, err = d.v.askBatch(ctx, u, req)
		if err == nil || errors.Is(err, errBatchUnsupported) || ctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, errBatchUnsupported) {
		return nil, err
	}
	for i := range batch {
		if err != nil {
			answers[i] = failedRequest(ctx, q.key.name, started, batch[i].r.req.Timeout, err)
			continue
		}
		answers[i] = answerFrom(q.key.name, &resp.Results[i], started)
		// A round reads the evidence only: the result would be held
		// until every location of the round answered.
		answers[i].result = nil
	}
	return answers, nil
}

// sendSingles sends batch's checks as single check requests, at most
// limits.singles at once.
func (d *dispatcher) sendSingles(ctx context.Context, q *locQueue, batch []*item) []checkAnswer {
	answers := make([]checkAnswer, len(batch))
	next := make(chan int, len(batch))
	for i := range batch {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(len(batch), d.limits.singles) {
		wg.Go(func() {
			for i := range next {
				it := batch[i]
				ictx, cancel := context.WithDeadline(ctx, it.r.deadline)
				for _, u := range q.urls {
					answers[i] = d.v.ask(ictx, q.key.name, u, d.checkRequest(it, time.Now()), it.r.req.Timeout)
					if answers[i].Result != confirm.OutcomeUnknown || ictx.Err() != nil {
						break
					}
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return answers
}

// roundHeap orders open rounds by deadline.
type roundHeap []*round

func (h roundHeap) Len() int           { return len(h) }
func (h roundHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h roundHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *roundHeap) Push(x any) {
	r := x.(*round)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *roundHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
}
