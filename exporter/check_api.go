package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// The check API: the coordinator asks an exporter to check a target now,
// with the same prober code as /probe and the scheduler, and reads the
// typed result. A check follows the scheduler's retry policy (retries
// that fit in its timeout), or answers with the target's latest scheduled
// check when that one is fresh, so both kinds of evidence agree.
const (
	maxCheckRequestBytes = 64 << 10
	defaultCheckTimeout  = 10 * time.Second
	maxCheckTimeout      = 2 * time.Minute
	// maxCheckBatchBytes bounds a batch's body: api.MaxCheckBatch checks
	// of up to 4 KiB each.
	maxCheckBatchBytes = api.MaxCheckBatch * 4 << 10
	// batchWorkers bounds the checks of one batch running at once.
	batchWorkers = 128
)

func (e *Exporter) handleCheck(w http.ResponseWriter, r *http.Request) {
	req, status, err := decodeCheckRequest(w, r)
	if err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	st := e.config.get()
	mod, ok := st.modules[req.Module]
	if !ok {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("unknown module %q", req.Module))
		return
	}
	c := e.newCheck(e.traceParent(r, req), req, 0, mod, st)
	c.served, c.route = r, api.CheckPath
	c.run()
	jsonapi.Write(w, http.StatusOK, c.answer(r.Context()))
}

// handleCheckBatch checks many targets (POST /api/v1/checks), at most
// batchWorkers at once, each as handleCheck would; a check that cannot be
// made (unknown module, invalid request) gets an error of its own.
func (e *Exporter) handleCheckBatch(w http.ResponseWriter, r *http.Request) {
	var req api.CheckBatchRequest
	if status, err := jsonapi.Decode(w, r, maxCheckBatchBytes, &req, "a JSON object with checks"); err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	switch {
	case len(req.Checks) > api.MaxCheckBatch:
		jsonapi.WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("a batch holds at most %d checks, got %d", api.MaxCheckBatch, len(req.Checks)))
		return
	case req.TimeoutSeconds < 0:
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("timeout_seconds must not be negative, got %g", req.TimeoutSeconds))
		return
	}
	st := e.config.get()
	checks := make([]*check, len(req.Checks))
	out := api.CheckBatchResponse{Location: e.opts.Location, Results: make([]api.CheckResponse, len(req.Checks))}
	for i := range req.Checks {
		cr := &req.Checks[i]
		if err := validateCheckRequest(cr); err != nil {
			out.Results[i] = api.CheckResponse{Target: cr.Target, Module: cr.Module, Error: fmt.Sprintf("checks[%d]: %s", i, err)}
			continue
		}
		mod, ok := st.modules[cr.Module]
		if !ok {
			out.Results[i] = api.CheckResponse{Target: cr.Target, Module: cr.Module, Error: fmt.Sprintf("checks[%d]: unknown module %q", i, cr.Module)}
			continue
		}
		checks[i] = e.newCheck(e.traceParent(r, cr), cr, req.TimeoutSeconds, mod, st)
		checks[i].served, checks[i].route = r, api.CheckBatchPath
	}
	work := make(chan *check)
	var wg sync.WaitGroup
	for range min(len(req.Checks), batchWorkers) {
		wg.Go(func() {
			for c := range work {
				c.run()
			}
		})
	}
	for _, c := range checks {
		if c != nil {
			work <- c
		}
	}
	close(work)
	wg.Wait()
	// The canary verdicts come last: every failed check waits for a
	// canary check that began once it had, and they share such checks.
	for i, c := range checks {
		if c != nil {
			out.Results[i] = c.answer(r.Context())
		}
	}
	out.CanaryOK = e.canary.state.known()
	jsonapi.Write(w, http.StatusOK, out)
}

// traceParent is the request's context carrying the span a check's span
// becomes the child of: the check's own traceparent when it names one
// (its verification round), the request's traceparent header otherwise.
func (e *Exporter) traceParent(r *http.Request, cr *api.CheckRequest) context.Context {
	if cr.Traceparent != "" {
		return e.tracing.Extract(r.Context(), http.Header{"Traceparent": {cr.Traceparent}})
	}
	return e.tracing.Extract(r.Context(), r.Header)
}

// check is one check asked for through the API.
type check struct {
	e      *Exporter
	ctx    context.Context // carries the caller's span, the check span's parent
	req    *api.CheckRequest
	mod    *prober.Module
	st     *state
	budget time.Duration
	// served is the request the check answers (under route), for its
	// server span.
	served *http.Request
	route  string
	// What run found.
	result       *result.Result
	attempts     int
	fromSchedule bool
	canary       *canaryWait
	deadline     time.Time
}

// newCheck prepares a check of req with mod; defaultTimeout is the batch's
// timeout for a request that sets none (in seconds, 0 for none). The
// budget starts now.
func (e *Exporter) newCheck(ctx context.Context, req *api.CheckRequest, defaultTimeout float64, mod *prober.Module, st *state) *check {
	requested := req.TimeoutSeconds
	if requested == 0 {
		requested = defaultTimeout
	}
	budget := checkBudget(requested, mod.Config.Timeout)
	return &check{e: e, ctx: ctx, req: req, mod: mod, st: st, budget: budget, deadline: time.Now().Add(budget)}
}

// run answers with the target's fresh scheduled result, or checks it now
// with the retry policy; the canary starts alongside a new check, so a
// failure's verdict comes from a canary check that began once the check
// had.
func (c *check) run() {
	e, req := c.e, c.req
	if r, attempts, ok := e.scheduledResult(req, c.budget, time.Now()); ok {
		c.result, c.attempts, c.fromSchedule = r, attempts, true
		if !r.Success {
			c.canary = e.canary.await(r.Start)
		}
		e.metrics.checksFromSchedule.WithLabelValues(req.Module).Inc()
	} else {
		ctx, cancel := context.WithDeadline(c.ctx, c.deadline)
		ctx, span := e.tracer.start(ctx, sourceAPI, req.Module, req.Target, trace.SpanKindServer)
		if c.served != nil {
			span.serving(c.served, c.route)
		}
		c.canary = e.canary.await(time.Now())
		c.result, c.attempts = e.probeWithRetries(ctx, c.mod, req.Target, c.st, c.deadline, span)
		span.end(c.result, c.attempts)
		cancel()
	}
	e.metrics.checks.WithLabelValues(req.Module, resultLabel(c.result.Success)).Inc()
	if e.trans != nil && !c.fromSchedule {
		e.trans.checked(req.Module, req.Target, c.result)
	}
}

// answer is the check's answer, with its canary verdict: for a failure,
// that of the canary check it awaits, waited for until the check's
// deadline or the end of ctx (the request's).
func (c *check) answer(ctx context.Context) api.CheckResponse {
	wctx, cancel := context.WithDeadline(ctx, c.deadline)
	defer cancel()
	return api.CheckResponse{
		Location: c.e.opts.Location, CanaryOK: c.e.checkCanary(wctx, c.canary, c.result),
		Target: c.req.Target, Module: c.req.Module, Result: c.result,
		Attempts: c.attempts, FromSchedule: c.fromSchedule,
	}
}

// probeWithRetries checks target with mod, retrying a failure as the
// scheduler would (scheduler.Settings.Retry), with deadline in place of
// the next planned check. Each attempt lasts up to the module's timeout
// (10s when it sets none), and never past deadline.
func (e *Exporter) probeWithRetries(ctx context.Context, mod *prober.Module, target string, st *state, deadline time.Time, span *checkSpan) (*result.Result, int) {
	settings := schedulerSettings(st)
	timeout := mod.Config.Timeout
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	return settings.Attempts(ctx, timeout, deadline, func(int) *result.Result {
		end := time.Now().Add(timeout)
		if end.After(deadline) {
			end = deadline
		}
		actx, cancel := context.WithDeadline(ctx, end)
		defer cancel()
		r := mod.Probe(actx, target, prober.Params{Tracing: span != nil, Propagator: e.tracing.Propagator()})
		span.attempt(r)
		return r
	})
}

// scheduledResult returns the target's latest scheduled check when it is
// fresh enough to answer for a check asked for now: the target is
// scheduled here, that check (its retries included) ended no longer ago
// than the target's interval, nor than the requested check's budget, and
// it began no earlier than the request's not_before. A check that old is
// what a check made now could at best have found within the same time.
func (e *Exporter) scheduledResult(req *api.CheckRequest, budget time.Duration, now time.Time) (*result.Result, int, bool) {
	latest, interval, ok := e.table.Latest(req.Module, req.Target)
	if !ok || latest.Result == nil || latest.Result.Start.IsZero() || latest.Result.Start.Before(req.NotBefore) {
		return nil, 0, false
	}
	ended := latest.Result.Start.Add(latest.Result.Duration)
	if now.Sub(ended) > min(interval, budget) {
		return nil, 0, false
	}
	return latest.Result, latest.Attempts, true
}

// checkCanary is a check answer's canary verdict: after a failure, that of
// the canary check w waits for, within ctx (false, cannot tell, when none
// came in time); the latest one otherwise, or without a canary (nil then).
func (e *Exporter) checkCanary(ctx context.Context, w *canaryWait, r *result.Result) *bool {
	if w == nil || r.Success {
		w.cancel()
		return e.canary.state.known()
	}
	v, err := w.wait(ctx)
	if err != nil {
		return new(false)
	}
	return new(v.ok)
}

// handleStatus tells who this exporter is, how its canary fares and why
// it cannot vouch for its results, if it cannot (GET /api/v1/status).
func (e *Exporter) handleStatus(w http.ResponseWriter, _ *http.Request) {
	self, members := e.clusterMembers()
	jsonapi.Write(w, http.StatusOK, api.Status{Location: e.opts.Location, Run: e.run, CanaryOK: e.canary.state.known(), Degraded: e.degradedReasons(),
		Member: self, Members: members})
}

// decodeCheckRequest reads and validates a check request, returning the
// HTTP status for its error.
func decodeCheckRequest(w http.ResponseWriter, r *http.Request) (*api.CheckRequest, int, error) {
	var req api.CheckRequest
	if status, err := jsonapi.Decode(w, r, maxCheckRequestBytes, &req, "a JSON object with target and module"); err != nil {
		return nil, status, err
	}
	if err := validateCheckRequest(&req); err != nil {
		return nil, http.StatusBadRequest, err
	}
	return &req, 0, nil
}

// validateCheckRequest says what is wrong with a check request, nil when
// nothing is.
func validateCheckRequest(req *api.CheckRequest) error {
	switch {
	case strings.TrimSpace(req.Target) == "":
		return errors.New("target must be set")
	case req.Module == "":
		return errors.New("module must be set")
	case req.TimeoutSeconds < 0:
		return fmt.Errorf("timeout_seconds must not be negative, got %g", req.TimeoutSeconds)
	}
	return nil
}

// checkBudget is the time a check asked for may take, retries included:
// the requested timeout, or else the module's (10s when it sets none),
// never above two minutes.
func checkBudget(requestedSeconds float64, moduleTimeout time.Duration) time.Duration {
	t := time.Duration(requestedSeconds * float64(time.Second))
	if t <= 0 {
		t = moduleTimeout
	}
	if t <= 0 {
		t = defaultCheckTimeout
	}
	return min(t, maxCheckTimeout)
}
