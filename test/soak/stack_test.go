package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// stack is the running soak: two exporters, one coordinator, the target
// server.
type stack struct {
	ts          *targetServer
	sizes       map[string]int
	exporters   []*process // by location index
	configs     []string   // each exporter's configuration file
	coordinator *process
	coordConfig string
	// incidentsOpen is true from the start of an outage until the
	// coordinator resolved all its incidents.
	incidentsOpen atomic.Bool

	mu sync.Mutex
	// reloads counts successful reloads by what was reloaded and how.
	reloads       map[string]int
	reloadLatency time.Duration // longest reload request to schedule applied
	// history says when each reload of the exporters began and ended.
	history []string
}

func startStack(t *testing.T, dir, exporterBin, coordinatorBin string, ts *targetServer, sizes map[string]int) *stack {
	t.Helper()
	s := &stack{ts: ts, sizes: sizes, reloads: map[string]int{}, coordConfig: filepath.Join(dir, "coordinator.yml")}
	// Every port is chosen before any check runs, so that no outgoing
	// connection of a check can take one before its program listens on it.
	coordAddr := testbin.FreeAddr(t)
	exporterAddrs := make([]string, len(locations))
	for i := range locations {
		exporterAddrs[i] = testbin.FreeAddr(t)
	}
	if err := writeAtomically(s.coordConfig, coordinatorConfig(exporterAddrs, false)); err != nil {
		t.Fatal(err)
	}
	s.coordinator = startProcess(t, "coordinator", coordinatorBin, coordAddr,
		"--config.file="+s.coordConfig, "--storage.path="+filepath.Join(dir, "data"))
	for i, l := range locations {
		path := filepath.Join(dir, "exporter-"+l+".yml")
		if err := writeAtomically(path, exporterConfig(ts, sizes, l, variantEmpty)); err != nil {
			t.Fatal(err)
		}
		s.configs = append(s.configs, path)
		s.exporters = append(s.exporters, startProcess(t, "exporter-"+l, exporterBin, exporterAddrs[i],
			"--config.file="+path, "--location="+l, "--coordinator.url=http://"+coordAddr))
	}
	return s
}

func (s *stack) processes() []*process { return append([]*process{s.coordinator}, s.exporters...) }

// reloadExporters switches both exporters to v at once, by SIGHUP or by
// POST /-/reload, and waits until each runs it: the reload succeeded and
// the scheduler holds v's targets.
func (s *stack) reloadExporters(ctx context.Context, v variant, bySignal bool) error {
	errs := make([]error, len(s.exporters))
	start := time.Now()
	var wg sync.WaitGroup
	for i := range s.exporters {
		wg.Go(func() { errs[i] = s.reloadExporter(ctx, i, v, bySignal) })
	}
	wg.Wait()
	s.mu.Lock()
	s.history = append(s.history, fmt.Sprintf("%s %s–%s", v, start.Format("15:04:05.000"), time.Now().Format("15:04:05.000")))
	s.mu.Unlock()
	return errors.Join(errs...)
}

func (s *stack) reloadExporter(ctx context.Context, i int, v variant, bySignal bool) error {
	p := s.exporters[i]
	before, err := scrape(ctx, p.base, true)
	if err != nil {
		return err
	}
	stamp := before.get("vantage_exporter_config_last_reload_success_timestamp_seconds")
	if err := writeAtomically(s.configs[i], exporterConfig(s.ts, s.sizes, locations[i], v)); err != nil {
		return err
	}
	start := time.Now()
	how, err := s.trigger(ctx, p, bySignal)
	if err != nil {
		return err
	}
	want := float64(v.targets(s.sizes))
	deadline := start.Add(15 * time.Second)
	for {
		m, err := scrape(ctx, p.base, true)
		if err != nil {
			return err
		}
		ok := m.get("vantage_exporter_config_last_reload_successful")
		newStamp := m.get("vantage_exporter_config_last_reload_success_timestamp_seconds")
		targets := m.get("vantage_scheduler_targets")
		if ok != 1 {
			return fmt.Errorf("%s: reload to configuration %s by %s failed: vantage_exporter_config_last_reload_successful %g; log:\n%s", p.Name, v, how, ok, p.Out.Tail(logLines))
		}
		if newStamp > stamp && targets == want {
			s.recordReload(p.Name+" by "+how, time.Since(start))
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: configuration %s by %s not applied after 15s: reload timestamp %f (before %f), vantage_scheduler_targets %g, want %g", p.Name, v, how, newStamp, stamp, targets, want)
		}
		if err := waitCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// trigger asks p to reload: SIGHUP, or POST /-/reload (which answers
// once the configuration is loaded).
func (s *stack) trigger(ctx context.Context, p *process, bySignal bool) (string, error) {
	if bySignal {
		return "SIGHUP", syscall.Kill(p.Pid(), syscall.SIGHUP)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/-/reload", nil)
	if err != nil {
		return "", err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: POST /-/reload: %w", p.Name, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: POST /-/reload answered %s", p.Name, resp.Status)
	}
	return "POST", nil
}

// reloadCoordinator rewrites the coordinator's configuration (alternate
// health check interval or not) and reloads it.
func (s *stack) reloadCoordinator(ctx context.Context, alternate, bySignal bool) error {
	p := s.coordinator
	before, err := scrape(ctx, p.base, false)
	if err != nil {
		return err
	}
	stamp := before.get("vantage_coordinator_config_last_reload_success_timestamp_seconds")
	var addrs []string
	for _, e := range s.exporters {
		addrs = append(addrs, strings.TrimPrefix(e.base, "http://"))
	}
	if err := writeAtomically(s.coordConfig, coordinatorConfig(addrs, alternate)); err != nil {
		return err
	}
	start := time.Now()
	how, err := s.trigger(ctx, p, bySignal)
	if err != nil {
		return err
	}
	for {
		m, err := scrape(ctx, p.base, false)
		if err != nil {
			return err
		}
		if ok := m.get("vantage_coordinator_config_last_reload_successful"); ok != 1 {
			return fmt.Errorf("coordinator: reload by %s failed: vantage_coordinator_config_last_reload_successful %g", how, ok)
		}
		if m.get("vantage_coordinator_config_last_reload_success_timestamp_seconds") > stamp {
			s.recordReload("coordinator by "+how, time.Since(start))
			return nil
		}
		if time.Since(start) > 15*time.Second {
			return fmt.Errorf("coordinator: reload by %s not done after 15s", how)
		}
		if err := waitCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

func (s *stack) recordReload(what string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reloads[what]++
	s.reloadLatency = max(s.reloadLatency, took)
}

// describeReloads lists the successful reloads of each process by how
// they were asked for.
func (s *stack) describeReloads() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, p := range s.processes() {
		sig, post := s.reloads[p.Name+" by SIGHUP"], s.reloads[p.Name+" by POST"]
		parts = append(parts, fmt.Sprintf("%s %d (%d by SIGHUP, %d by POST /-/reload)", p.Name, sig+post, sig, post))
	}
	return strings.Join(parts, ", ")
}

// reloadCount returns the successful reloads whose key starts with prefix.
func (s *stack) reloadCount(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.reloads {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// incidents lists the coordinator's incidents; all of them, or the open ones.
func (s *stack) incidents(ctx context.Context, all bool) ([]confirm.Incident, error) {
	url := s.coordinator.base + "/api/v1/incidents?state=open"
	if all {
		url = s.coordinator.base + "/api/v1/incidents?state=all&limit=1000000"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := scrapeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []confirm.Incident
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("decoding incidents: %w", err)
	}
	return out, nil
}

// outageTargets is the set of target URLs the induced outages fail.
func (s *stack) outageTargets() map[string]bool {
	out := map[string]bool{}
	for n := range s.sizes[kindOutage] {
		out[s.ts.url(kindOutage, n)] = true
	}
	return out
}

// confirmedDown counts the outage targets the coordinator holds confirmed down.
func (s *stack) confirmedDown(ctx context.Context) (int, error) {
	m, err := scrape(ctx, s.coordinator.base, false)
	if err != nil {
		return 0, err
	}
	targets := s.outageTargets()
	n := 0
	m.each("vantage_target_confirmed_down", func(ls map[string]string, v float64) {
		if v == 1 && targets[ls["target"]] {
			n++
		}
	})
	return n, nil
}
