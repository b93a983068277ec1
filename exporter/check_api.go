package exporter

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// The check API: the coordinator asks an exporter to check a target now,
// with the same prober code as /probe and the scheduler, and reads the
// typed result.
const (
	maxCheckRequestBytes = 64 << 10
	defaultCheckTimeout  = 10 * time.Second
	maxCheckTimeout      = 2 * time.Minute
)

func (e *Exporter) handleCheck(w http.ResponseWriter, r *http.Request) {
	req, status, err := decodeCheckRequest(w, r)
	if err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	mod, ok := e.config.get().modules[req.Module]
	if !ok {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("unknown module %q", req.Module))
		return
	}
	timeout := checkTimeout(req.TimeoutSeconds, mod.Config.Timeout)
	// The caller's traceparent (the coordinator's verification span)
	// becomes the check span's parent.
	ctx, cancel := context.WithTimeout(e.tracing.Extract(r.Context(), r.Header), timeout)
	defer cancel()
	ctx, span := e.tracer.start(ctx, sourceAPI, req.Module, req.Target, trace.SpanKindServer)
	// The canary runs alongside: should the target fail, the answer
	// carries the verdict of a canary check that began once the target's
	// had begun.
	canary := e.canary.await(time.Now())
	span.serving(r, api.CheckPath)
	result := mod.Probe(ctx, req.Target, prober.Params{Tracing: span != nil, Propagator: e.tracing.Propagator()})
	span.attempt(result)
	span.end(result, 1)
	e.metrics.checks.WithLabelValues(req.Module, resultLabel(result.Success)).Inc()
	if e.trans != nil {
		e.trans.checked(req.Module, req.Target, result)
	}
	jsonapi.Write(w, http.StatusOK, api.CheckResponse{Location: e.opts.Location, CanaryOK: e.checkCanary(ctx, canary, result), Target: req.Target, Module: req.Module, Result: result})
}

// checkCanary is a check answer's canary verdict: after a failure, that of
// the canary check w waits for, within the request's timeout (false,
// cannot tell, when none came in time); the latest one otherwise, or
// without a canary (nil then).
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
	switch {
	case strings.TrimSpace(req.Target) == "":
		return nil, http.StatusBadRequest, errors.New("target must be set")
	case req.Module == "":
		return nil, http.StatusBadRequest, errors.New("module must be set")
	case req.TimeoutSeconds < 0:
		return nil, http.StatusBadRequest, fmt.Errorf("timeout_seconds must not be negative, got %g", req.TimeoutSeconds)
	}
	return &req, 0, nil
}

// checkTimeout is the requested timeout capped by the module's, defaulting to
// the module's (or 10s), and never above two minutes.
func checkTimeout(requestedSeconds float64, moduleTimeout time.Duration) time.Duration {
	t := time.Duration(requestedSeconds * float64(time.Second))
	if t <= 0 {
		t = moduleTimeout
	}
	if moduleTimeout > 0 && t > moduleTimeout {
		t = moduleTimeout
	}
	if t <= 0 {
		t = defaultCheckTimeout
	}
	return min(t, maxCheckTimeout)
}
