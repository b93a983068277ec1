package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
)

// sampler reads every process's own metrics once a second for the whole
// run: the most checks in flight, and a progress line now and then. It
// notices a process that died.
type sampler struct {
	procs []*process
	logf  func(format string, args ...any)
	every time.Duration // progress lines; 0: none

	mu          sync.Mutex
	maxInFlight map[string]float64 // vantage_scheduler_in_flight
	died        string
}

func newSampler(procs []*process, logf func(string, ...any), every time.Duration) *sampler {
	return &sampler{procs: procs, logf: logf, every: every, maxInFlight: map[string]float64{}}
}

// run samples until ctx ends; it calls dead once if a process exits.
func (sm *sampler) run(ctx context.Context, dead func()) {
	start := time.Now()
	lastLog, logged, checks := start, 0.0, map[string]float64{}
	for waitCtx(ctx, time.Second) == nil {
		var line []string
		for _, p := range sm.procs {
			if p.Exited() {
				sm.mu.Lock()
				sm.died = fmt.Sprintf("%s exited during the soak (%v); its log ends:\n%s", p.Name, p.Err(), p.Out.Tail(logLines))
				sm.mu.Unlock()
				dead()
				return
			}
			m, err := scrape(ctx, p.base, true)
			if err != nil {
				continue // a slow scrape is no finding; a dead process is
			}
			u := usageOf(m)
			sm.mu.Lock()
			sm.maxInFlight[p.Name] = max(sm.maxInFlight[p.Name], m.get("vantage_scheduler_in_flight"))
			sm.mu.Unlock()
			if c, ok := m.sum("vantage_scheduler_checks_total"); ok {
				checks[p.Name] = c
			}
			line = append(line, fmt.Sprintf("%s %.0f goroutines, %.0f fds, %s", p.Name, u.Goroutines, u.FDs, mib(u.RSS)))
		}
		if sm.every == 0 || time.Since(lastLog) < sm.every {
			continue
		}
		sum := 0.0
		for _, c := range checks {
			sum += c
		}
		sm.logf("+%s: %.0f checks/s; %s", time.Since(start).Round(time.Second), (sum-logged)/time.Since(lastLog).Seconds(), strings.Join(line, "; "))
		lastLog, logged = time.Now(), sum
	}
}

// inFlight lists the most checks each exporter had in flight at a sample.
func (sm *sampler) inFlight() string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	var parts []string
	for _, p := range sm.procs {
		if v, ok := sm.maxInFlight[p.Name]; ok && strings.HasPrefix(p.Name, "exporter") {
			parts = append(parts, fmt.Sprintf("%s %.0f", p.Name, v))
		}
	}
	return strings.Join(parts, ", ")
}

// death says why a process died during the soak, or is "".
func (sm *sampler) death() string {
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.died
}
