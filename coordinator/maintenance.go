package coordinator

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// Maintenance windows: one-off ones made through the API live in the
// replicated state (kind maintenance, kept after they end for the uptime
// history until --storage.retention), so every coordinator peer applies
// them; recurring ones come from the configuration file. The
// confirmation machine asks inMaintenance whether one applies.

// kindMaintenance is the replicated kind of one-off windows, keyed by
// their ID in decimal.
const kindMaintenance = "maintenance"

// maxMaintenanceID bounds the IDs: random below 2^53, so that they are
// exact as JSON numbers in any client (JavaScript's included), and two
// peers creating windows at once do not give the same ID.
const maxMaintenanceID = 1 << 53

// Limits of the maintenance API.
const (
	maxMaintenanceBody     = 64 << 10
	maxMaintenanceMatchers = 50
	maxMaintenanceComment  = 1000
	// maxMaintenances bounds the windows stored that have not ended.
	maxMaintenances = 1000
)

// Maintenance is a one-off maintenance window.
type Maintenance struct {
	ID        uint64    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	Comment   string    `json:"comment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// maintenanceRequest is the body of POST /api/v1/maintenances.
type maintenanceRequest struct {
	Matchers []string `json:"matchers"`
	// StartsAt defaults to now.
	StartsAt time.Time `json:"starts_at"`
	// EndsAt or Duration (a Prometheus duration: 90m, 2h, 1d), not both.
	EndsAt   time.Time `json:"ends_at"`
	Duration string    `json:"duration"`
	Comment  string    `json:"comment"`
}

// window is a window in force, compiled.
type window struct {
	matchers   config.Matchers
	start, end time.Time
}

// maintenanceSet is the windows in force, replaced whole on every change
// so that the machine reads it without locks.
type maintenanceSet struct {
	oneOff    []window
	recurring []config.RecurringMaintenance
	// labels are a target's own labels (team, …) as its reports carry
	// them; nil: none.
	labels func(confirm.Key) []collector.Label
}

// targetLabel is a target's value of a label, for matchers: target,
// module, or one of its own labels ("" when it has none of that name).
func (s *maintenanceSet) targetLabel(k confirm.Key) func(string) string {
	return func(name string) string {
		switch name {
		case "target":
			return k.Target
		case "module":
			return k.Module
		}
		if s != nil && s.labels != nil {
			for _, l := range s.labels(k) {
				if l.Name == name {
					return l.Value
				}
			}
		}
		return ""
	}
}

// applies reports whether a window covers k at t.
func (s *maintenanceSet) applies(k confirm.Key, t time.Time) bool {
	if s == nil {
		return false
	}
	label := s.targetLabel(k)
	for i := range s.oneOff {
		w := &s.oneOff[i]
		if !t.Before(w.start) && t.Before(w.end) && w.matchers.Matches(label) {
			return true
		}
	}
	for i := range s.recurring {
		r := &s.recurring[i]
		if _, ok := r.ActiveAt(t); ok && r.Selects(label) {
			return true
		}
	}
	return false
}

// windows lists the spans of [from, to) that windows cover for k, as
// start and end pairs (they may overlap).
func (s *maintenanceSet) windows(k confirm.Key, from, to time.Time) []interval {
	var out []interval
	label := s.targetLabel(k)
	for i := range s.oneOff {
		w := &s.oneOff[i]
		if w.end.After(from) && w.start.Before(to) && w.matchers.Matches(label) {
			out = append(out, interval{w.start, w.end})
		}
	}
	for i := range s.recurring {
		r := &s.recurring[i]
		if !r.Selects(label) {
			continue
		}
		for _, w := range r.Windows(from, to) {
			out = append(out, interval{w[0], w[1]})
		}
	}
	return out
}

// maintenances holds the set in force; mu orders the API's changes.
type maintenances struct {
	mu  sync.Mutex
	set atomic.Pointer[maintenanceSet]
}

func (m *maintenances) inMaintenance(k confirm.Key, t time.Time) bool {
	return m.set.Load().applies(k, t)
}

// loadMaintenances builds the set in force from the replicated windows
// and the configuration's recurring ones; the caller holds c.maint.mu.
func (c *Coordinator) loadMaintenances() error {
	stored, err := c.storedMaintenances()
	if err != nil {
		return err
	}
	set := &maintenanceSet{recurring: c.conf.Load().Maintenance, labels: func(k confirm.Key) []collector.Label {
		return c.labels.get(api.TargetKey{Target: k.Target, Module: k.Module})
	}}
	for _, mt := range stored {
		ms, err := config.ParseMatchers(mt.Matchers)
		if err != nil {
			return fmt.Errorf("maintenance %d: %w", mt.ID, err)
		}
		set.oneOff = append(set.oneOff, window{matchers: ms, start: mt.StartsAt, end: mt.EndsAt})
	}
	c.maint.set.Store(set)
	return nil
}

// maintenanceChanged applies a peer's change of a window.
func (c *Coordinator) maintenanceChanged(replica.Entry) {
	c.maint.mu.Lock()
	defer c.maint.mu.Unlock()
	if err := c.loadMaintenances(); err != nil {
		c.logger.Error("Applying a peer's maintenance window failed; keeping the windows in force", "err", err)
	}
}

// storedMaintenance is a one-off window and its replicated key.
type storedMaintenance struct {
	key string
	Maintenance
}

// storedMaintenances returns every one-off window, oldest first.
func (c *Coordinator) storedMaintenances() ([]storedMaintenance, error) {
	entries := c.replica.List(kindMaintenance)
	out := make([]storedMaintenance, 0, len(entries))
	for _, e := range entries {
		sm := storedMaintenance{key: e.Key}
		if err := e.Decode(&sm.Maintenance); err != nil {
			return nil, err
		}
		out = append(out, sm)
	}
	slices.SortFunc(out, func(a, b storedMaintenance) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// errTooManyMaintenances refuses a window past maxMaintenances.
var errTooManyMaintenances = fmt.Errorf("%d maintenance windows have not ended yet; delete some first", maxMaintenances)

// addMaintenance stores a new window with a new ID and returns it; the
// caller holds c.maint.mu.
func (c *Coordinator) addMaintenance(mt Maintenance, now time.Time) (Maintenance, error) {
	stored, err := c.storedMaintenances()
	if err != nil {
		return mt, err
	}
	used := map[uint64]bool{}
	current := 0
	for _, old := range stored {
		used[old.ID] = true
		if old.EndsAt.After(now) {
			current++
		}
	}
	if current >= maxMaintenances {
		return mt, errTooManyMaintenances
	}
	for mt.ID == 0 || used[mt.ID] {
		mt.ID = 1 + rand.Uint64N(maxMaintenanceID-1)
	}
	_, err = c.replica.Put(kindMaintenance, strconv.FormatUint(mt.ID, 10), mt, now)
	return mt, err
}

// endMaintenance ends window id at now: one not started yet is deleted,
// one in force ends now and is kept for the uptime history. ok is false
// when there is no window id, or it has already ended. Windows made
// before the replicated state kept their IDs, so two peers may hold one
// each under the same ID: both end.
func (c *Coordinator) endMaintenance(id uint64, now time.Time) (ok bool, err error) {
	stored, err := c.storedMaintenances()
	if err != nil {
		return false, err
	}
	for _, mt := range stored {
		if mt.ID != id || !mt.EndsAt.After(now) {
			continue
		}
		ok = true
		if mt.StartsAt.After(now) {
			_, err = c.replica.Delete(kindMaintenance, mt.key, now)
		} else {
			mt.EndsAt = now.UTC()
			_, err = c.replica.Put(kindMaintenance, mt.key, mt.Maintenance, now)
		}
		if err != nil {
			return ok, err
		}
	}
	return ok, nil
}

// pruneMaintenances deletes the windows that ended before cutoff.
func (c *Coordinator) pruneMaintenances(cutoff, now time.Time) (int, error) {
	c.maint.mu.Lock()
	defer c.maint.mu.Unlock()
	stored, err := c.storedMaintenances()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mt := range stored {
		if mt.EndsAt.Before(cutoff) {
			if _, err := c.replica.Delete(kindMaintenance, mt.key, now); err != nil {
				return n, err
			}
			n++
		}
	}
	if n > 0 {
		err = c.loadMaintenances()
	}
	return n, err
}

// parse validates a request into a window at now.
func (r *maintenanceRequest) parse(now time.Time) (Maintenance, config.Matchers, error) {
	mt := Maintenance{Matchers: r.Matchers, StartsAt: r.StartsAt, EndsAt: r.EndsAt, Comment: r.Comment, CreatedAt: now}
	if len(r.Matchers) > maxMaintenanceMatchers {
		return mt, nil, fmt.Errorf("matchers: at most %d, got %d", maxMaintenanceMatchers, len(r.Matchers))
	}
	ms, err := config.ParseMatchers(r.Matchers)
	if err != nil {
		return mt, nil, fmt.Errorf("matchers: %w", err)
	}
	if len(r.Comment) > maxMaintenanceComment {
		return mt, nil, fmt.Errorf("comment: at most %d bytes, got %d", maxMaintenanceComment, len(r.Comment))
	}
	if mt.StartsAt.IsZero() {
		mt.StartsAt = now
	}
	switch {
	case r.Duration != "" && !r.EndsAt.IsZero():
		return mt, nil, errors.New("ends_at and duration: give one of them, not both")
	case r.Duration != "":
		d, err := model.ParseDuration(r.Duration)
		if err != nil || d <= 0 {
			return mt, nil, fmt.Errorf("duration: want a positive duration such as 90m, 2h or 1d, got %q", r.Duration)
		}
		mt.EndsAt = mt.StartsAt.Add(time.Duration(d))
	case r.EndsAt.IsZero():
		return mt, nil, errors.New("ends_at or duration must be given")
	}
	switch {
	case !mt.EndsAt.After(mt.StartsAt):
		return mt, nil, fmt.Errorf("ends_at %s must be after starts_at %s", mt.EndsAt.Format(time.RFC3339), mt.StartsAt.Format(time.RFC3339))
	case !mt.EndsAt.After(now):
		return mt, nil, fmt.Errorf("ends_at %s is in the past", mt.EndsAt.Format(time.RFC3339))
	}
	mt.StartsAt, mt.EndsAt, mt.CreatedAt = mt.StartsAt.UTC(), mt.EndsAt.UTC(), mt.CreatedAt.UTC()
	return mt, ms, nil
}

func (c *Coordinator) handleCreateMaintenance(w http.ResponseWriter, r *http.Request) {
	var req maintenanceRequest
	if status, err := jsonapi.Decode(w, r, maxMaintenanceBody, &req, `{"matchers": [...], "starts_at": ..., "ends_at" or "duration": ..., "comment": ...}`); err != nil {
		jsonapi.WriteError(w, status, err)
		return
	}
	now := time.Now()
	mt, _, err := req.parse(now)
	if err != nil {
		jsonapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	c.maint.mu.Lock()
	defer c.maint.mu.Unlock()
	mt, err = c.addMaintenance(mt, now)
	switch {
	case errors.Is(err, errTooManyMaintenances):
		jsonapi.WriteError(w, http.StatusTooManyRequests, err)
		return
	case err != nil:
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	if err := c.loadMaintenances(); err != nil {
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	c.logger.Info("Maintenance window added", "id", mt.ID, "matchers", fmt.Sprint(mt.Matchers), "starts_at", mt.StartsAt, "ends_at", mt.EndsAt, "comment", mt.Comment)
	jsonapi.Write(w, http.StatusCreated, mt)
}

// pathID reads the {id} of a request's path, answering 400 when it is
// not a number; what names the thing identified.
func pathID(w http.ResponseWriter, r *http.Request, what string) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("%s id must be a positive integer, got %q", what, r.PathValue("id")))
		return 0, false
	}
	return id, true
}

func (c *Coordinator) handleDeleteMaintenance(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "maintenance")
	if !ok {
		return
	}
	c.maint.mu.Lock()
	defer c.maint.mu.Unlock()
	ok, err := c.endMaintenance(id, time.Now())
	if err == nil && ok {
		err = c.loadMaintenances()
	}
	switch {
	case err != nil:
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
	case !ok:
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Errorf("no maintenance window %d in force or planned", id))
	default:
		c.logger.Info("Maintenance window ended", "id", id)
		w.WriteHeader(http.StatusNoContent)
	}
}

// MaintenanceView is a window as GET /api/v1/maintenances lists it.
type MaintenanceView struct {
	// Source is api (a one-off window, with ID) or config (a recurring
	// one, with Name, Schedule and Duration; StartsAt and EndsAt are its
	// current or next window).
	Source   string    `json:"source"`
	ID       uint64    `json:"id,omitempty"`
	Name     string    `json:"name,omitempty"`
	Matchers []string  `json:"matchers"`
	StartsAt time.Time `json:"starts_at,omitzero"`
	EndsAt   time.Time `json:"ends_at,omitzero"`
	Schedule string    `json:"schedule,omitempty"`
	Duration string    `json:"duration,omitempty"`
	Comment  string    `json:"comment,omitempty"`
	// Status is pending, active or expired.
	Status string `json:"status"`
}

// handleMaintenances lists the windows: the recurring ones, then the
// one-off ones newest first (?state=all includes the expired ones).
func (c *Coordinator) handleMaintenances(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state != "" && state != "all" && state != "current" {
		jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("state must be current or all, got %q", state))
		return
	}
	stored, err := c.storedMaintenances()
	if err != nil {
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	now := time.Now()
	out := []MaintenanceView{}
	for _, rm := range c.conf.Load().Maintenance {
		v := MaintenanceView{Source: "config", Name: rm.Name, Matchers: rm.Matchers, Schedule: rm.Schedule,
			Duration: model.Duration(rm.Duration).String(), Comment: rm.Comment, Status: "pending"}
		if start, ok := rm.ActiveAt(now); ok {
			v.StartsAt, v.Status = start, "active"
		} else if ws := rm.Windows(now, now.Add(366*24*time.Hour)); len(ws) > 0 {
			v.StartsAt = ws[0][0]
		}
		if !v.StartsAt.IsZero() {
			v.StartsAt = v.StartsAt.UTC()
			v.EndsAt = v.StartsAt.Add(rm.Duration)
		}
		out = append(out, v)
	}
	slices.Reverse(stored)
	for _, mt := range stored {
		v := MaintenanceView{Source: "api", ID: mt.ID, Matchers: mt.Matchers, StartsAt: mt.StartsAt, EndsAt: mt.EndsAt, Comment: mt.Comment, Status: "active"}
		switch {
		case !mt.EndsAt.After(now):
			v.Status = "expired"
			if state != "all" {
				continue
			}
		case mt.StartsAt.After(now):
			v.Status = "pending"
		}
		out = append(out, v)
	}
	jsonapi.Write(w, http.StatusOK, out)
}

// maintenanceCollector renders vantage_target_maintenance: 1 for each
// known target a window applies to now.
type maintenanceCollector struct {
	c    *Coordinator
	desc *prometheus.Desc
}

func newMaintenanceCollector(c *Coordinator) *maintenanceCollector {
	return &maintenanceCollector{c: c, desc: prometheus.NewDesc("vantage_target_maintenance",
		"1 while a maintenance window applies to the target: its failures are recorded but never confirmed; absent otherwise.",
		[]string{"target", "module"}, nil)}
}

func (m *maintenanceCollector) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

func (m *maintenanceCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	set := m.c.maint.set.Load()
	if set == nil || (len(set.oneOff) == 0 && len(set.recurring) == 0) {
		return
	}
	for _, t := range m.c.targets() {
		if set.applies(confirm.Key{Target: t.Target, Module: t.Module}, now) {
			ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, 1, t.Target, t.Module)
		}
	}
}
