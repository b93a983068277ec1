package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// defaultStatsRange is the stats' range without ?range=.
const defaultStatsRange = 24 * time.Hour

// maxStatsTimeout bounds how long the stats wait for the locations.
const maxStatsTimeout = 5 * time.Second

// MonitorStats is the answer of GET /api/v1/monitors/{id}/stats.
type MonitorStats struct {
	ID     string    `json:"id"`
	Target string    `json:"target"`
	Module string    `json:"module"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	// Locations are the checks counted by each location that checks the
	// monitor.
	Locations []LocationStats `json:"locations"`
	// Incidents are the monitor's incidents open at some time in the
	// range, newest first.
	Incidents []confirm.Incident `json:"incidents"`
}

// LocationStats are one location's counts: the sums over its members
// that answered. Counts is nil when none did; Errors says why.
type LocationStats struct {
	Location string `json:"location"`
	// Counts sums the answers of the members that answered.
	Counts *StatsCounts `json:"counts"`
	// Members is how many members were asked, Answered how many answered.
	Members  int `json:"members"`
	Answered int `json:"answered"`
	// Errors are the members' that did not answer, by URL.
	Errors []string `json:"errors,omitempty"`
}

// StatsCounts count finished scheduled checks by outcome.
type StatsCounts struct {
	Succeeded uint64 `json:"succeeded"`
	Failed    uint64 `json:"failed"`
	Unknown   uint64 `json:"unknown"`
	// Known is whether some member schedules the target; counts of a
	// location where none does are zero because it does not check it.
	Known bool `json:"known"`
	// From is the start of the oldest hour counted: counts are kept per
	// hour, so a range is widened to whole hours.
	From time.Time `json:"from,omitzero"`
}

func (c *Coordinator) handleMonitorStats(w http.ResponseWriter, r *http.Request, who caller) {
	m, ok := c.visibleMonitor(w, r, who)
	if !ok {
		return
	}
	rng := defaultStatsRange
	if v := r.URL.Query().Get("range"); v != "" {
		d, err := model.ParseDuration(v)
		if err != nil || d <= 0 || time.Duration(d) > api.MaxStatsRange {
			jsonapi.WriteError(w, http.StatusBadRequest, fmt.Errorf("range: want a duration up to %s such as 24h, got %q", model.Duration(api.MaxStatsRange), v))
			return
		}
		rng = time.Duration(d)
	}
	now := time.Now().UTC()
	conf := c.conf.Load()
	urls := map[string][]string{}
	for _, l := range conf.Locations {
		if m.checkedAt(conf, l.Name) {
			urls[l.Name] = c.members.urls(r.Context(), l.MemberURLs())
		}
	}
	timeout := min(conf.Confirmation.VerifyTimeout, maxStatsTimeout)
	stats := MonitorStats{ID: m.ID, Target: m.Target, Module: m.Module, From: now.Add(-rng), To: now,
		Locations: c.verifier.stats(r.Context(), urls, m.Key(), rng, timeout)}
	var err error
	if stats.Incidents, err = c.monitorIncidents(m, stats.From); err != nil {
		jsonapi.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	jsonapi.Write(w, http.StatusOK, stats)
}

// stats asks every member of every location (name → member URLs) for the
// target's counts over rng, at once, each request bounded by timeout, and
// sums each location's answers.
func (v *verifier) stats(ctx context.Context, urls map[string][]string, key api.TargetKey, rng, timeout time.Duration) []LocationStats {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := api.StatsRequest{RangeSeconds: rng.Seconds(), Targets: []api.TargetKey{key}}
	names := make([]string, 0, len(urls))
	for n := range urls {
		names = append(names, n)
	}
	slices.Sort(names)
	answers := make([][]*api.TargetStats, len(names))
	errs := make([][]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		answers[i], errs[i] = make([]*api.TargetStats, len(urls[name])), make([]error, len(urls[name]))
		for j, u := range urls[name] {
			wg.Go(func() { answers[i][j], errs[i][j] = v.askStats(ctx, u, &req, timeout) })
		}
	}
	wg.Wait()
	out := make([]LocationStats, len(names))
	for i, name := range names {
		out[i] = LocationStats{Location: name, Members: len(urls[name])}
		out[i].sum(urls[name], answers[i], errs[i])
	}
	return out
}

// askStats asks one member for the counts of the request's one target.
func (v *verifier) askStats(ctx context.Context, baseURL string, req *api.StatsRequest, timeout time.Duration) (*api.TargetStats, error) {
	var resp api.StatsResponse
	if err := v.post(ctx, baseURL, api.StatsPath, req, &resp, maxAnswerBytes); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("no answer within %s", timeout)
		}
		return nil, err
	}
	if len(resp.Stats) != len(req.Targets) || resp.Stats[0].TargetKey != req.Targets[0] {
		return nil, fmt.Errorf("invalid stats answer: %d stats for %d targets", len(resp.Stats), len(req.Targets))
	}
	return &resp.Stats[0], nil
}

// sum adds up the members' answers.
func (l *LocationStats) sum(members []string, answers []*api.TargetStats, errs []error) {
	for j, a := range answers {
		if errs[j] != nil {
			l.Errors = append(l.Errors, members[j]+": "+errs[j].Error())
			continue
		}
		l.Answered++
		if l.Counts == nil {
			l.Counts = &StatsCounts{}
		}
		l.Counts.Succeeded += a.Succeeded
		l.Counts.Failed += a.Failed
		l.Counts.Unknown += a.Unknown
		if a.Known {
			l.Counts.Known = true
			if l.Counts.From.IsZero() || a.From.Before(l.Counts.From) {
				l.Counts.From = a.From
			}
		}
	}
}
