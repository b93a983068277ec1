package coordinator

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/liveness"
)

// The incident log lives in a bbolt file under --storage.path: one
// process writes it, every commit is a copy-on-write transaction made
// durable with fsync before it is acknowledged, so a crash (even in the
// middle of a write) leaves the last committed state.
const storeFile = "incidents.db"

var (
	bucketIncidents = []byte("incidents") // id → incident JSON
	bucketOpen      = []byte("open")      // id → nothing: the open incidents
	// bucketMeta holds keyLastID, the highest ID ever stored, so that
	// pruning the newest incidents never makes an ID be given again.
	bucketMeta = []byte("meta")
	keyLastID  = []byte("last_id")
)

// Store is the incident log.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating if needed) the incident log in dir.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("creating storage directory: %w", err)
	}
	path := filepath.Join(dir, storeFile)
	db, err := bolt.Open(path, 0o640, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: it is locked by another process (another coordinator with the same --storage.path?)", path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketIncidents, bucketOpen, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initializing %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the log.
func (s *Store) Close() error { return s.db.Close() }

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// Put writes incidents in one transaction, in order: a later snapshot of
// the same incident wins.
func (s *Store) Put(incidents []confirm.Incident) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		all, open := tx.Bucket(bucketIncidents), tx.Bucket(bucketOpen)
		for i := range incidents {
			inc := &incidents[i]
			data, err := json.Marshal(inc)
			if err != nil {
				return err
			}
			k := idKey(inc.ID)
			if err := all.Put(k, data); err != nil {
				return err
			}
			if inc.Open() {
				err = open.Put(k, nil)
			} else {
				err = open.Delete(k)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// LastID returns the highest incident ID ever stored (pruned ones
// included), 0 when none was.
func (s *Store) LastID() (uint64, error) {
	var id uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		id = lastID(tx)
		return nil
	})
	return id, err
}

func lastID(tx *bolt.Tx) uint64 {
	var id uint64
	if k, _ := tx.Bucket(bucketIncidents).Cursor().Last(); k != nil {
		id = binary.BigEndian.Uint64(k)
	}
	if v := tx.Bucket(bucketMeta).Get(keyLastID); len(v) == 8 {
		id = max(id, binary.BigEndian.Uint64(v))
	}
	return id
}

// Prune deletes the resolved incidents resolved before cutoff and returns
// how many it deleted. Open incidents are never deleted, however old.
func (s *Store) Prune(cutoff time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		all, open := tx.Bucket(bucketIncidents), tx.Bucket(bucketOpen)
		var old [][]byte
		err := all.ForEach(func(k, v []byte) error {
			if open.Get(k) != nil {
				return nil
			}
			var inc confirm.Incident
			if err := decodeIncident(v, &inc); err != nil {
				return fmt.Errorf("incident %d: %w", binary.BigEndian.Uint64(k), err)
			}
			if !inc.Open() && inc.ResolvedAt.Before(cutoff) {
				old = append(old, k)
			}
			return nil
		})
		if err != nil || len(old) == 0 {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyLastID, idKey(lastID(tx))); err != nil {
			return err
		}
		for _, k := range old {
			if err := all.Delete(k); err != nil {
				return err
			}
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pruning the incident log: %w", err)
	}
	return n, nil
}

// Get returns one incident; ok is false when there is none with that ID.
func (s *Store) Get(id uint64) (inc confirm.Incident, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketIncidents).Get(idKey(id))
		if data == nil {
			return nil
		}
		ok = true
		return decodeIncident(data, &inc)
	})
	return inc, ok, err
}

// List returns incidents newest first: the open ones only, or all; at
// most limit (0: no limit).
func (s *Store) List(openOnly bool, limit int) ([]confirm.Incident, error) {
	out := []confirm.Incident{}
	err := s.db.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketIncidents)
		c := all.Cursor()
		if openOnly {
			c = tx.Bucket(bucketOpen).Cursor()
		}
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			if openOnly {
				v = all.Get(k)
				if v == nil {
					return fmt.Errorf("open incident %d has no record", binary.BigEndian.Uint64(k))
				}
			}
			var inc confirm.Incident
			if err := decodeIncident(v, &inc); err != nil {
				return err
			}
			out = append(out, inc)
		}
		return nil
	})
	return out, err
}

// decodeIncident reads a stored incident. Incidents closed before
// closed ones read state resolved kept their last state in State and have
// no LastState: they are read the way they are written now.
func decodeIncident(data []byte, inc *confirm.Incident) error {
	if err := json.Unmarshal(data, inc); err != nil {
		return fmt.Errorf("decoding stored incident: %w", err)
	}
	if !inc.Open() && inc.State != confirm.StateResolved {
		if inc.LastState == "" {
			inc.LastState = inc.State
		}
		inc.State = confirm.StateResolved
	}
	return nil
}

// writer commits incident snapshots in the order they are queued,
// grouping whatever is waiting into one transaction (one fsync), and tells
// each submitter when its snapshots are durable.
type writer struct {
	store   *Store
	queue   chan write
	onError func(error)
	// clock, when set, has work due from each submission with incidents
	// until it is committed, and advances with every commit.
	clock *liveness.Clock
	// mu orders submissions against close: submit holds it for reading.
	mu     sync.RWMutex
	closed bool
}

// errWriterClosed answers submissions after shutdown began.
var errWriterClosed = errors.New("the coordinator is shutting down")

type write struct {
	incidents []confirm.Incident
	done      chan error // buffered; nil when nobody waits
}

const maxGroupedWrites = 256

func newWriter(s *Store, onError func(error)) *writer {
	return &writer{store: s, queue: make(chan write, 1024), onError: onError}
}

// submit queues snapshots; callers that hold the machine's lock submit in
// the machine's order. The returned channel yields the commit's error.
func (w *writer) submit(incidents []confirm.Incident) <-chan error {
	done := make(chan error, 1)
	if len(incidents) == 0 {
		done <- nil
		return done
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		done <- errWriterClosed
		return done
	}
	w.clock.Begin(time.Now())
	w.queue <- write{incidents: incidents, done: done}
	return done
}

// close ends the queue; run returns once what was queued is committed.
func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
}

// run commits until the queue is closed and drained.
func (w *writer) run() {
	for first := range w.queue {
		group := []write{first}
	more:
		for len(group) < maxGroupedWrites {
			select {
			case next, ok := <-w.queue:
				if !ok {
					break more
				}
				group = append(group, next)
			default:
				break more
			}
		}
		var all []confirm.Incident
		for _, g := range group {
			all = append(all, g.incidents...)
		}
		err := w.store.Put(all)
		if err != nil {
			w.onError(err)
		}
		for _, g := range group {
			// A failed commit keeps the clock due until one succeeds.
			if err != nil {
				w.clock.Fail(time.Now())
			} else {
				w.clock.Finish(time.Now())
			}
			g.done <- err
		}
	}
}
