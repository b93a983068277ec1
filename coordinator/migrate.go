package coordinator

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vantageprobe/vantage/coordinator/replica"
)

// Before the replicated state, pushed events and maintenance windows had
// buckets of their own in the incident log. They are moved into the
// replicated state on the first start, then the old buckets are deleted.
// A crash in between moves them again at the next start: merging an
// entry already there changes nothing.
var (
	oldBucketEvents       = []byte("events")       // source NUL id → Event JSON
	oldBucketMaintenances = []byte("maintenances") // big-endian uint64 id → Maintenance JSON
)

// migrateToReplica moves the old buckets' records into rep and returns
// how many it moved. Each is versioned at its own time (an event's last
// submission, a window's creation) by this peer, so that when two peers
// held the same event before, the later submission wins. Old windows keep
// their IDs; their entries are keyed by this peer's name too, as two
// peers numbered their windows alike.
func migrateToReplica(db *bolt.DB, rep *replica.State) (int, error) {
	var entries []replica.Entry
	entry := func(kind, key string, at time.Time, value []byte) {
		entries = append(entries, replica.Entry{Kind: kind, Key: key, Version: replica.Version{At: at, Peer: rep.Peer()}, Value: value})
	}
	err := db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(oldBucketEvents); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var e Event
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("event %q: %w", k, err)
				}
				entry(kindEvent, eventEntryKey(e.Source, e.ID), e.LastReceived, v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		if b := tx.Bucket(oldBucketMaintenances); b != nil {
			return b.ForEach(func(k, v []byte) error {
				var mt Maintenance
				if err := json.Unmarshal(v, &mt); err != nil {
					return fmt.Errorf("maintenance window %x: %w", k, err)
				}
				entry(kindMaintenance, rep.Peer()+"/"+strconv.FormatUint(mt.ID, 10), mt.CreatedAt, v)
				return nil
			})
		}
		return nil
	})
	if err == nil {
		_, err = rep.Merge(entries)
	}
	if err == nil {
		err = db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{oldBucketEvents, oldBucketMaintenances} {
				if tx.Bucket(name) != nil {
					if err := tx.DeleteBucket(name); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	if err != nil {
		return 0, fmt.Errorf("moving events and maintenance windows into the replicated state: %w", err)
	}
	return len(entries), nil
}
