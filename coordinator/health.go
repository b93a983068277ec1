package coordinator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/collector"
	"github.com/vantageprobe/vantage/config"
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

// answered records what a check answer says about its location.
func (h *locationHealth) answered(a checkAnswer) {
	h.update(a.Location, func(st *locationStatus) {
		st.reachable = new(a.reachable)
		if a.canaryOK != nil {
			st.canaryOK = new(*a.canaryOK)
		}
		if !a.reachable {
			st.lastError = a.Error
		}
	})
}

// reported records that a location delivered reports; canaryFailing is
// true when one of them said its canary fails.
func (h *locationHealth) reported(name string, canaryFailing, canaryPassing bool) {
	h.update(name, func(st *locationStatus) {
		st.reachable = new(true)
		switch {
		case canaryFailing:
			st.canaryOK = new(false)
		case canaryPassing && st.canaryOK != nil:
			st.canaryOK = new(true)
		}
	})
}

// polled records the result of a health check.
func (h *locationHealth) polled(name string, err error) {
	h.update(name, func(st *locationStatus) {
		st.reachable = new(err == nil)
		if err != nil {
			st.lastError = err.Error()
		}
	})
}

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
			v.Error = "the location's connectivity canary is failing"
		}
		out = append(out, v)
	}
	return out
}

// checkHealth requests every location's /-/healthy each
// health_check_interval.
func (c *Coordinator) checkHealth(ctx context.Context) {
	for {
		conf := c.conf.Load()
		interval := conf.HealthCheckInterval
		var wg sync.WaitGroup
		for _, l := range conf.Locations {
			wg.Go(func() {
				c.health.polled(l.Name, c.pingLocation(ctx, l.URL, min(interval, 5*time.Second)))
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

func (c *Coordinator) pingLocation(ctx context.Context, baseURL string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+"/-/healthy", nil)
	if err != nil {
		return err
	}
	resp, err := c.client.Load().Do(req)
	if err != nil {
		return err
	}
	// Read to the end so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check answered %s", resp.Status)
	}
	return nil
}

// canaryFailing reports whether the location's canary is known to fail.
func (h *locationHealth) canaryFailing(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.state[name]
	return ok && st.canaryOK != nil && !*st.canaryOK
}
