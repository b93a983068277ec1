package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// locationHealth tracks whether each location can be relied on: its
// exporter answers (health checks, check requests, reports) and its
// connectivity canary passes.
type locationHealth struct {
	mu    sync.Mutex
	order []string
	state map[string]*locationStatus
}

type locationStatus struct {
	url string
	// reachable: the latest contact with the exporter succeeded; nil
	// before the first.
	reachable *bool
	// canaryOK: the location's latest canary verdict; nil when unknown or
	// without a canary.
	canaryOK *bool
	// lastError says why the location is unhealthy.
	lastError string
	checked   time.Time
}

func newLocationHealth() *locationHealth {
	return &locationHealth{state: map[string]*locationStatus{}}
}

// configure follows the configured locations, keeping what is known of
// those that stay.
func (h *locationHealth) configure(c *config.CoordinatorConfig) {
	h.mu.Lock()
	defer h.mu.Unlock()
	state := make(map[string]*locationStatus, len(c.Locations))
	h.order = h.order[:0]
	for _, l := range c.Locations {
		st, ok := h.state[l.Name]
		if !ok || st.url != l.URL {
			st = &locationStatus{url: l.URL}
		}
		state[l.Name] = st
		h.order = append(h.order, l.Name)
	}
	h.state = state
}

func (h *locationHealth) update(name string, f func(st *locationStatus)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.state[name]; ok {
		f(st)
		st.checked = time.Now()
	}
}

// contact is what one exchange with a location's exporter says about the
// location, as explicit facts: whether the exporter answered and, when the
// exchange carries one, the location's canary verdict.
type contact struct {
	// reachable: the exporter answered.
	reachable bool
	// message: the exporter sent one of its messages (a batch, a check
	// answer, a status), so canaryOK is its canary's current verdict.
	message bool
	// canaryOK is the canary verdict the exporter sent: a report batch's
	// api.Batch.CanaryOK or a check answer's api.CheckResponse.CanaryOK.
	// nil in a message: the canary is not failing (no canary, or not
	// checked yet). Without a message the last verdict stays.
	canaryOK *bool
	// err says why the exporter did not answer.
	err string
}

// observe is the one place a location's health is decided: the latest
// contact says whether it is reachable, and the latest canary verdict
// any contact carried whether its connectivity canary passes. A location
// is healthy when both hold (see healthy).
func (h *locationHealth) observe(name string, c contact) {
	h.update(name, func(st *locationStatus) {
		st.reachable = new(c.reachable)
		switch {
		case !c.message:
		case c.canaryOK == nil:
			st.canaryOK = nil
		default:
			st.canaryOK = new(*c.canaryOK)
		}
		if !c.reachable {
			st.lastError = c.err
		}
	})
}

// healthy: the exporter answered its latest contact and its canary, when
// known, passes.
func (st *locationStatus) healthy() bool {
	return st.reachable != nil && *st.reachable && (st.canaryOK == nil || *st.canaryOK)
}

// snapshot returns the health of every location contacted at least once.
func (h *locationHealth) snapshot() []collector.LocationHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]collector.LocationHealth, 0, len(h.order))
	for _, name := range h.order {
		if st := h.state[name]; st.reachable != nil {
			out = append(out, collector.LocationHealth{Location: name, Healthy: st.healthy()})
		}
	}
	return out
}

// LocationView is a location's health for the API and the status page.
type LocationView struct {
	Name    string    `json:"name"`
	URL     string    `json:"url"`
	Healthy bool      `json:"healthy"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked,omitzero"`
	// CanaryOK is the location's latest canary verdict, when known.
	CanaryOK *bool `json:"canary_ok,omitempty"`
	// Suspect: the location's failures count for nothing (see
	// confirm.SuspectView).
	Suspect confirm.SuspectView `json:"suspect"`
}

func (h *locationHealth) views() []LocationView {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]LocationView, 0, len(h.order))
	for _, name := range h.order {
		st := h.state[name]
		v := LocationView{Name: name, URL: st.url, Healthy: st.healthy(), Checked: st.checked, CanaryOK: st.canaryOK}
		switch {
		case v.Healthy:
		case st.reachable == nil:
			v.Error = "not contacted yet"
		case !*st.reachable:
			v.Error = st.lastError
		default:
			v.Error = api.ErrCanaryFailing.Error()
		}
		out = append(out, v)
	}
	return out
}

// checkHealth requests every location's status (api.StatusPath) each
// health_check_interval.
func (c *Coordinator) checkHealth(ctx context.Context) {
	for {
		conf := c.conf.Load()
		interval := conf.HealthCheckInterval
		var wg sync.WaitGroup
		for _, l := range conf.Locations {
			wg.Go(func() {
				c.health.observe(l.Name, c.pollMembers(ctx, l.Name, l.MemberURLs(), min(interval, 5*time.Second)))
			})
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// pollLocation reads an exporter's status: whether it answers, and its
// canary's verdict; with the status it answered.
func (c *Coordinator) pollLocation(ctx context.Context, baseURL string, timeout time.Duration) (contact, *api.Status) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fail := func(err error) (contact, *api.Status) { return contact{err: err.Error()}, nil }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+api.StatusPath, nil)
	if err != nil {
		return fail(err)
	}
	resp, err := c.client.Load().Do(req)
	if err != nil {
		return fail(err)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	// Read to the end so the connection is reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail(fmt.Errorf("status answered %s", resp.Status))
	}
	var st api.Status
	if err := json.Unmarshal(data, &st); err != nil {
		return fail(fmt.Errorf("invalid status answer: %w", err))
	}
	return contact{reachable: true, message: true, canaryOK: st.CanaryOK}, &st
}
