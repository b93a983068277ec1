package exporter

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/prober/result"
)

// maxStatsRequestBytes bounds a stats request's body: api.MaxStatsTargets
// targets of up to 4 KiB each.
const maxStatsRequestBytes = api.MaxStatsTargets * 4 << 10

// handleStats tells how many scheduled checks of the requested targets
// succeeded, failed or could not tell over the requested range
// (POST /api/v1/stats).
func (e *Exporter) handleStats(w http.ResponseWriter, r *http.Request) {
	var req api.StatsRequest
	if status, err := jsonapi.Decode(w, r, maxStatsRequestBytes, &req, "a JSON object with range_seconds and targets"); err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	if status, err := validateStatsRequest(&req); err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	rng := time.Duration(req.RangeSeconds * float64(time.Second))
	jsonapi.Write(w, http.StatusOK, api.StatsResponse{
		Location: e.opts.Location, Run: e.run,
		Stats: e.counts.stats(req.Targets, rng, time.Now()),
	})
}

// validateStatsRequest says what is wrong with a stats request, with the
// HTTP status to answer; nil when nothing is.
func validateStatsRequest(req *api.StatsRequest) (int, error) {
	switch {
	case req.RangeSeconds <= 0:
		return http.StatusBadRequest, fmt.Errorf("range_seconds must be more than 0, got %g", req.RangeSeconds)
	case req.RangeSeconds > api.MaxStatsRange.Seconds():
		return http.StatusBadRequest, fmt.Errorf("range_seconds must be at most %g (%s), got %g", api.MaxStatsRange.Seconds(), api.MaxStatsRange, req.RangeSeconds)
	case len(req.Targets) == 0:
		return http.StatusBadRequest, errors.New("targets must name at least one target")
	case len(req.Targets) > api.MaxStatsTargets:
		return http.StatusRequestEntityTooLarge, fmt.Errorf("targets holds at most %d targets, got %d", api.MaxStatsTargets, len(req.Targets))
	}
	for i, t := range req.Targets {
		switch {
		case strings.TrimSpace(t.Target) == "":
			return http.StatusBadRequest, fmt.Errorf("targets[%d].target must be set", i)
		case t.Module == "":
			return http.StatusBadRequest, fmt.Errorf("targets[%d].module must be set", i)
		}
	}
	return 0, nil
}

// judgeOutcome is how a scheduled check of a target counts: a success
// succeeded; a failure failed while the location vouches for its
// failures, unknown while its canary's latest check failed (or none has
// run yet) or the exporter is degraded. Unlike a report, a count does not
// wait for a canary check that begins after the failure: it takes the
// verdict in force when the check ends.
func (e *Exporter) judgeOutcome(r *result.Result) checkOutcome {
	switch {
	case r.Success:
		return outcomeSucceeded
	case !e.canary.state.ok() || e.degraded() != "":
		return outcomeUnknown
	}
	return outcomeFailed
}
