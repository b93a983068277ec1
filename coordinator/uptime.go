package coordinator

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	bolt "go.etcd.io/bbolt"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// Uptime is computed from the incident log: a target is down from the
// start of a confirmed outage (its first failed check) to its end (when
// the locations' intervals tell it, else its resolution), except while a
// maintenance window covers it. Unknown verdicts and failures that were
// never confirmed (false alarms, a suspect location's, maintenance) do not
// count against it.

// interval is [start, end).
type interval struct{ start, end time.Time }

// union merges overlapping intervals clipped to [from, to), in order.
func union(in []interval, from, to time.Time) []interval {
	var clipped []interval
	for _, iv := range in {
		s, e := later(iv.start, from), earlier(iv.end, to)
		if e.After(s) {
			clipped = append(clipped, interval{s, e})
		}
	}
	slices.SortFunc(clipped, func(a, b interval) int { return a.start.Compare(b.start) })
	var out []interval
	for _, iv := range clipped {
		if n := len(out); n > 0 && !iv.start.After(out[n-1].end) {
			out[n-1].end = later(out[n-1].end, iv.end)
			continue
		}
		out = append(out, iv)
	}
	return out
}

// subtract removes the parts of sorted, disjoint intervals that cut
// covers.
func subtract(in, cut []interval) []interval {
	if len(cut) == 0 {
		return in
	}
	out := in
	for _, c := range cut {
		var next []interval
		for _, iv := range out {
			if !c.start.Before(iv.end) || !c.end.After(iv.start) {
				next = append(next, iv)
				continue
			}
			if c.start.After(iv.start) {
				next = append(next, interval{iv.start, c.start})
			}
			if c.end.Before(iv.end) {
				next = append(next, interval{c.end, iv.end})
			}
		}
		out = next
	}
	return out
}

func total(in []interval) time.Duration {
	var d time.Duration
	for _, iv := range in {
		d += iv.end.Sub(iv.start)
	}
	return d
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// incidentEnd is when an incident's failure ended, now while it is open.
func incidentEnd(inc *confirm.Incident, now time.Time) time.Time {
	switch {
	case inc.Open():
		return now
	case !inc.EndedAt.IsZero():
		return inc.EndedAt
	}
	return inc.ResolvedAt
}

// downSpan is the confirmed-down span of an incident, if it was confirmed.
func downSpan(inc *confirm.Incident, now time.Time) (interval, bool) {
	if !inc.Confirmed() {
		return interval{}, false
	}
	iv := interval{inc.StartedAt, incidentEnd(inc, now)}
	return iv, iv.end.After(iv.start)
}

// IncidentsSince returns the incidents open or resolved at or after
// since, grouped by target, oldest first.
func (s *Store) IncidentsSince(since time.Time) (map[confirm.Key][]confirm.Incident, error) {
	out := map[confirm.Key][]confirm.Incident{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIncidents).ForEach(func(_, v []byte) error {
			var inc confirm.Incident
			if err := readIncident(tx, v, &inc); err != nil {
				return err
			}
			if inc.Open() || !inc.ResolvedAt.Before(since) {
				out[inc.Key()] = append(out[inc.Key()], inc)
			}
			return nil
		})
	})
	return out, err
}

// Uptime is a target's availability over a range.
type Uptime struct {
	Target       string    `json:"target"`
	Module       string    `json:"module"`
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	RangeSeconds float64   `json:"range_seconds"`
	// UptimeRatio is 1 - DownSeconds/RangeSeconds.
	UptimeRatio float64 `json:"uptime_ratio"`
	// DownSeconds is the confirmed-down time outside maintenance windows.
	DownSeconds float64 `json:"down_seconds"`
	// MaintenanceSeconds is the time maintenance windows covered.
	MaintenanceSeconds float64 `json:"maintenance_seconds"`
	// Outages are the confirmed outages within the range.
	Outages []OutageSpan `json:"outages"`
	// Locations is each location's reachability: the share of the range
	// it did not see the target fail, from the incidents' evidence (a
	// location fails from its first failing evidence, or the incident's
	// start for its reporter, to its next success or the incident's end).
	Locations []LocationReachability `json:"locations"`
}

// OutageSpan is one confirmed outage within an uptime range.
type OutageSpan struct {
	IncidentID uint64    `json:"incident_id"`
	StartedAt  time.Time `json:"started_at"`
	// EndedAt is zero while the outage goes on.
	EndedAt     time.Time `json:"ended_at,omitzero"`
	DownSeconds float64   `json:"down_seconds"`
}

// LocationReachability is what one location saw over an uptime range.
type LocationReachability struct {
	Location          string  `json:"location"`
	FailingSeconds    float64 `json:"failing_seconds"`
	ReachabilityRatio float64 `json:"reachability_ratio"`
}

// computeUptime computes k's uptime over [from, to) from its incidents
// and the maintenance windows.
func computeUptime(k confirm.Key, incidents []confirm.Incident, set *maintenanceSet, from, to time.Time) Uptime {
	u := Uptime{Target: k.Target, Module: k.Module, From: from, To: to, RangeSeconds: to.Sub(from).Seconds(), Outages: []OutageSpan{}, Locations: []LocationReachability{}}
	var maint []interval
	if set != nil {
		maint = union(set.windows(k, from, to), from, to)
	}
	var down []interval
	failing := map[string][]interval{}
	for i := range incidents {
		inc := &incidents[i]
		if iv, ok := downSpan(inc, to); ok {
			spans := subtract(union([]interval{iv}, from, to), maint)
			if len(spans) > 0 {
				o := OutageSpan{IncidentID: inc.ID, StartedAt: inc.StartedAt, DownSeconds: total(spans).Seconds()}
				if !inc.Open() {
					o.EndedAt = iv.end
				}
				u.Outages = append(u.Outages, o)
			}
			down = append(down, spans...)
		}
		for loc, ivs := range locationFailures(inc, to) {
			failing[loc] = append(failing[loc], ivs...)
		}
	}
	d := total(union(down, from, to))
	u.DownSeconds = d.Seconds()
	u.MaintenanceSeconds = total(maint).Seconds()
	u.UptimeRatio = 1 - d.Seconds()/u.RangeSeconds
	for loc, ivs := range failing {
		f := total(union(ivs, from, to)).Seconds()
		u.Locations = append(u.Locations, LocationReachability{Location: loc, FailingSeconds: f, ReachabilityRatio: 1 - f/u.RangeSeconds})
	}
	slices.SortFunc(u.Locations, func(a, b LocationReachability) int { return cmp.Compare(a.Location, b.Location) })
	slices.SortFunc(u.Outages, func(a, b OutageSpan) int { return a.StartedAt.Compare(b.StartedAt) })
	return u
}

// locationFailures reads, from an incident's evidence, when each location
// saw the target fail.
func locationFailures(inc *confirm.Incident, now time.Time) map[string][]interval {
	ev := slices.Clone(inc.Evidence)
	slices.SortStableFunc(ev, func(a, b confirm.Evidence) int { return a.Time.Compare(b.Time) })
	end := incidentEnd(inc, now)
	out := map[string][]interval{}
	since := map[string]time.Time{}
	for _, e := range ev {
		s, failingNow := since[e.Location]
		switch e.Result {
		case confirm.OutcomeFailure:
			if !failingNow {
				start := e.Time
				if e.Location == inc.Reporter && len(out[e.Location]) == 0 {
					start = earlier(start, inc.StartedAt)
				}
				since[e.Location] = start
			}
		case confirm.OutcomeSuccess:
			if failingNow {
				out[e.Location] = append(out[e.Location], interval{s, e.Time})
				delete(since, e.Location)
			} else if _, ok := out[e.Location]; !ok {
				out[e.Location] = nil // seen, and never failing
			}
		}
	}
	for loc, s := range since {
		out[loc] = append(out[loc], interval{s, end})
	}
	return out
}

// maxUptimeRange bounds ?range=, as --storage.retention bounds the log.
func (c *Coordinator) parseUptimeRange(s string) (time.Duration, error) {
	if s == "" {
		return 30 * 24 * time.Hour, nil
	}
	d, err := model.ParseDuration(s)
	switch {
	case err != nil || d < model.Duration(time.Minute):
		return 0, fmt.Errorf("range must be a duration of at least 1m such as 1d, 7d or 30d, got %q", s)
	case time.Duration(d) > c.opts.Retention:
		return 0, fmt.Errorf("range %s is longer than --storage.retention %s: older incidents are deleted", s, model.Duration(c.opts.Retention))
	}
	return time.Duration(d), nil
}

// handleUptime answers GET /api/v1/targets/{target}/uptime?module=&range=:
// {target} is the target path-escaped (url.PathEscape: "/" is %2F);
// module may be left out when the coordinator knows one module only for
// the target.
func (c *Coordinator) handleUptime(w http.ResponseWriter, r *http.Request) {
	target := r.PathValue("target")
	q := r.URL.Query()
	rng, err := c.parseUptimeRange(q.Get("range"))
	if err != nil {
		jsonapi.WriteError(w, http.StatusBadRequest, err)
		return
	}
	module := q.Get("module")
	known := false
	var modules []string
	for _, t := range c.targets() {
		if t.Target == target {
			modules = append(modules, t.Module)
			known = known || t.Module == module
		}
	}
	if module == "" {
		if len(modules) != 1 {
			jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("module must be given: target %q is checked with modules %v", target, modules))
			return
		}
		module, known = modules[0], true
	}
	now := time.Now().UTC().Truncate(time.Second)
	from := now.Add(-rng)
	byKey, err := c.store.IncidentsSince(from)
	if err != nil {
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	k := confirm.Key{Target: target, Module: module}
	if !known && len(byKey[k]) == 0 {
		jsonapi.WriteError(w, http.StatusNotFound, fmt.Errorf("target %q with module %q is unknown to the coordinator and has no incidents", target, module))
		return
	}
	jsonapi.Write(w, http.StatusOK, computeUptime(k, byKey[k], c.maint.set.Load(), from, now))
}

// dailyUptime is the uptime of each of the last days UTC days, oldest
// first; today's counts its elapsed part.
func dailyUptime(k confirm.Key, incidents []confirm.Incident, set *maintenanceSet, days int, now time.Time) []Uptime {
	out := make([]Uptime, days)
	today := now.UTC().Truncate(24 * time.Hour)
	for i := range days {
		from := today.AddDate(0, 0, i-days+1)
		to := earlier(from.Add(24*time.Hour), now)
		if !to.After(from) {
			to = from.Add(time.Second)
		}
		out[i] = computeUptime(k, incidents, set, from, to)
	}
	return out
}
