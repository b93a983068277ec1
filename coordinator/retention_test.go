package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

const day = 24 * time.Hour

func resolvedIncident(id uint64, target string, resolved time.Time) confirm.Incident {
	return confirm.Incident{ID: id, Target: target, Module: "http_2xx", State: confirm.StateResolved, LastState: confirm.StateSeemsDown,
		Reporter: "ams", StartedAt: resolved.Add(-time.Minute), OpenedAt: resolved.Add(-time.Minute),
		ResolvedAt: resolved, Resolution: confirm.ResolutionFalseAlarm}
}

func ids(incidents []confirm.Incident) []uint64 {
	out := []uint64{}
	for _, inc := range incidents {
		out = append(out, inc.ID)
	}
	return out
}

func TestStorePrunesOnlyResolvedIncidentsOlderThanTheCutoff(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	now := t0
	openOld := confirm.Incident{ID: 2, Target: "https://open.example", Module: "http_2xx", State: confirm.StateDown, Reporter: "ams",
		StartedAt: now.Add(-200 * day), OpenedAt: now.Add(-200 * day), ConfirmedAt: now.Add(-200 * day)}
	err := s.Put([]confirm.Incident{
		resolvedIncident(1, "https://a.example", now.Add(-100*day)),
		openOld,
		resolvedIncident(3, "https://b.example", now.Add(-89*day)),
		resolvedIncident(4, "https://c.example", now.Add(-91*day)), // the newest ID
	})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(now.Add(-90 * day))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 (incidents 1 and 4)", n, err)
	}
	if n, err := s.Prune(now.Add(-90 * day)); err != nil || n != 0 {
		t.Errorf("pruning again = %d, %v; want 0", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpenStore(t, dir)
	defer s.Close()
	all, err := s.List(false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(all); !slices.Equal(got, []uint64{3, 2}) {
		t.Errorf("incidents after pruning = %v, want [3 2]: the open one however old and the one resolved within the retention", got)
	}
	if open, err := s.List(true, 0); err != nil || !slices.Equal(ids(open), []uint64{2}) {
		t.Errorf("open incidents after pruning = %v, %v; want [2]", ids(open), err)
	}
	// The newest incident was pruned: its ID must not be given again.
	if id, err := s.LastID(); err != nil || id != 4 {
		t.Errorf("LastID after pruning the newest incident = %d, %v; want 4", id, err)
	}
	// An open incident resolved long ago by now goes once resolved.
	resolvedOld := openOld
	resolvedOld.State, resolvedOld.LastState, resolvedOld.ResolvedAt, resolvedOld.Resolution = confirm.StateResolved, confirm.StateDown, now.Add(-95*day), confirm.ResolutionRecovered
	if err := s.Put([]confirm.Incident{resolvedOld}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(now.Add(-90 * day)); err != nil || n != 1 {
		t.Errorf("pruning the incident once resolved = %d, %v; want 1", n, err)
	}
}

// TestRetentionThroughOptions runs a coordinator on a store holding old
// and recent incidents: it prunes the old resolved ones at start and then
// every PruneInterval, never the open one, and reads incidents stored in
// the old shape as resolved.
func TestRetentionThroughOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	now := time.Now()
	s := mustOpenStore(t, dir)
	openOld := confirm.Incident{ID: 1, Target: "https://open.example", Module: "http_2xx", State: confirm.StateUnknown, Reporter: "ams",
		StartedAt: now.Add(-200 * day), OpenedAt: now.Add(-200 * day)}
	if err := s.Put([]confirm.Incident{openOld,
		resolvedIncident(2, "https://a.example", now.Add(-100*day)),
		resolvedIncident(3, "https://b.example", now.Add(-time.Hour))}); err != nil {
		t.Fatal(err)
	}
	mustPutRaw(t, s, 4, oldShape(4, now.Add(-time.Hour)))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := mustStart(t, deadLocations(t, "ams", "fra"), func(o *Options) {
		o.StoragePath = dir
		o.PruneInterval = 20 * time.Millisecond
	})
	listed := func() ([]confirm.Incident, error) {
		status, body := do(t, http.MethodGet, c.url+"/api/v1/incidents?state=all", "", "")
		var out []confirm.Incident
		if status != http.StatusOK {
			return nil, fmt.Errorf("incidents: %d %s", status, body)
		}
		return out, json.Unmarshal([]byte(body), &out)
	}
	want := func(wantIDs []uint64, pruned float64) func() error {
		return func() error {
			all, err := listed()
			if err != nil {
				return err
			}
			if got := testutil.ToFloat64(c.metrics.pruned); !slices.Equal(ids(all), wantIDs) || got != pruned {
				return fmt.Errorf("incidents %v, %v pruned; want %v, %v", ids(all), got, wantIDs, pruned)
			}
			return nil
		}
	}
	testbin.WaitFor(t, "the incident resolved 100 days ago pruned at start", 5*time.Second, want([]uint64{4, 3, 1}, 1))

	status, body := do(t, http.MethodGet, c.url+"/api/v1/incidents/4", "", "")
	var old confirm.Incident
	if err := json.Unmarshal([]byte(body), &old); status != http.StatusOK || err != nil {
		t.Fatalf("incident 4: %d %s (%v)", status, body, err)
	}
	if old.State != confirm.StateResolved || old.LastState != confirm.StateDown {
		t.Errorf("incident stored in the old shape reads state %q, last_state %q; want resolved, down", old.State, old.LastState)
	}
	if _, page := do(t, http.MethodGet, c.url+"/", "", ""); !strings.Contains(page, `<td class="resolved">resolved</td><td class="down">down</td>`) {
		t.Errorf("status page does not show incident 4 as resolved after down:\n%s", page)
	}

	// Pruning goes on while the coordinator runs.
	if err := c.store.Put([]confirm.Incident{resolvedIncident(5, "https://c.example", now.Add(-91*day))}); err != nil {
		t.Fatal(err)
	}
	testbin.WaitFor(t, "an incident resolved 91 days ago pruned while running", 5*time.Second, want([]uint64{4, 3, 1}, 2))
	if open, err := c.store.List(true, 0); err != nil || !slices.Equal(ids(open), []uint64{1}) {
		t.Errorf("open incidents = %v, %v; want the 200-day-old one kept", ids(open), err)
	}
}

// Tombstones of the replicated state and windows that ended are pruned
// once older than --storage.retention; recent ones are kept.
func TestRetentionPrunesTombstonesAndOldWindows(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	now := time.Now()
	old := now.Add(-DefaultRetention - day)
	if _, err := c.replica.Delete(kindEvent, "10.0.0.1/gone-long-ago", old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.replica.Delete(kindEvent, "10.0.0.1/gone-recently", now.Add(-day)); err != nil {
		t.Fatal(err)
	}
	ended := Maintenance{ID: 7, Matchers: []string{`target="a"`}, StartsAt: old.Add(-time.Hour), EndsAt: old, CreatedAt: old.Add(-time.Hour)}
	if _, err := c.replica.Put(kindMaintenance, "7", ended, old); err != nil {
		t.Fatal(err)
	}
	c.pruneOnce(now)
	var left []string
	for _, e := range c.replica.All() {
		left = append(left, fmt.Sprintf("%s %s deleted=%v", e.Kind, e.Key, e.Deleted))
	}
	slices.Sort(left)
	// The window is now a tombstone of today: kept until it is old.
	if want := []string{"event 10.0.0.1/gone-recently deleted=true", "maintenance 7 deleted=true"}; !slices.Equal(left, want) {
		t.Errorf("replicated entries after pruning: %q, want %q", left, want)
	}
}
