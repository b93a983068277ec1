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

// maxChecksPerLocation bounds the check requests in flight to one
// location; a round waiting for a slot past verify_timeout counts that
// location as unknown.
const maxChecksPerLocation = 256

// verifier asks locations to check a target now, for verification rounds
// and the /probe fan-out alike.
type verifier struct {
	client func() *http.Client
	mu     sync.Mutex
	slots  map[string]chan struct{} // per location URL
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

// round asks every location (one member after another) in parallel and returns their answers once
// all have answered or timeout has passed; a location that did not
// answer by then is unknown.
func (v *verifier) round(ctx context.Context, key confirm.Key, locations map[string][]string, timeout time.Duration) []checkAnswer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	answers := make(chan checkAnswer, len(locations))
	for name, urls := range locations {
		go func() { answers <- v.checkMembers(ctx, name, urls, key, timeout) }()
	}
	out := make([]checkAnswer, 0, len(locations))
	for range locations {
		out = append(out, <-answers)
	}
	return out
}

// check asks one location. The exporter's own timeout leaves room for
// the answer to travel back within the round's.
func (v *verifier) check(ctx context.Context, name, baseURL string, key confirm.Key, timeout time.Duration) checkAnswer {
	started := time.Now()
	unknown := func(format string, args ...any) checkAnswer {
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, fmt.Sprintf(format, args...))}
	}
	slot := v.slot(baseURL)
	select {
	case slot <- struct{}{}:
		defer func() { <-slot }()
	case <-ctx.Done():
		return checkAnswer{Evidence: confirm.UnknownEvidence(name, confirm.SourceCheck, started, "no check slot free before verify_timeout"), reachable: true}
	}
	body, _ := json.Marshal(api.CheckRequest{
		Target: key.Target, Module: key.Module,
		TimeoutSeconds: checkBudget(timeout).Seconds(),
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+api.CheckPath, bytes.NewReader(body))
	if err != nil {
		return unknown("building the check request: %s", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := v.client().Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return unknown("no answer within verify_timeout (%s)", timeout)
		}
		return unknown("check request failed: %s", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return unknown("reading the check answer: %s", err)
	}
	if resp.StatusCode != http.StatusOK {
		a := unknown("check answered %s: %s", resp.Status, strings.TrimSpace(apiErrorText(data)))
		a.reachable = true
		return a
	}
	var cr api.CheckResponse
	err = json.Unmarshal(data, &cr)
	if err == nil && cr.Result == nil {
		err = errors.New("no result")
	}
	if err != nil {
		a := unknown("invalid check answer: %s", err)
		a.reachable = true
		return a
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
