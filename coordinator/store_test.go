package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// t0 is the fixed time of the stored incidents.
var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func mustOpenStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreKeepsIncidentsAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	open := confirm.Incident{ID: 1, Target: "https://a.example", Module: "http_2xx", State: confirm.StateDown, Reporter: "ams",
		StartedAt: t0, OpenedAt: t0, ConfirmedAt: t0.Add(time.Second),
		Evidence: []confirm.Evidence{{Location: "ams", Time: t0, Source: confirm.SourceReport, Result: confirm.OutcomeFailure, Reason: "connect_refused", Phases: confirm.Phases(nil).With("connect", 0.001)}}}
	resolved := confirm.Incident{ID: 2, Target: "https://b.example", Module: "http_2xx", State: confirm.StateSeemsDown, StartedAt: t0, OpenedAt: t0,
		ResolvedAt: t0.Add(2 * time.Second), Resolution: confirm.ResolutionFalseAlarm}
	// Incident 2 is written open first, then resolved in the same batch:
	// the later snapshot wins.
	openB := resolved
	openB.ResolvedAt, openB.Resolution = time.Time{}, ""
	if err := s.Put([]confirm.Incident{open, openB, resolved}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = mustOpenStore(t, dir)
	defer s.Close()
	if id, err := s.LastID(); err != nil || id != 2 {
		t.Errorf("LastID = %d, %v; want 2", id, err)
	}
	got, err := s.List(true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != 1 || got[0].Evidence[0].Phases.Get("connect") != 0.001 || !got[0].ConfirmedAt.Equal(t0.Add(time.Second)) {
		t.Errorf("open incidents after reopening = %+v, want incident 1 with its evidence", got)
	}
	all, err := s.List(false, 0)
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint64{}
	for _, inc := range all {
		ids = append(ids, inc.ID)
	}
	if !slices.Equal(ids, []uint64{2, 1}) || all[0].Resolution != confirm.ResolutionFalseAlarm {
		t.Errorf("all incidents = %v (first %+v), want 2 (false alarm) then 1", ids, all[0])
	}
	if limited, _ := s.List(false, 1); len(limited) != 1 || limited[0].ID != 2 {
		t.Errorf("List(all, 1) = %+v, want the newest only", limited)
	}
	if inc, ok, err := s.Get(1); err != nil || !ok || inc.Target != "https://a.example" {
		t.Errorf("Get(1) = %+v, %v, %v", inc, ok, err)
	}
	if _, ok, err := s.Get(99); err != nil || ok {
		t.Errorf("Get(99) = %v, %v; want not found", ok, err)
	}
}

func TestStoreIsLockedByItsUser(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	defer s.Close()
	_, err := OpenStore(dir)
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("opening a store in use: %v, want an error saying it is locked", err)
	}
}

func TestWriterGroupsAndOrdersWrites(t *testing.T) {
	s := mustOpenStore(t, t.TempDir())
	defer s.Close()
	w := newWriter(s, func(err error) { t.Errorf("write failed: %v", err) })
	var dones []<-chan error
	for i := range 100 {
		inc := confirm.Incident{ID: 7, Target: "https://a.example", Module: "http_2xx", State: confirm.StateSeemsDown, Rounds: i}
		dones = append(dones, w.submit([]confirm.Incident{inc}))
	}
	go w.run()
	for _, d := range dones {
		if err := <-d; err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	if err := <-w.submit([]confirm.Incident{{ID: 8}}); !errors.Is(err, errWriterClosed) {
		t.Errorf("submitting after close: %v, want errWriterClosed", err)
	}
	inc, ok, err := s.Get(7)
	if err != nil || !ok || inc.Rounds != 99 {
		t.Errorf("stored incident has %d rounds (%v, %v), want 99: the last snapshot submitted", inc.Rounds, ok, err)
	}
}

// oldShapeIncident is a recovered outage as coordinators before
// last_state stored it: its state is the one it ended in.
const oldShapeIncident = `{"id": %d, "target": "https://old.example", "module": "http_2xx", "state": "down", "reporter": "ams",
  "started_at": %q, "opened_at": %q, "confirmed_at": %q, "resolved_at": %q, "resolution": "recovered",
  "verification_rounds": 3, "evidence": []}`

// mustPutRaw writes a stored incident as it is, bypassing Store.Put.
func mustPutRaw(t *testing.T, s *Store, id uint64, data string) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIncidents).Put(idKey(id), []byte(data))
	})
	if err != nil {
		t.Fatal(err)
	}
}

func oldShape(id uint64, resolved time.Time) string {
	f := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	started := resolved.Add(-10 * time.Minute)
	return fmt.Sprintf(oldShapeIncident, id, f(started), f(started), f(started.Add(time.Minute)), f(resolved))
}

func TestStoreReadsOldClosedIncidentsAsResolved(t *testing.T) {
	s := mustOpenStore(t, t.TempDir())
	defer s.Close()
	mustPutRaw(t, s, 1, oldShape(1, t0))
	// An open incident of the old shape is left as it is.
	mustPutRaw(t, s, 2, `{"id": 2, "target": "https://open.example", "module": "http_2xx", "state": "unknown", "started_at": "2026-11-23T12:00:00Z"}`)
	inc, ok, err := s.Get(1)
	if err != nil || !ok {
		t.Fatalf("Get(1) = %v, %v", ok, err)
	}
	if inc.State != confirm.StateResolved || inc.LastState != confirm.StateDown || inc.Resolution != confirm.ResolutionRecovered {
		t.Errorf("old closed incident reads state %q, last_state %q, resolution %q; want resolved, down, recovered", inc.State, inc.LastState, inc.Resolution)
	}
	all, err := s.List(false, 0)
	if err != nil || len(all) != 2 {
		t.Fatalf("List = %v, %v", all, err)
	}
	if all[1].State != confirm.StateResolved || all[1].LastState != confirm.StateDown {
		t.Errorf("listed old closed incident: state %q, last_state %q; want resolved, down", all[1].State, all[1].LastState)
	}
	if all[0].State != confirm.StateUnknown || all[0].LastState != "" {
		t.Errorf("listed open incident: state %q, last_state %q; want unknown and none", all[0].State, all[0].LastState)
	}
}

// evidenceAt is a piece of evidence numbered n (its time says which).
func evidenceAt(n int) confirm.Evidence {
	return confirm.Evidence{Location: "ams", Time: t0.Add(time.Duration(n) * time.Second), Source: confirm.SourceCheck, Result: confirm.OutcomeFailure,
		Phases: confirm.Phases(nil).With("connect", float64(n))}
}

// Records add their evidence to what the log holds, which keeps the first
// pieces and the latest ones; reading gives the whole list back.
func TestStoreAppendsEvidence(t *testing.T) {
	s := mustOpenStore(t, t.TempDir())
	defer s.Close()
	inc := confirm.Incident{ID: 3, Target: "https://a.example", Module: "http_2xx", State: confirm.StateSeemsDown, StartedAt: t0, OpenedAt: t0,
		Evidence: []confirm.Evidence{evidenceAt(0)}, EvidenceCount: 1}
	if err := s.Put([]confirm.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	const total = 250
	for n := 1; n < total; n += 2 {
		rec := inc
		rec.State, rec.Rounds = confirm.StateDown, n
		rec.Evidence, rec.EvidenceCount = []confirm.Evidence{evidenceAt(n), evidenceAt(n + 1)}, n+2
		if err := s.Put([]confirm.Incident{rec}); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.Get(3)
	if err != nil || !ok {
		t.Fatalf("Get(3) = %v, %v", ok, err)
	}
	if got.State != confirm.StateDown || got.Rounds != total-1 || got.EvidenceCount != total+1 || len(got.Evidence) != 200 {
		t.Fatalf("stored incident: state %s, %d rounds, %d pieces of evidence of %d; want down, %d rounds, 200 of %d",
			got.State, got.Rounds, len(got.Evidence), got.EvidenceCount, total-1, total+1)
	}
	for i, e := range got.Evidence {
		want := i // the first 50
		if i >= 50 {
			want = total + 1 - 200 + i // then the latest 150
		}
		if !e.Time.Equal(t0.Add(time.Duration(want)*time.Second)) || e.Phases.Get("connect") != float64(want) {
			t.Fatalf("evidence[%d] = %+v, want piece %d", i, e, want)
		}
	}
	// A whole incident replaces the evidence.
	inc.Evidence, inc.EvidenceCount = []confirm.Evidence{evidenceAt(7)}, 0
	if err := s.Put([]confirm.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Get(3); len(got.Evidence) != 1 || got.Evidence[0].Phases.Get("connect") != 7 {
		t.Errorf("after writing the whole incident: %+v, want its one piece of evidence", got.Evidence)
	}
	// Pruning deletes the evidence with the incident.
	inc.ResolvedAt, inc.Resolution = t0, confirm.ResolutionFalseAlarm
	if err := s.Put([]confirm.Incident{inc}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Prune(t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketEvidence).Cursor().First(); k != nil {
			t.Errorf("evidence %x left after pruning its incident", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Incidents of older coordinators held their evidence in their JSON: the
// first start moves it apart, and records then add to it.
func TestStoreSplitsOldEvidence(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	old := confirm.Incident{ID: 4, Target: "https://a.example", Module: "http_2xx", State: confirm.StateDown, StartedAt: t0, OpenedAt: t0, ConfirmedAt: t0,
		Evidence: []confirm.Evidence{evidenceAt(0), evidenceAt(1), evidenceAt(2)}}
	data, err := json.Marshal(&old)
	if err != nil {
		t.Fatal(err)
	}
	mustPutRaw(t, s, 4, string(data))
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketOpen).Put(idKey(4), nil); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete(keyEvidenceApart)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir)
	defer s.Close()
	open, err := s.List(true, 0)
	if err != nil || len(open) != 1 || len(open[0].Evidence) != 3 || open[0].EvidenceCount != 3 {
		t.Fatalf("open incidents after the split = %+v, %v; want incident 4 with 3 pieces of evidence", open, err)
	}
	rec := open[0]
	rec.Rounds = 5
	rec.Evidence, rec.EvidenceCount = []confirm.Evidence{evidenceAt(3)}, 4
	if err := s.Put([]confirm.Incident{rec}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.Get(4)
	if err != nil || got.Rounds != 5 || len(got.Evidence) != 4 || got.Evidence[3].Phases.Get("connect") != 3 || got.Evidence[0].Phases.Get("connect") != 0 {
		t.Errorf("after a record: %+v, %v; want 5 rounds and the 4 pieces of evidence in order", got, err)
	}
}

// A restart resumes open incidents from each location's latest evidence
// and latest failure only.
func TestStoreResumesOpenIncidentsFromTheirLatestEvidence(t *testing.T) {
	s := mustOpenStore(t, t.TempDir())
	defer s.Close()
	at := func(loc string, sec int, r confirm.Outcome) confirm.Evidence {
		return confirm.Evidence{Location: loc, Time: t0.Add(time.Duration(sec) * time.Second), Source: confirm.SourceCheck, Result: r}
	}
	open := confirm.Incident{ID: 5, Target: "https://a.example", Module: "http_2xx", State: confirm.StateDown, StartedAt: t0, OpenedAt: t0,
		Evidence: []confirm.Evidence{at("ams", 0, confirm.OutcomeFailure), at("fra", 1, confirm.OutcomeFailure), at("ams", 30, confirm.OutcomeFailure),
			at("fra", 31, confirm.OutcomeSuccess), at("ams", 20, confirm.OutcomeUnknown), at("ams", 60, confirm.OutcomeSuccess)}}
	closed := confirm.Incident{ID: 6, Target: "https://b.example", Module: "http_2xx", State: confirm.StateResolved, StartedAt: t0, OpenedAt: t0, ResolvedAt: t0}
	if err := s.Put([]confirm.Incident{open, closed}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResumeOpen()
	if err != nil || len(got) != 1 || got[0].ID != 5 || got[0].EvidenceCount != 6 {
		t.Fatalf("ResumeOpen = %+v, %v; want incident 5 of 6 pieces of evidence", got, err)
	}
	var kept []string
	for _, e := range got[0].Evidence {
		kept = append(kept, fmt.Sprintf("%s@%.0f:%s", e.Location, e.Time.Sub(t0).Seconds(), e.Result))
	}
	if want := []string{"fra@1:failure", "ams@30:failure", "fra@31:success", "ams@60:success"}; !slices.Equal(kept, want) {
		t.Errorf("resumed evidence %v, want %v", kept, want)
	}
}
