package tracing

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The decisions the tail sampler makes about a trace, as counted by
// vantage_tracing_traces_total{decision}.
const (
	DecisionFailed    = "failed"    // kept: the root span's status is Error
	DecisionSlow      = "slow"      // kept: the root span lasted at least the slow threshold
	DecisionSampled   = "sampled"   // kept: chosen by the sample ratio
	DecisionUnsampled = "unsampled" // dropped: fast, successful and not chosen
	DecisionOverflow  = "overflow"  // dropped: the pending-trace buffer was full when it started
)

// The reasons spans are dropped, as counted by
// vantage_tracing_spans_dropped_total{reason}.
const (
	dropUnsampled = "unsampled"       // their trace was not kept
	dropTooLarge  = "trace_too_large" // their trace already held MaxSpansPerTrace spans
	dropUntracked = "untracked"       // their trace was not held: overflow, or they started after it was decided and closed
)

// keptLogSize is how many recent kept root spans Kept remembers.
const keptLogSize = 4096

// tailSampler is an sdktrace.SpanProcessor that holds the spans of each
// local trace (a local root span and its descendants in this process) until
// the root span ends, then decides from the root span alone whether the
// whole trace is kept: forwarded to next, in the order the spans ended, the
// root last; or dropped.
type tailSampler struct {
	next       sdktrace.SpanProcessor
	slow       time.Duration
	ratioBound uint64 // sample when the trace ID's ratio key is below it
	always     bool   // SampleRatio >= 1
	maxTraces  int
	maxSpans   int
	m          *metrics

	mu      sync.Mutex
	closed  bool
	bySpan  map[trace.SpanID]*pendingTrace // every held span, started or ended
	pending int                            // traces held
	kept    keptLog
}

// pendingTrace is one local trace held until its root ends, and after
// that while spans of it are still open.
type pendingTrace struct {
	root    trace.SpanID
	spans   []sdktrace.ReadOnlySpan // ended spans other than the root
	ids     []trace.SpanID          // every span started in it
	open    int                     // started and not ended
	decided bool
	keep    bool
}

func newTailSampler(next sdktrace.SpanProcessor, c Config, m *metrics) *tailSampler {
	t := &tailSampler{
		next:      next,
		slow:      c.SlowThreshold,
		maxTraces: c.MaxPendingTraces,
		maxSpans:  c.MaxSpansPerTrace,
		m:         m,
		bySpan:    map[trace.SpanID]*pendingTrace{},
		kept:      keptLog{ids: map[trace.SpanID]struct{}{}},
	}
	if c.SampleRatio >= 1 {
		t.always = true
	} else if c.SampleRatio > 0 {
		t.ratioBound = uint64(c.SampleRatio * (1 << 63))
	}
	m.pendingFunc(t.pendingTraces)
	return t
}

// OnStart attaches a span to its parent's held trace, or holds a new trace
// for a local root (no parent, or a parent in another process).
func (t *tailSampler) OnStart(_ context.Context, s sdktrace.ReadWriteSpan) {
	id := s.SpanContext().SpanID()
	parent := s.Parent()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if parent.IsValid() && !parent.IsRemote() {
		if pt := t.bySpan[parent.SpanID()]; pt != nil {
			pt.open++
			pt.ids = append(pt.ids, id)
			t.bySpan[id] = pt
		}
		// A parent not held: the trace overflowed or is gone; OnEnd
		// counts the span as untracked.
		return
	}
	if t.pending >= t.maxTraces {
		t.m.traces[DecisionOverflow].Inc()
		return
	}
	pt := &pendingTrace{root: id, open: 1, ids: make([]trace.SpanID, 1, 8)}
	pt.ids[0] = id
	t.bySpan[id] = pt
	t.pending++
}

// OnEnd holds an ended span, or, for a root span, decides its trace and
// forwards or drops what was held.
func (t *tailSampler) OnEnd(s sdktrace.ReadOnlySpan) {
	id := s.SpanContext().SpanID()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	pt := t.bySpan[id]
	if pt == nil {
		t.mu.Unlock()
		t.m.spansDropped[dropUntracked].Inc()
		return
	}
	pt.open--
	switch {
	case pt.decided:
		// A span that ended after its root: it follows the decision.
		delete(t.bySpan, id)
		t.release(pt)
		keep := pt.keep
		t.mu.Unlock()
		if keep {
			t.m.kept.Inc()
			t.next.OnEnd(keptSpan{s})
		} else {
			t.m.spansDropped[dropUnsampled].Inc()
		}
		return
	case id != pt.root:
		if len(pt.spans)+1 >= t.maxSpans {
			t.mu.Unlock()
			t.m.spansDropped[dropTooLarge].Inc()
			return
		}
		pt.spans = append(pt.spans, s)
		t.mu.Unlock()
		return
	}
	decision := t.decide(s)
	pt.decided, pt.keep = true, decision != DecisionUnsampled
	held := pt.spans
	pt.spans = nil
	t.release(pt)
	if pt.keep {
		t.kept.add(id)
	}
	t.mu.Unlock()

	t.m.traces[decision].Inc()
	if !pt.keep {
		t.m.spansDropped[dropUnsampled].Add(float64(len(held) + 1))
		return
	}
	t.m.kept.Add(float64(len(held) + 1))
	for _, h := range held {
		t.next.OnEnd(keptSpan{h})
	}
	t.next.OnEnd(keptSpan{s})
}

// release forgets a decided trace once none of its spans is open.
// t.mu is held.
func (t *tailSampler) release(pt *pendingTrace) {
	if !pt.decided || pt.open > 0 {
		return
	}
	for _, id := range pt.ids {
		delete(t.bySpan, id)
	}
	pt.ids = nil
	t.pending--
}

// decide applies the policy to a local root span. A check that failed is
// a root whose status is Error, or, for a server span that answered its
// caller normally about a failed check (status unset), one whose
// vantage.check.success attribute is false.
func (t *tailSampler) decide(root sdktrace.ReadOnlySpan) string {
	switch {
	case root.Status().Code == codes.Error, checkFailed(root):
		return DecisionFailed
	case root.EndTime().Sub(root.StartTime()) >= t.slow:
		return DecisionSlow
	case t.sampled(root.SpanContext().TraceID()):
		return DecisionSampled
	}
	return DecisionUnsampled
}

// sampled chooses a trace by its ID as sdktrace.TraceIDRatioBased does, so
// every process with the same ratio makes the same choice for one trace.
func (t *tailSampler) sampled(id trace.TraceID) bool {
	if t.always {
		return true
	}
	return binary.BigEndian.Uint64(id[8:16])>>1 < t.ratioBound
}

// wasKept reports whether the local root span id ended recently and its
// trace was kept.
func (t *tailSampler) wasKept(id trace.SpanID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.kept.ids[id]
	return ok
}

func (t *tailSampler) pendingTraces() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return float64(t.pending)
}

// Shutdown drops the traces still held (their checks did not end) and
// shuts the next processor down, which exports what it queued.
func (t *tailSampler) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.bySpan = map[trace.SpanID]*pendingTrace{}
	t.pending = 0
	t.mu.Unlock()
	return t.next.Shutdown(ctx)
}

// ForceFlush exports what was already kept; traces still running are not
// decided yet and stay held.
func (t *tailSampler) ForceFlush(ctx context.Context) error {
	return t.next.ForceFlush(ctx)
}

// keptLog remembers the last keptLogSize kept root spans.
type keptLog struct {
	ring [keptLogSize]trace.SpanID
	next int
	ids  map[trace.SpanID]struct{}
}

func (k *keptLog) add(id trace.SpanID) {
	if old := k.ring[k.next]; old.IsValid() {
		delete(k.ids, old)
	}
	k.ring[k.next] = id
	k.ids[id] = struct{}{}
	k.next = (k.next + 1) % keptLogSize
}

// checkFailed reports whether a span says its check failed.
func checkFailed(s sdktrace.ReadOnlySpan) bool {
	for _, kv := range s.Attributes() {
		if kv.Key == AttrSuccess && kv.Value.Type() == attribute.BOOL {
			return !kv.Value.AsBool()
		}
	}
	return false
}

// headSampler records every span (the tail sampler decides what is kept)
// and flags as sampled the traces the sample ratio chooses, by trace ID, or
// whose remote parent was sampled: the flag is the decision known when a
// request leaves, which a target's parent-based sampler follows. Traces
// kept later (failed, slow) are exported flagged sampled (keptSpan).
type headSampler struct{ tail *tailSampler }

func (h headSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	res := sdktrace.SamplingResult{Decision: sdktrace.RecordOnly, Tracestate: psc.TraceState()}
	if psc.IsValid() && psc.IsSampled() || !psc.IsValid() && h.tail.sampled(p.TraceID) {
		res.Decision = sdktrace.RecordAndSample
	}
	return res
}

func (headSampler) Description() string {
	return "vantage head sampler (records all; ratio decides the flag)"
}

// keptSpan is a span of a kept trace: exported with the sampled flag,
// which the batch processor requires, whatever the head decision was.
type keptSpan struct{ sdktrace.ReadOnlySpan }

func (k keptSpan) SpanContext() trace.SpanContext {
	sc := k.ReadOnlySpan.SpanContext()
	return sc.WithTraceFlags(sc.TraceFlags().WithSampled(true))
}
