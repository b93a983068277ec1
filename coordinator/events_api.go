package coordinator

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// maxEventBody bounds a submission's body.
const maxEventBody = 64 << 10

// Why an event request was refused (vantage_events_refused_total).
const (
	refuseUnauthorized = "unauthorized"
	refuseInvalid      = "invalid"
	refuseRateLimited  = "rate_limited"
	refuseTooMany      = "too_many_events"
)

var refuseReasons = []string{refuseUnauthorized, refuseInvalid, refuseRateLimited, refuseTooMany}

// eventSource says who sent r: the name of the source whose token it
// carries when sources are configured, else the client's address.
func (c *Coordinator) eventSource(r *http.Request) (string, error) {
	c.events.mu.Lock()
	sources := c.events.sources
	c.events.mu.Unlock()
	if len(sources) == 0 {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		return host, nil
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return "", errors.New(`no bearer token: want an "Authorization: Bearer TOKEN" header with the token of one of events.sources`)
	}
	for _, s := range sources {
		if s.token.Check(r) == nil {
			return s.name, nil
		}
	}
	return "", errors.New("the bearer token is none of events.sources'")
}

func (c *Coordinator) refuseEvent(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	c.metrics.eventsRefused.WithLabelValues(reason).Inc()
	c.logger.Warn("Refused an event request", "remote", r.RemoteAddr, "reason", reason, "err", err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vantage"`)
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	jsonapi.WriteError(w, status, err)
}

// authorizeEvent identifies the source of a write and applies its rate.
func (c *Coordinator) authorizeEvent(w http.ResponseWriter, r *http.Request) (string, bool) {
	source, err := c.eventSource(r)
	if err != nil {
		c.refuseEvent(w, r, http.StatusUnauthorized, refuseUnauthorized, err)
		return "", false
	}
	if !c.events.allow(source) {
		c.refuseEvent(w, r, http.StatusTooManyRequests, refuseRateLimited,
			fmt.Errorf("source %q sends more than events.requests_per_second allows", source))
		return "", false
	}
	return source, true
}

// handleEventSubmit receives POST /api/v1/events as JSON, as a form, or
// as a query string (curl -d id=backup -d raise=+5m URL): 201 for a new
// event, 200 for an update, once durable.
func (c *Coordinator) handleEventSubmit(w http.ResponseWriter, r *http.Request) {
	source, ok := c.authorizeEvent(w, r)
	if !ok {
		return
	}
	now := time.Now()
	sub, status, err := readSubmission(w, r)
	if err == nil {
		err = sub.validate()
	}
	var rs raise
	if err == nil {
		rs, err = parseRaise(sub.Raise, now)
	}
	if err != nil {
		c.refuseEvent(w, r, cmpStatus(status, http.StatusBadRequest), refuseInvalid, err)
		return
	}
	e, created, err := c.events.submit(source, sub, rs, now)
	switch {
	case errors.Is(err, errTooManyEvents):
		c.refuseEvent(w, r, http.StatusUnprocessableEntity, refuseTooMany, err)
		return
	case err != nil:
		c.metrics.storeErrors.Inc()
		jsonapi.WriteError(w, http.StatusServiceUnavailable, err)
		return
	}
	c.metrics.eventsReceived.WithLabelValues(e.State).Inc()
	status = http.StatusOK
	if created {
		status = http.StatusCreated
	}
	jsonapi.Write(w, status, e)
}

func cmpStatus(status, fallback int) int {
	if status != 0 {
		return status
	}
	return fallback
}

// readSubmission decodes a JSON body, or form and query fields: id,
// raise, subject, detail and label=name=value (repeated).
func readSubmission(w http.ResponseWriter, r *http.Request) (Submission, int, error) {
	var s Submission
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		status, err := jsonapi.Decode(w, r, maxEventBody, &s, "a JSON object with id, raise, subject, detail and labels")
		return s, status, err
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEventBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return s, http.StatusRequestEntityTooLarge, fmt.Errorf("the body is larger than %d bytes", maxEventBody)
		}
		return s, http.StatusBadRequest, fmt.Errorf("reading the form: %w", err)
	}
	for _, f := range []string{"id", "raise", "subject", "detail"} {
		if len(r.Form[f]) > 1 {
			return s, http.StatusBadRequest, fmt.Errorf("%s is given %d times", f, len(r.Form[f]))
		}
	}
	s.ID, s.Raise, s.Subject, s.Detail = r.Form.Get("id"), r.Form.Get("raise"), r.Form.Get("subject"), r.Form.Get("detail")
	for _, l := range r.Form["label"] {
		name, value, ok := strings.Cut(l, "=")
		if !ok {
			return s, http.StatusBadRequest, fmt.Errorf("label %q: want name=value", l)
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		if _, dup := s.Labels[name]; dup {
			return s, http.StatusBadRequest, fmt.Errorf("label %q is given twice", name)
		}
		s.Labels[name] = value
	}
	return s, 0, nil
}

// eventTarget is the (source, id) a request names: the path's id, and
// ?source= or the caller's own source.
func (c *Coordinator) eventTarget(r *http.Request, caller string) (string, string) {
	source := r.URL.Query().Get("source")
	if source == "" {
		source = caller
	}
	return source, r.PathValue("id")
}

func (c *Coordinator) handleEventAck(w http.ResponseWriter, r *http.Request) {
	caller, ok := c.authorizeEvent(w, r)
	if !ok {
		return
	}
	source, id := c.eventTarget(r, caller)
	e, err := c.events.ack(source, id, time.Now())
	switch {
	case errors.Is(err, errEventNotFound):
		jsonapi.WriteError(w, http.StatusNotFound, err)
	case err != nil && e.ID != "":
		jsonapi.WriteError(w, http.StatusConflict, err)
	case err != nil:
		jsonapi.WriteError(w, http.StatusServiceUnavailable, err)
	default:
		jsonapi.Write(w, http.StatusOK, e)
	}
}

func (c *Coordinator) handleEventDelete(w http.ResponseWriter, r *http.Request) {
	caller, ok := c.authorizeEvent(w, r)
	if !ok {
		return
	}
	source, id := c.eventTarget(r, caller)
	switch err := c.events.remove(source, id, time.Now()); {
	case errors.Is(err, errEventNotFound):
		jsonapi.WriteError(w, http.StatusNotFound, err)
	case err != nil:
		jsonapi.WriteError(w, http.StatusServiceUnavailable, err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// handleEvents lists events: ?state= and ?source= filter.
func (c *Coordinator) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state, source := q.Get("state"), q.Get("source")
	if state != "" && !slices.Contains(EventStates, state) {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("state must be one of %s; got %q", strings.Join(EventStates, ", "), state))
		return
	}
	events := slices.DeleteFunc(c.events.list(), func(e Event) bool {
		return (state != "" && e.State != state) || (source != "" && e.Source != source)
	})
	jsonapi.Write(w, http.StatusOK, events)
}

// handleEvent returns one event: GET /api/v1/events/{id}?source=.
func (c *Coordinator) handleEvent(w http.ResponseWriter, r *http.Request) {
	source := r.URL.Query().Get("source")
	if source == "" {
		jsonapi.WriteError(w, http.StatusBadRequest, errors.New("source must be given: ?source=NAME"))
		return
	}
	e, ok := c.events.get(source, r.PathValue("id"))
	if !ok {
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Errorf("%w: source %q has no event %q", errEventNotFound, source, r.PathValue("id")))
		return
	}
	jsonapi.Write(w, http.StatusOK, e)
}

// raiseEvents logs the events whose raise time has come, every second
// (an event is raised by its raise time passing; nothing is written).
func (c *Coordinator) raiseEvents(ctx context.Context) {
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	for {
		for _, e := range c.events.due(time.Now()) {
			c.logger.Info("Event raised", "source", e.Source, "id", e.ID, "subject", e.Subject, "raise_at", e.RaiseAt)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

var eventsPage = template.Must(template.New("events").Funcs(template.FuncMap{
	"at": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>vantage-coordinator: events</title>
<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ddd;text-align:left}
.raised{color:#b00;font-weight:bold}.pending{color:#555}.acknowledged{color:#b60}.cleared{color:#080}</style></head>
<body><h1>Pushed events</h1><p><a href="/">Status</a> · <a href="/api/v1/events">Events (JSON)</a></p>
<table><tr><th>Source</th><th>Id</th><th>State</th><th>Raise at</th><th>Last received</th><th>Subject</th><th>Detail</th></tr>
{{range .}}<tr><td>{{.Source}}</td><td>{{.ID}}</td><td class="{{.State}}">{{.State}}</td><td>{{at .RaiseAt}}</td><td>{{at .LastReceived}}</td><td>{{.Subject}}</td><td>{{.Detail}}</td></tr>
{{else}}<tr><td colspan="7">No events yet.</td></tr>{{end}}
</table></body></html>
`))

func (c *Coordinator) handleEventsPage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := eventsPage.Execute(w, c.events.list()); err != nil {
		c.logger.Error("Rendering the events page failed", "err", err)
	}
}
