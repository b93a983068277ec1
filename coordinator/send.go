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
	"time"
)

// ErrRefused is the class of errors a coordinator answered with a 4xx:
// sending again will not help.
var ErrRefused = errors.New("refused")

// SendOptions configure Send.
type SendOptions struct {
	// URL is the coordinator's base URL.
	URL string
	// Token is the source's bearer token; empty sends none.
	Token string
	// Attempts bounds the tries when the coordinator cannot be reached
	// or answers 5xx (at least 1); Backoff is the wait before the second,
	// doubled each time.
	Attempts int
	Backoff  time.Duration
	Client   *http.Client
}

// Send submits one event, as `vantage-coordinator send` does: it tries
// again when the coordinator cannot be reached or answers 5xx, and fails
// at once (an error wrapping ErrRefused) on a 4xx.
func Send(ctx context.Context, o SendOptions, sub Submission) (Event, error) {
	body, err := json.Marshal(sub)
	if err != nil {
		return Event{}, err
	}
	client := o.Client
	if client == nil {
		client = http.DefaultClient
	}
	var last error
	wait := o.Backoff
	for attempt := range max(1, o.Attempts) {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return Event{}, fmt.Errorf("%w (gave up: %w)", last, ctx.Err())
			case <-time.After(wait):
			}
			wait *= 2
		}
		var e Event
		e, last = sendOnce(ctx, client, o, body)
		if last == nil || errors.Is(last, ErrRefused) {
			return e, last
		}
	}
	return Event{}, last
}

func sendOnce(ctx context.Context, client *http.Client, o SendOptions, body []byte) (Event, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.URL, "/")+"/api/v1/events", bytes.NewReader(body))
	if err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Event{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Event{}, fmt.Errorf("reading the answer: %w", err)
	}
	switch {
	case resp.StatusCode >= 500:
		return Event{}, fmt.Errorf("the coordinator answered %s: %s", resp.Status, apiErrorText(data))
	case resp.StatusCode >= 300:
		return Event{}, fmt.Errorf("%w: the coordinator answered %s: %s", ErrRefused, resp.Status, apiErrorText(data))
	}
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, fmt.Errorf("invalid answer: %w", err)
	}
	return e, nil
}
