package coordinator

import (
	"bytes"
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
	// bucketIncidents holds each incident's fields as JSON, without its
	// evidence ("evidence": null).
	bucketIncidents = []byte("incidents") // id → incident JSON
	// bucketEvidence holds each piece of evidence an incident keeps,
	// numbered in the order they were added: a save appends what is new
	// instead of writing the whole list again, and the coordinator keeps
	// no evidence in memory.
	bucketEvidence = []byte("evidence") // id, number (big-endian uint32) → evidence JSON
	bucketOpen     = []byte("open")     // id → nothing: the open incidents
	// bucketMeta holds keyLastID, the highest ID ever stored, so that
	// pruning the newest incidents never makes an ID be given again, and
	// keyEvidenceApart once incidents of older coordinators, which held
	// their evidence in their JSON, were split.
	bucketMeta       = []byte("meta")
	keyLastID        = []byte("last_id")
	keyEvidenceApart = []byte("evidence_apart")
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
		for _, b := range [][]byte{bucketIncidents, bucketEvidence, bucketOpen, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return splitEvidence(tx)
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

func evidenceKey(id uint64, n int) []byte {
	return binary.BigEndian.AppendUint32(idKey(id), uint32(n))
}

// Put writes incidents in one transaction, in order: a later record of
// the same incident wins, and its evidence is added to what the log
// holds (see confirm.Incident.EvidenceCount).
func (s *Store) Put(incidents []confirm.Incident) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for i := range incidents {
			if err := putIncident(tx, &incidents[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

func putIncident(tx *bolt.Tx, inc *confirm.Incident) error {
	all, open, evidence := tx.Bucket(bucketIncidents), tx.Bucket(bucketOpen), tx.Bucket(bucketEvidence)
	fields := *inc
	fields.Evidence = nil
	data, err := json.Marshal(&fields)
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
	first := inc.EvidenceCount - len(inc.Evidence)
	if first <= 0 {
		// A whole incident: its evidence replaces what was kept.
		first = 0
		if err := deleteEvidence(evidence, inc.ID); err != nil {
			return err
		}
	}
	for j := range inc.Evidence {
		n := first + j
		data, err := json.Marshal(&inc.Evidence[j])
		if err != nil {
			return err
		}
		if err := evidence.Put(evidenceKey(inc.ID, n), data); err != nil {
			return err
		}
		if old, ok := confirm.EvidenceEvicted(n); ok {
			if err := evidence.Delete(evidenceKey(inc.ID, old)); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteEvidence deletes every piece of evidence of incident id.
func deleteEvidence(b *bolt.Bucket, id uint64) error {
	prefix := idKey(id)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// splitEvidence moves the evidence of incidents that older coordinators
// stored in their JSON into bucketEvidence, once.
func splitEvidence(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyEvidenceApart) != nil {
		return nil
	}
	var whole []confirm.Incident
	err := tx.Bucket(bucketIncidents).ForEach(func(k, v []byte) error {
		var inc confirm.Incident
		if err := json.Unmarshal(v, &inc); err != nil {
			return fmt.Errorf("incident %d: decoding stored incident: %w", binary.BigEndian.Uint64(k), err)
		}
		if len(inc.Evidence) > 0 {
			whole = append(whole, inc)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := range whole {
		if err := putIncident(tx, &whole[i]); err != nil {
			return err
		}
	}
	return meta.Put(keyEvidenceApart, []byte{1})
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
			if err := deleteEvidence(tx.Bucket(bucketEvidence), binary.BigEndian.Uint64(k)); err != nil {
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
		return readIncident(tx, data, &inc)
	})
	return inc, ok, err
}

// List returns incidents newest first: the open ones only, or all; at
// most limit (0: no limit).
func (s *Store) List(openOnly bool, limit int) ([]confirm.Incident, error) {
	out := []confirm.Incident{}
	err := s.Each(openOnly, limit, nil, func(inc *confirm.Incident) error {
		out = append(out, *inc)
		return nil
	})
	return out, err
}

// eachChunk is how many incidents Each reads in one transaction.
const eachChunk = 256

// Each calls f with incidents newest first: the open ones only, or all,
// those keep accepts (nil: every one; it sees an incident without its
// evidence), at most limit (0: no limit). It reads them a chunk at a
// time and calls f outside the log's transactions, so that a long list
// is never whole in memory and a slow reader never holds up commits.
// An incident pruned meanwhile is left out.
func (s *Store) Each(openOnly bool, limit int, keep func(*confirm.Incident) bool, f func(*confirm.Incident) error) error {
	var ids []uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketIncidents).Cursor()
		if openOnly {
			c = tx.Bucket(bucketOpen).Cursor()
		}
		for k, _ := c.Last(); k != nil && (keep != nil || limit <= 0 || len(ids) < limit); k, _ = c.Prev() {
			ids = append(ids, binary.BigEndian.Uint64(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	n := 0
	chunk := make([]confirm.Incident, 0, eachChunk)
	for len(ids) > 0 && (limit <= 0 || n < limit) {
		chunk = chunk[:0]
		err := s.db.View(func(tx *bolt.Tx) error {
			all := tx.Bucket(bucketIncidents)
			for len(ids) > 0 && len(chunk) < eachChunk && (limit <= 0 || n+len(chunk) < limit) {
				v := all.Get(idKey(ids[0]))
				ids = ids[1:]
				if v == nil {
					continue
				}
				var inc confirm.Incident
				if err := decodeIncident(v, &inc); err != nil {
					return err
				}
				if keep != nil && !keep(&inc) {
					continue
				}
				if err := readEvidence(tx, &inc); err != nil {
					return err
				}
				chunk = append(chunk, inc)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range chunk {
			if err := f(&chunk[i]); err != nil {
				return err
			}
		}
		n += len(chunk)
	}
	return nil
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

// readIncident reads a stored incident with its evidence.
func readIncident(tx *bolt.Tx, data []byte, inc *confirm.Incident) error {
	if err := decodeIncident(data, inc); err != nil {
		return err
	}
	return readEvidence(tx, inc)
}

// readEvidence reads the evidence of a decoded incident from the log,
// unless it was stored in its JSON.
func readEvidence(tx *bolt.Tx, inc *confirm.Incident) error {
	prefix := idKey(inc.ID)
	c := tx.Bucket(bucketEvidence).Cursor()
	k, v := c.Seek(prefix)
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return nil
	}
	inc.Evidence = inc.Evidence[:0]
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		var e confirm.Evidence
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("decoding evidence %d of incident %d: %w", binary.BigEndian.Uint32(k[8:]), inc.ID, err)
		}
		inc.Evidence = append(inc.Evidence, e)
		inc.EvidenceCount = int(binary.BigEndian.Uint32(k[8:])) + 1
	}
	return nil
}

// ResumeOpen returns the open incidents as the confirmation machine
// resumes them after a restart: of the evidence, only each location's
// latest piece and its latest failure (what the machine reads of it),
// so that resuming many long incidents does not read every piece.
func (s *Store) ResumeOpen() ([]confirm.Incident, error) {
	var out []confirm.Incident
	err := s.db.View(func(tx *bolt.Tx) error {
		all := tx.Bucket(bucketIncidents)
		return tx.Bucket(bucketOpen).ForEach(func(k, _ []byte) error {
			v := all.Get(k)
			if v == nil {
				return fmt.Errorf("open incident %d has no record", binary.BigEndian.Uint64(k))
			}
			var inc confirm.Incident
			if err := readIncident(tx, v, &inc); err != nil {
				return err
			}
			inc.Evidence = resumedEvidence(inc.Evidence)
			out = append(out, inc)
			return nil
		})
	})
	return out, err
}

// resumedEvidence keeps, in order, each location's latest piece of
// evidence (by time; of equal times the later added) and its latest
// failure.
func resumedEvidence(all []confirm.Evidence) []confirm.Evidence {
	type latest struct{ any, failure int }
	by := map[string]*latest{}
	for i, e := range all {
		l := by[e.Location]
		if l == nil {
			l = &latest{any: i, failure: -1}
			by[e.Location] = l
		}
		if !e.Time.Before(all[l.any].Time) {
			l.any = i
		}
		if e.Result == confirm.OutcomeFailure {
			l.failure = i
		}
	}
	var out []confirm.Evidence
	for i, e := range all {
		if l := by[e.Location]; l.any == i || l.failure == i {
			out = append(out, e)
		}
	}
	return out
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
	// failed holds the records of a failed commit, committed again
	// before the next ones: a record adds evidence to what the log holds,
	// so a lost one would leave a gap. At most maxRetainedRecords.
	failed []confirm.Incident
}

// errWriterClosed answers submissions after shutdown began.
var errWriterClosed = errors.New("the coordinator is shutting down")

type write struct {
	incidents []confirm.Incident
	done      chan error // buffered; nil when nobody waits
}

const (
	maxGroupedWrites = 256
	// maxRetainedRecords bounds the records of failed commits kept to be
	// committed again (a log that cannot be written for long loses the
	// oldest pieces of evidence, not the incidents' fields).
	maxRetainedRecords = 100000
)

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
		all := w.failed
		for _, g := range group {
			all = append(all, g.incidents...)
		}
		err := w.store.Put(all)
		w.failed = nil
		if err != nil {
			w.onError(err)
			w.failed = all[max(0, len(all)-maxRetainedRecords):]
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
