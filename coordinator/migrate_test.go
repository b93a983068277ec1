package coordinator

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vantageprobe/vantage/coordinator/confirm"
)

// A store written before the replicated state (events and maintenance
// windows in buckets of their own) loses nothing on the first start: the
// events keep their states, the windows their IDs and effect, and a
// second start moves nothing again.
func TestEventsAndWindowsMoveIntoTheReplicatedState(t *testing.T) {
	storage := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(storage, 0o750); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	events := []Event{
		{Source: "backup-host", ID: "nightly", State: EventPending, RaiseAt: now.Add(time.Hour), LastReceived: now.Add(-time.Minute), Submissions: 7, Labels: map[string]string{"team": "storage"}},
		{Source: "10.0.0.1", ID: "cron", State: EventPending, RaiseAt: now.Add(-time.Minute), LastReceived: now.Add(-time.Hour), Submissions: 2},
		{Source: "10.0.0.1", ID: "deploy", State: EventAcknowledged, RaiseAt: now.Add(-time.Hour), RaisedAt: now.Add(-time.Hour), AcknowledgedAt: now.Add(-time.Minute), LastReceived: now.Add(-time.Hour), Submissions: 1},
	}
	windows := []Maintenance{
		{ID: 1, Matchers: []string{`target="https://db.example"`}, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), Comment: "upgrade", CreatedAt: now.Add(-2 * time.Hour)},
		{ID: 2, Matchers: []string{`module="icmp"`}, StartsAt: now.Add(-48 * time.Hour), EndsAt: now.Add(-47 * time.Hour), CreatedAt: now.Add(-49 * time.Hour)},
	}
	db, err := bolt.Open(filepath.Join(storage, storeFile), 0o640, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		eb, err := tx.CreateBucket(oldBucketEvents)
		if err != nil {
			return err
		}
		for _, e := range events {
			data, _ := json.Marshal(e)
			if err := eb.Put([]byte(e.Source+"\x00"+e.ID), data); err != nil {
				return err
			}
		}
		mb, err := tx.CreateBucket(oldBucketMaintenances)
		if err != nil {
			return err
		}
		for _, mt := range windows {
			data, _ := json.Marshal(mt)
			if err := mb.Put(idKey(mt.ID), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	conf := deadLocations(t, "ams", "fra")
	for run := range 2 {
		c, srv, _ := startAt(t, conf, storage, func(o *Options) { o.PeerName = "coord-a" })
		for _, want := range events {
			got := eventState(t, srv.URL, want.Source, want.ID)
			state := want.State
			if want.ID == "cron" {
				state = EventRaised // its raise time passed
			}
			if got.State != state || got.Submissions != want.Submissions || !got.RaiseAt.Equal(want.RaiseAt) || got.Labels["team"] != want.Labels["team"] {
				t.Errorf("run %d: event %s/%s = %+v, want %s as stored", run, want.Source, want.ID, got, state)
			}
		}
		var views []MaintenanceView
		mustGetJSON(t, srv.URL+"/api/v1/maintenances?state=all", &views)
		if len(views) != 2 || views[0].ID != 1 || views[0].Status != "active" || views[1].ID != 2 || views[1].Status != "expired" {
			t.Errorf("run %d: windows = %+v, want #1 active and #2 expired, as stored", run, views)
		}
		if !c.maint.inMaintenance(confirm.Key{Target: "https://db.example", Module: "http_2xx"}, now) {
			t.Errorf("run %d: window #1 does not apply", run)
		}
		if n := len(c.replica.All()); n != 5 {
			t.Errorf("run %d: %d replicated entries, want 5", run, n)
		}
		err := c.store.db.View(func(tx *bolt.Tx) error {
			if tx.Bucket(oldBucketEvents) != nil || tx.Bucket(oldBucketMaintenances) != nil {
				t.Errorf("run %d: the old buckets are still there", run)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if run == 1 {
			// Old IDs are still what DELETE takes.
			if status, body := do(t, http.MethodDelete, srv.URL+"/api/v1/maintenances/1", "", ""); status != http.StatusNoContent {
				t.Errorf("DELETE 1: %d %s", status, body)
			}
		}
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}
