package coordinator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
	"github.com/vantageprobe/vantage/prober/result"
)

// maxChecksPerLocation bounds the single check requests the /probe
// fan-out has in flight to one location; a location waiting for a slot
// past the timeout counts as unknown.
const maxChecksPerLocation = 256

// maxAnswerBytes bounds a check answer read from an exporter; a batch's
// answer may be api.MaxCheckBatch times larger.
const maxAnswerBytes = 1 << 20

// verifier asks locations to check targets now: one target per request
// (the /probe fan-out, and exporters without the batch API) or many
// (verification rounds, through the dispatcher).
type verifier struct {
	client func() *http.Client
	mu     sync.Mutex
	slots  map[string]chan struct{} // per location URL, for check
}

func newVerifier(client func() *http.Client) *verifier {
	return &verifier{client: client, slots: map[string]chan struct{}{}}
}

func (v *verifier) slot(url string) chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.slots[url]
	if !ok {
		s = make(chan struct{}, maxChecksPerLocation)
		v.slots[url] = s
	}
	return s
}

// checkAnswer is one location's answer, with what the coordinator learnt
// about the location itself.
type checkAnswer struct {
	confirm.Evidence
	// reachable is false when the location did not answer the request.
	reachable bool
	// answered: the exporter sent a check answer, whose canaryOK is
	// its canary's verdict (nil: not failing).
	answered bool
	canaryOK *bool
	// result is what the location's check found, when it answered one;
	// also when its failing canary makes the evidence unknown.
	result *result.Result
}

// contact is what the answer says about the location's health.
func (a *checkAnswer) contact() contact {
	c := contact{reachable: a.reachable, message: a.answered, canaryOK: a.canaryOK}
	if !a.reachable {
		c.err = a.Error
	}
	return c
}

// overload is the answer for a check the coordinator had no capacity to
// send in time: no evidence about the target, nor about the location.
func overload(location string, at time.Time, why string) checkAnswer {
	return checkAnswer{Evidence: confirm.Evidence{Location: location, Time: at, Source: confirm.SourceOverload, Result: confirm.OutcomeUnknown, Error: why}}
}

// isOverload tells answers the coordinator made up for want of capacity.
func (a *checkAnswer) isOverload() bool { return a.Source == confirm.SourceOverload }

// check asks one location with a single check request, for the /probe
// fan-out: at most maxChecksPerLocation at once per location. The
// exporter's own timeout leaves room for the answer to travel back within
// timeout.
func (v *verifier) check(ctx context.Context, name, baseURL string, key confirm.Key, timeout time.Duration) checkAnswer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	slot := v.slot(baseURL)
	select {
	case slot <- struct{}{}:
		defer func() { <-slot }()
	case <-ctx.Done():
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, time.Now(), "no check slot free before the timeout"), reachable: true}
	}
	return v.ask(ctx, name, baseURL, api.CheckRequest{Target: key.Target, Module: key.Module, TimeoutSeconds: checkBudget(timeout).Seconds()}, timeout)
}

// ask sends one check request to a location and reads its answer; ctx
// bounds it (timeout is its length, for the message when it passes).
func (v *verifier) ask(ctx context.Context, name, baseURL string, cr api.CheckRequest, timeout time.Duration) checkAnswer {
	started := time.Now()
	var resp api.CheckResponse
	if err := v.post(ctx, baseURL, api.CheckPath, cr, &resp, maxAnswerBytes); err != nil {
		return failedRequest(ctx, name, started, timeout, err)
	}
	if resp.Result == nil {
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, "invalid check answer: no result"), reachable: true}
	}
	return answerFrom(name, &resp, started)
}

// askBatch sends one batch of checks to a location's base URL and reads
// its answer: one result per check, in order. An exporter that does not
// serve the batch API answers errBatchUnsupported.
func (v *verifier) askBatch(ctx context.Context, baseURL string, req *api.CheckBatchRequest) (*api.CheckBatchResponse, error) {
	var resp api.CheckBatchResponse
	if err := v.post(ctx, baseURL, api.CheckBatchPath, req, &resp, int64(len(req.Checks))*maxAnswerBytes); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(req.Checks) {
		return nil, &answerError{fmt.Errorf("invalid check answer: %d results for %d checks", len(resp.Results), len(req.Checks))}
	}
	return &resp, nil
}

// errBatchUnsupported: the exporter answered 404 to the batch API (it
// predates it).
var errBatchUnsupported = errors.New("the exporter does not serve " + api.CheckBatchPath)

// answerError is an answer that came back but says no check was made (a
// status other than 200, or a body that does not read): the location is
// reachable.
type answerError struct{ err error }

func (e *answerError) Error() string { return e.err.Error() }
func (e *answerError) Unwrap() error { return e.err }

// post sends body as JSON to baseURL+path and decodes the 200 answer into
// out, reading at most limit bytes.
func (v *verifier) post(ctx context.Context, baseURL, path string, body, out any, limit int64) error {
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("building the check request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client().Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err = io.ReadAll(io.LimitReader(resp.Body, limit))
	switch {
	case err != nil:
		return fmt.Errorf("reading the check answer: %w", err)
	case resp.StatusCode == http.StatusNotFound && path == api.CheckBatchPath:
		return errBatchUnsupported
	case resp.StatusCode == http.StatusNotFound && path == api.StatsPath:
		return &answerError{errStatsUnsupported}
	case resp.StatusCode != http.StatusOK:
		return &answerError{fmt.Errorf("%s answered %s: %s", what(path), resp.Status, strings.TrimSpace(apiErrorText(data)))}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &answerError{fmt.Errorf("invalid %s answer: %w", what(path), err)}
	}
	return nil
}

// errStatsUnsupported: the exporter answered 404 to the stats API (it
// predates it).
var errStatsUnsupported = errors.New("the exporter does not serve " + api.StatsPath)

// what names the request to path in messages.
func what(path string) string {
	if path == api.StatsPath {
		return "stats"
	}
	return "check"
}

// failedRequest is the answer of a location whose check request failed.
func failedRequest(ctx context.Context, name string, started time.Time, timeout time.Duration, err error) checkAnswer {
	var ae *answerError
	switch {
	case errors.As(err, &ae):
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, err.Error()), reachable: true}
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, fmt.Sprintf("no answer within verify_timeout (%s)", timeout))}
	}
	return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, "check request failed: "+err.Error())}
}

// answerFrom reads an exporter's answer to one check: a failure is
// evidence only while the location's canary passes.
func answerFrom(name string, cr *api.CheckResponse, started time.Time) checkAnswer {
	if cr.Error != "" || cr.Result == nil {
		why := cr.Error
		if why == "" {
			why = "invalid check answer: no result"
		}
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, "the location could not check: "+why), reachable: true}
	}
	a := checkAnswer{reachable: true, answered: true, canaryOK: cr.CanaryOK, result: cr.Result}
	if cr.CanaryOK != nil && !*cr.CanaryOK {
		a.Evidence = confirm.UnknownEvidence(name, confirm.SourceCheck, started, api.ErrCanaryFailing.Error())
		return a
	}
	a.Evidence = confirm.EvidenceFrom(name, confirm.SourceCheck, cr.Result, started)
	return a
}

// checkBudget is the time an exporter gets for a check inside a round.
func checkBudget(timeout time.Duration) time.Duration {
	return timeout - min(timeout/10, time.Second)
}

// apiErrorText reads the exporters' JSON error body (a jsonapi.Error), or
// returns it as is.
func apiErrorText(data []byte) string {
	var e jsonapi.Error
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return e.Error
	}
	return string(data)
}
