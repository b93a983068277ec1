package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// submit posts a form to /api/v1/events and decodes the answer.
func submit(t *testing.T, base, token string, form url.Values) (int, Event, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/events", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	var e Event
	_ = json.Unmarshal(raw, &e)
	var apiErr struct{ Error string }
	if json.Unmarshal(raw, &apiErr) == nil && apiErr.Error != "" {
		return resp.StatusCode, e, apiErr.Error
	}
	return resp.StatusCode, e, string(raw)
}

func eventState(t *testing.T, base, source, id string) Event {
	t.Helper()
	status, body := do(t, http.MethodGet, base+"/api/v1/events/"+id+"?source="+url.QueryEscape(source), "", "")
	var e Event
	if err := json.Unmarshal([]byte(body), &e); status != http.StatusOK || err != nil {
		t.Fatalf("event %s/%s: %d %s %v", source, id, status, body, err)
	}
	return e
}

// A heartbeat every second with raise=+3s stays pending; once it stops,
// the event is raised within 3s ± 1s; clear clears it.
func TestHeartbeatRaisesWhenItStops(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	beat := url.Values{"id": {"backup"}, "raise": {"+3s"}, "subject": {"nightly backup"}, "label": {"team=storage", "severity=critical"}}
	status, e, body := submit(t, c.url, "", beat)
	if status != http.StatusCreated || e.State != EventPending || e.Source != "127.0.0.1" {
		t.Fatalf("first beat: %d %s, want 201 pending from 127.0.0.1", status, body)
	}
	for range 4 {
		time.Sleep(time.Second)
		if status, e, body = submit(t, c.url, "", beat); status != http.StatusOK || e.State != EventPending {
			t.Fatalf("beat: %d %s, want 200 pending", status, body)
		}
	}
	last := e.LastReceived
	var raisedAfter time.Duration
	testbin.WaitFor(t, "the event raised", 6*time.Second, func() error {
		if e := eventState(t, c.url, "127.0.0.1", "backup"); e.State != EventRaised {
			return fmt.Errorf("state %s", e.State)
		}
		raisedAfter = time.Since(last)
		return nil
	})
	if raisedAfter < 2*time.Second || raisedAfter > 4*time.Second+500*time.Millisecond {
		t.Errorf("raised %s after the last beat, want 3s ± 1s", raisedAfter)
	}
	series := `vantage_event_raised{id="backup",severity="critical",source="127.0.0.1",team="storage"} 1`
	if m := metricsText(t, c.url); !strings.Contains(m, series) {
		t.Errorf("metrics lack %s", series)
	}
	if status, body := do(t, http.MethodPost, c.url+"/api/v1/events/backup/ack", "", ""); status != http.StatusOK || !strings.Contains(body, `"acknowledged"`) {
		t.Errorf("ack: %d %s", status, body)
	}
	if status, e, body = submit(t, c.url, "", url.Values{"id": {"backup"}, "raise": {"clear"}}); status != http.StatusOK || e.State != EventCleared {
		t.Errorf("clear: %d %s, want 200 cleared", status, body)
	}
	if m := metricsText(t, c.url); !strings.Contains(m, strings.TrimSuffix(series, "1")+"0") {
		t.Errorf("after clear, metrics lack vantage_event_raised 0 with the event's labels:\n%s", grepLines(m, "vantage_event_raised"))
	}
}

// An event whose raise time passes while the coordinator is down is
// raised as soon as it is back.
func TestEventDueWhileDownIsRaisedAtStart(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "data")
	config := deadLocations(t, "ams", "fra")
	_, srv, _ := startAt(t, config, storage)
	if status, _, body := submit(t, srv.URL, "", url.Values{"id": {"cron"}, "raise": {"+2s"}}); status != http.StatusCreated {
		t.Fatalf("submit: %d %s", status, body)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	started := time.Now()
	_, srv, _ = startAt(t, config, storage)
	testbin.WaitFor(t, "the overdue event raised", 3*time.Second, func() error {
		if e := eventState(t, srv.URL, "127.0.0.1", "cron"); e.State != EventRaised {
			return fmt.Errorf("state %s", e.State)
		}
		return nil
	})
	t.Logf("raised %s after the restart", time.Since(started).Round(time.Millisecond))
}

// Bad submissions get a 4xx naming the field and are counted; nothing is
// stored.
func TestEventSubmissionsAreValidated(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "backup.token")
	mustWrite(t, tokenFile, "s3cret\n")
	events := "events:\n  sources:\n    - {name: backup-host, token_file: %q}\n  max_per_source: 2\n  burst: %d\n  requests_per_second: 0.5\n"
	c := mustStart(t, deadLocations(t, "ams", "fra")+fmt.Sprintf(events, tokenFile, 100))
	for _, tc := range []struct {
		name   string
		token  string
		form   url.Values
		status int
		want   string
	}{
		{"no token", "", url.Values{"id": {"a"}, "raise": {"now"}}, 401, "no bearer token"},
		{"wrong token", "nope", url.Values{"id": {"a"}, "raise": {"now"}}, 401, "none of events.sources"},
		{"no id", "s3cret", url.Values{"raise": {"now"}}, 400, "id must be set"},
		{"bad id", "s3cret", url.Values{"id": {"a b"}, "raise": {"now"}}, 400, `id "a b"`},
		{"bad raise", "s3cret", url.Values{"id": {"a"}, "raise": {"soon"}}, 400, "raise must be now, clear, +<duration> or an RFC 3339 time"},
		{"negative raise", "s3cret", url.Values{"id": {"a"}, "raise": {"+-5m"}}, 400, "raise"},
		{"big detail", "s3cret", url.Values{"id": {"a"}, "raise": {"now"}, "detail": {strings.Repeat("x", 5000)}}, 400, "detail is 5000 bytes; at most 4096"},
		{"reserved label", "s3cret", url.Values{"id": {"a"}, "raise": {"now"}, "label": {"instance=x"}}, 400, `"instance" is reserved`},
	} {
		status, _, body := submit(t, c.url, tc.token, tc.form)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, status, body, tc.status, tc.want)
		}
	}
	if n := len(c.events.list()); n != 0 {
		t.Errorf("%d events stored after refused submissions", n)
	}
	if v := testutil.ToFloat64(c.metrics.eventsRefused.WithLabelValues(refuseInvalid)); v != 6 {
		t.Errorf("refused{invalid} = %v, want 6", v)
	}
	if v := testutil.ToFloat64(c.metrics.eventsRefused.WithLabelValues(refuseUnauthorized)); v != 2 {
		t.Errorf("refused{unauthorized} = %v, want 2", v)
	}
	// The source is the token's name; it may hold two events.
	for i, id := range []string{"one", "two"} {
		if status, e, body := submit(t, c.url, "s3cret", url.Values{"id": {id}, "raise": {"+1h"}}); status != 201 || e.Source != "backup-host" {
			t.Fatalf("event %d: %d %s, want 201 from backup-host", i, status, body)
		}
	}
	if status, _, body := submit(t, c.url, "s3cret", url.Values{"id": {"three"}, "raise": {"+1h"}}); status != 422 || !strings.Contains(body, "max_per_source") {
		t.Errorf("a third event: %d %s, want 422 naming max_per_source", status, body)
	}
	// Each source's requests are limited (a burst of 3 at 0.5/s).
	c = mustStart(t, deadLocations(t, "ams", "fra")+fmt.Sprintf(events, tokenFile, 3))
	var limited int
	for range 10 {
		if status, _, _ := submit(t, c.url, "s3cret", url.Values{"id": {"one"}, "raise": {"+1h"}}); status == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 7 || testutil.ToFloat64(c.metrics.eventsRefused.WithLabelValues(refuseRateLimited)) != float64(limited) {
		t.Errorf("%d of 10 quick submissions refused as rate limited (counter %v), want at least 7 (burst 3), all counted",
			limited, testutil.ToFloat64(c.metrics.eventsRefused.WithLabelValues(refuseRateLimited)))
	}
}

// JSON submissions work as forms do.
func TestEventSubmittedAsJSON(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	status, body := do(t, http.MethodPost, c.url+"/api/v1/events", "application/json",
		`{"id": "deploy", "raise": "now", "subject": "deploy failed", "labels": {"team": "web"}}`)
	var e Event
	if err := json.Unmarshal([]byte(body), &e); status != http.StatusCreated || err != nil || e.State != EventRaised || e.Labels["team"] != "web" {
		t.Fatalf("JSON submit: %d %s", status, body)
	}
	status, body = do(t, http.MethodPost, c.url+"/api/v1/events", "application/json", `{"id": "x", "raise": "now", "color": "red"}`)
	if status != http.StatusBadRequest || !strings.Contains(body, "color") {
		t.Errorf("unknown field: %d %s, want 400 naming it", status, body)
	}
	status, body = do(t, http.MethodGet, c.url+"/events", "", "")
	if status != http.StatusOK || !strings.Contains(body, "deploy failed") || !strings.Contains(body, `class="raised"`) {
		t.Errorf("events page: %d, lacks the raised event", status)
	}
}

func metricsText(t *testing.T, base string) string {
	t.Helper()
	_, body := do(t, http.MethodGet, base+"/metrics", "", "")
	return body
}

func grepLines(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
