package coordinator

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"

	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/webserver"
)

// Pushed events are what cannot be seen from outside: a cron job, a
// backup or a host behind a firewall says "I'm alive" itself. Each
// submission names an id and when to raise the event unless the source
// speaks again ("+5m"), or raises it now, or clears it; the same (source,
// id) is one event, updated by each submission.

// The states of an event.
const (
	// EventPending: the raise time is in the future.
	EventPending = "pending"
	// EventRaised: the raise time passed (or it was raised at once).
	EventRaised = "raised"
	// EventAcknowledged: raised, and someone said they are on it.
	EventAcknowledged = "acknowledged"
	// EventCleared: the source said all is well.
	EventCleared = "cleared"
)

// EventStates lists every state.
var EventStates = []string{EventPending, EventRaised, EventAcknowledged, EventCleared}

// Bounds of an event's fields.
const (
	maxEventSubject = 256
	maxEventDetail  = 4096
	maxEventLabels  = 16
	maxLabelValue   = 256
)

// Event is one pushed event.
type Event struct {
	Source  string            `json:"source"`
	ID      string            `json:"id"`
	State   string            `json:"state"`
	Subject string            `json:"subject,omitempty"`
	Detail  string            `json:"detail,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
	// RaiseAt is when a pending event is raised; when a raised one was.
	RaiseAt        time.Time `json:"raise_at,omitzero"`
	RaisedAt       time.Time `json:"raised_at,omitzero"`
	AcknowledgedAt time.Time `json:"acknowledged_at,omitzero"`
	ClearedAt      time.Time `json:"cleared_at,omitzero"`
	LastReceived   time.Time `json:"last_received"`
	// Submissions counts the submissions received for the event.
	Submissions uint64 `json:"submissions"`
}

// Submission is one POST /api/v1/events.
type Submission struct {
	ID      string            `json:"id"`
	Raise   string            `json:"raise"`
	Subject string            `json:"subject,omitempty"`
	Detail  string            `json:"detail,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// raise is a parsed raise field.
type raise struct {
	at    time.Time
	clear bool
}

// parseRaise reads "now", "clear", "+<duration>" (a Go or Prometheus
// duration: +90s, +5m, +1d) or an RFC 3339 time.
func parseRaise(s string, now time.Time) (raise, error) {
	switch {
	case s == "now":
		return raise{at: now}, nil
	case s == "clear":
		return raise{clear: true}, nil
	case strings.HasPrefix(s, "+"):
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			md, merr := model.ParseDuration(s[1:])
			if merr != nil {
				return raise{}, fmt.Errorf("raise %q: %q is not a duration (e.g. +90s, +5m, +1d)", s, s[1:])
			}
			d = time.Duration(md)
		}
		if d <= 0 {
			return raise{}, fmt.Errorf("raise %q: the duration must be positive", s)
		}
		if d > 366*24*time.Hour {
			return raise{}, fmt.Errorf("raise %q: at most a year ahead", s)
		}
		return raise{at: now.Add(d)}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return raise{}, fmt.Errorf("raise must be now, clear, +<duration> or an RFC 3339 time; got %q", s)
	}
	return raise{at: t}, nil
}

// validate checks a submission's fields; errors name the field.
func (s *Submission) validate() error {
	switch {
	case s.ID == "":
		return errors.New("id must be set")
	case !config.EventNameRE.MatchString(s.ID):
		return fmt.Errorf("id %q: %s", s.ID, config.NameRule)
	case s.Raise == "":
		return errors.New("raise must be set: now, clear, +<duration> or an RFC 3339 time")
	case len(s.Subject) > maxEventSubject:
		return fmt.Errorf("subject is %d bytes; at most %d", len(s.Subject), maxEventSubject)
	case len(s.Detail) > maxEventDetail:
		return fmt.Errorf("detail is %d bytes; at most %d", len(s.Detail), maxEventDetail)
	case len(s.Labels) > maxEventLabels:
		return fmt.Errorf("labels: %d labels; at most %d", len(s.Labels), maxEventLabels)
	}
	for _, name := range slices.Sorted(maps.Keys(s.Labels)) {
		v := s.Labels[name]
		switch {
		case !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, "__"):
			return fmt.Errorf("labels: invalid label name %q", name)
		case slices.Contains(reservedEventLabels, name):
			return fmt.Errorf("labels: %q is reserved (the series carry %s)", name, strings.Join(reservedEventLabels, ", "))
		case len(v) > maxLabelValue:
			return fmt.Errorf("labels.%s is %d bytes; at most %d", name, len(v), maxLabelValue)
		}
	}
	return nil
}

// reservedEventLabels are the labels event series carry themselves, and
// those Prometheus gives meaning to.
var reservedEventLabels = []string{"source", "id", "job", "instance", "le", "quantile"}

type eventKey struct{ source, id string }

// Errors of the event book, mapped to HTTP statuses by the API.
var (
	errEventNotFound = errors.New("no such event")
	errTooManyEvents = errors.New("too many events")
)

// kindEvent is the replicated kind of pushed events, keyed source/id
// (an id holds no '/').
const kindEvent = "event"

func eventEntryKey(source, id string) string { return source + "/" + id }

// raisedAt is e as it stands at now: a pending event whose raise time has
// passed is raised, at its raise time. Raising is derived, never written,
// so every coordinator peer computes the same state from the same
// replicated submission, and none needs to be the one that raises.
func (e Event) raisedAt(now time.Time) Event {
	if e.State == EventPending && !e.RaiseAt.After(now) {
		e.State, e.RaisedAt = EventRaised, e.RaiseAt
	}
	return e
}

// eventBook holds the events, durable and replicated in the replica
// state: a change is written there before it is applied in memory, so
// nothing is half-written. events is the decoded copy of the replica's
// event entries, kept current with the peers' writes by watch.
type eventBook struct {
	mu       sync.Mutex
	rep      *replica.State
	events   map[eventKey]*Event
	limiters map[string]*rate.Limiter
	conf     config.EventsConfig
	sources  []eventSource
	// noticed is when due last looked: events raised since are new.
	noticed time.Time
}

type eventSource struct {
	name  string
	token *webserver.TokenFile
}

func newEventBook() *eventBook {
	return &eventBook{events: map[eventKey]*Event{}, limiters: map[string]*rate.Limiter{}, conf: config.DefaultEvents}
}

// configure applies the events section; token files that cannot be read
// fail the (re)load.
func (b *eventBook) configure(c config.EventsConfig) error {
	sources := make([]eventSource, 0, len(c.Sources))
	for i, s := range c.Sources {
		tf, err := webserver.NewTokenFile(s.TokenFile)
		if err != nil {
			return fmt.Errorf("events.sources[%d] (%s): %w", i, s.Name, err)
		}
		sources = append(sources, eventSource{name: s.Name, token: tf})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.conf, b.sources = c, sources
	clear(b.limiters)
	return nil
}

// load reads the replicated events and follows the peers' changes.
func (b *eventBook) load(rep *replica.State) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rep = rep
	for _, en := range rep.List(kindEvent) {
		var e Event
		if err := en.Decode(&e); err != nil {
			return fmt.Errorf("reading the events: %w", err)
		}
		b.events[eventKey{e.Source, e.ID}] = &e
	}
	rep.Watch(kindEvent, b.changed)
	return nil
}

// changed takes a peer's change of an event: it reads the entry as it
// stands now, so a local write made since is not undone.
func (b *eventBook) changed(en replica.Entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := strings.LastIndexByte(en.Key, '/')
	if i < 0 {
		return
	}
	k := eventKey{en.Key[:i], en.Key[i+1:]}
	cur, ok := b.rep.Get(kindEvent, en.Key)
	var e Event
	if ok && cur.Decode(&e) == nil {
		b.events[k] = &e
	} else {
		delete(b.events, k)
	}
}

// put writes e; the caller holds b.mu.
func (b *eventBook) put(e Event, now time.Time) error {
	if _, err := b.rep.Put(kindEvent, eventEntryKey(e.Source, e.ID), e, now); err != nil {
		return err
	}
	b.events[eventKey{e.Source, e.ID}] = &e
	return nil
}

// allow applies the source's request rate.
func (b *eventBook) allow(source string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.limiters[source]
	if !ok {
		l = rate.NewLimiter(rate.Limit(b.conf.RequestsPerSecond), b.conf.Burst)
		b.limiters[source] = l
	}
	return l.Allow()
}

// submit applies a submission of source; created says whether the event
// is new.
func (b *eventBook) submit(source string, s Submission, r raise, now time.Time) (ev Event, created bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := eventKey{source, s.ID}
	old, ok := b.events[k]
	if !ok && b.count(source) >= b.conf.MaxPerSource {
		return Event{}, false, fmt.Errorf("%w: source %q holds %d events, the most events.max_per_source allows; delete or reuse one", errTooManyEvents, source, b.conf.MaxPerSource)
	}
	e := Event{Source: source, ID: s.ID}
	if ok {
		e = old.raisedAt(now)
	}
	// Detail is each submission's; subject and labels stay until a
	// submission gives new ones, so the event's series keep their labels.
	e.Detail = s.Detail
	if s.Subject != "" {
		e.Subject = s.Subject
	}
	if len(s.Labels) > 0 {
		e.Labels = s.Labels
	}
	e.LastReceived = now
	e.Submissions++
	switch {
	case r.clear:
		e.State, e.ClearedAt, e.RaiseAt = EventCleared, now, time.Time{}
	case r.at.After(now):
		// The source spoke: raised again only if it stops.
		e.State, e.RaiseAt = EventPending, r.at
		e.RaisedAt, e.AcknowledgedAt = time.Time{}, time.Time{}
	case e.State == EventRaised || e.State == EventAcknowledged:
		// Raised again while raised: still the same alarm.
	default:
		e.State, e.RaiseAt, e.RaisedAt, e.AcknowledgedAt = EventRaised, r.at, now, time.Time{}
	}
	if err := b.put(e, now); err != nil {
		return Event{}, false, err
	}
	return e, !ok, nil
}

func (b *eventBook) count(source string) int {
	n := 0
	for k := range b.events {
		if k.source == source {
			n++
		}
	}
	return n
}

// ack acknowledges a raised event.
func (b *eventBook) ack(source, id string, now time.Time) (Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.events[eventKey{source, id}]
	if !ok {
		return Event{}, fmt.Errorf("%w: source %q has no event %q", errEventNotFound, source, id)
	}
	e := old.raisedAt(now)
	if e.State != EventRaised {
		return e, fmt.Errorf("event %q of %q is %s; only a raised event can be acknowledged", id, source, e.State)
	}
	e.State, e.AcknowledgedAt = EventAcknowledged, now
	if err := b.put(e, now); err != nil {
		return Event{}, err
	}
	return e, nil
}

// remove deletes an event.
func (b *eventBook) remove(source, id string, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := eventKey{source, id}
	if _, ok := b.events[k]; !ok {
		return fmt.Errorf("%w: source %q has no event %q", errEventNotFound, source, id)
	}
	if _, err := b.rep.Delete(kindEvent, eventEntryKey(source, id), now); err != nil {
		return err
	}
	delete(b.events, k)
	return nil
}

// due returns the events raised since the last call, for the log: those
// whose raise time passed since, and at the first call every overdue one
// (also those that passed while the coordinator was down).
func (b *eventBook) due(now time.Time) []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	var raised []Event
	for _, e := range b.events {
		if e.State == EventPending && !e.RaiseAt.After(now) && (b.noticed.IsZero() || e.RaiseAt.After(b.noticed)) {
			raised = append(raised, e.raisedAt(now))
		}
	}
	b.noticed = now
	return raised
}

// get returns one event.
func (b *eventBook) get(source, id string) (Event, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.events[eventKey{source, id}]
	if !ok {
		return Event{}, false
	}
	return e.raisedAt(time.Now()), true
}

// list returns every event, by source and id.
func (b *eventBook) list() []Event {
	now := time.Now()
	b.mu.Lock()
	out := make([]Event, 0, len(b.events))
	for _, e := range b.events {
		out = append(out, e.raisedAt(now))
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(a, b Event) int { return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.ID, b.ID)) })
	return out
}

// eventCollector renders each event's series, with its labels.
type eventCollector struct{ book *eventBook }

// Describe sends nothing: the events' label sets vary (an unchecked
// collector).
func (eventCollector) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector.
func (c eventCollector) Collect(ch chan<- prometheus.Metric) {
	for _, e := range c.book.list() {
		names := append([]string{"source", "id"}, slices.Sorted(maps.Keys(e.Labels))...)
		values := []string{e.Source, e.ID}
		for _, n := range names[2:] {
			values = append(values, e.Labels[n])
		}
		desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, names, nil) }
		raised := 0.0
		if e.State == EventRaised {
			raised = 1
		}
		ch <- prometheus.MustNewConstMetric(desc("vantage_event_raised",
			"1 while the pushed event is raised (its source stopped speaking, or raised it); 0 while pending, acknowledged or cleared."),
			prometheus.GaugeValue, raised, values...)
		if !e.RaiseAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(desc("vantage_event_raise_timestamp_seconds",
				"When the event is raised unless its source speaks again (pending), or was raised."),
				prometheus.GaugeValue, float64(e.RaiseAt.UnixNano())/1e9, values...)
		}
		ch <- prometheus.MustNewConstMetric(desc("vantage_event_last_received_timestamp_seconds",
			"When the event's source last submitted it."),
			prometheus.GaugeValue, float64(e.LastReceived.UnixNano())/1e9, values...)
	}
}
