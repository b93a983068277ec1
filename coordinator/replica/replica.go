// Package replica holds the state clients write to a coordinator (the
// monitor registry, pushed events, maintenance windows) as entries that
// peers replicate, last writer wins. It keeps the entries durable in the
// coordinator's bbolt file and knows nothing of the network: a transport
// sends what Broadcast is given and hands what peers send to Merge.
package replica

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var bucket = []byte("replicated") // kind NUL key → Entry JSON

// Version orders the writes of one entry: the later time wins, and of
// two writes at the same time the one from the greater peer name, so
// every peer picks the same winner.
type Version struct {
	At   time.Time `json:"at"`
	Peer string    `json:"peer"`
}

// After reports whether v wins over o.
func (v Version) After(o Version) bool {
	if !v.At.Equal(o.At) {
		return v.At.After(o.At)
	}
	return v.Peer > o.Peer
}

// Entry is one replicated record: the value of a kind under a key, or its
// tombstone (Deleted, no Value), which is kept so that a peer that missed
// the deletion does not bring the value back.
type Entry struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Version Version         `json:"version"`
	Deleted bool            `json:"deleted,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
}

// Decode unmarshals the entry's value into v.
func (e Entry) Decode(v any) error {
	if err := json.Unmarshal(e.Value, v); err != nil {
		return fmt.Errorf("%s %q: %w", e.Kind, e.Key, err)
	}
	return nil
}

func (e Entry) dbKey() []byte { return []byte(e.Kind + "\x00" + e.Key) }

// State is one coordinator's copy of the replicated entries.
type State struct {
	db   *bolt.DB
	peer string

	mu        sync.RWMutex
	entries   map[string]map[string]Entry // kind → key → entry
	watchers  map[string][]func(Entry)
	broadcast func([]Entry)
}

// Open loads the entries kept in db. peer names this coordinator in the
// versions of its writes; it must differ between peers.
func Open(db *bolt.DB, peer string) (*State, error) {
	if peer == "" {
		return nil, errors.New("replica: a peer name is required")
	}
	s := &State{db: db, peer: peer, entries: map[string]map[string]Entry{}, watchers: map[string][]func(Entry){}}
	err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("replicated entry %q: %w", k, err)
			}
			s.set(e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("loading replicated state: %w", err)
	}
	return s, nil
}

// Peer is the name this coordinator writes under.
func (s *State) Peer() string { return s.peer }

// SetBroadcast installs the transport: fn is called, outside any lock,
// with the entries of each local write once they are durable.
func (s *State) SetBroadcast(fn func([]Entry)) {
	s.mu.Lock()
	s.broadcast = fn
	s.mu.Unlock()
}

// Watch calls fn with every entry of kind that a peer's write changed
// here (values and tombstones), after it is durable. Local writes are not
// watched: their writer knows.
func (s *State) Watch(kind string, fn func(Entry)) {
	s.mu.Lock()
	s.watchers[kind] = append(s.watchers[kind], fn)
	s.mu.Unlock()
}

// Put stores value (marshalled as JSON) under kind and key, versioned at
// now, and broadcasts it.
func (s *State) Put(kind, key string, value any, now time.Time) (Entry, error) {
	data, err := json.Marshal(value)
	if err != nil {
		return Entry{}, fmt.Errorf("%s %q: %w", kind, key, err)
	}
	return s.write(Entry{Kind: kind, Key: key, Value: data}, now)
}

// Delete replaces the entry under kind and key with a tombstone.
func (s *State) Delete(kind, key string, now time.Time) (Entry, error) {
	return s.write(Entry{Kind: kind, Key: key, Deleted: true}, now)
}

// write versions a local write after anything stored under its key, so a
// peer's clock running ahead cannot make a newer local write lose.
func (s *State) write(e Entry, now time.Time) (Entry, error) {
	s.mu.Lock()
	e.Version = Version{At: now.UTC().Round(0), Peer: s.peer}
	if old, ok := s.entries[e.Kind][e.Key]; ok && !e.Version.After(old.Version) {
		e.Version.At = old.Version.At.Add(time.Nanosecond)
	}
	if err := s.persist([]Entry{e}); err != nil {
		s.mu.Unlock()
		return Entry{}, err
	}
	s.set(e)
	fn := s.broadcast
	s.mu.Unlock()
	if fn != nil {
		fn([]Entry{e})
	}
	return e, nil
}

// Merge applies entries a peer sent, each only when it wins over the one
// stored, and returns those applied. Watchers see each applied entry.
func (s *State) Merge(entries []Entry) ([]Entry, error) {
	s.mu.Lock()
	var won []Entry
	for _, e := range entries {
		if e.Kind == "" || e.Key == "" {
			continue
		}
		e.Version.At = e.Version.At.UTC()
		if old, ok := s.entries[e.Kind][e.Key]; ok && !e.Version.After(old.Version) {
			continue
		}
		won = append(won, e)
	}
	if err := s.persist(won); err != nil {
		s.mu.Unlock()
		return nil, err
	}
	for _, e := range won {
		s.set(e)
	}
	watchers := make([][]func(Entry), len(won))
	for i, e := range won {
		watchers[i] = s.watchers[e.Kind]
	}
	s.mu.Unlock()
	for i, e := range won {
		for _, fn := range watchers[i] {
			fn(e)
		}
	}
	return won, nil
}

// Get returns the live entry under kind and key; a tombstone is not found.
func (s *State) Get(kind, key string) (Entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.entries[kind][key]
	return e, ok && !e.Deleted
}

// List returns the live entries of kind, by key.
func (s *State) List(kind string) []Entry {
	s.mu.RLock()
	out := make([]Entry, 0, len(s.entries[kind]))
	for _, e := range s.entries[kind] {
		if !e.Deleted {
			out = append(out, e)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// All returns every entry, tombstones included: the full state a peer
// exchanges when it syncs.
func (s *State) All() []Entry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Entry
	for _, byKey := range s.entries {
		for _, e := range byKey {
			out = append(out, e)
		}
	}
	return out
}

// Prune forgets tombstones written before cutoff. Keep them longer than a
// peer may stay away: one that returns with the deleted value after its
// tombstone is gone brings the value back.
func (s *State) Prune(cutoff time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var gone []Entry
	for _, byKey := range s.entries {
		for _, e := range byKey {
			if e.Deleted && e.Version.At.Before(cutoff) {
				gone = append(gone, e)
			}
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, e := range gone {
			if err := b.Delete(e.dbKey()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("pruning replicated tombstones: %w", err)
	}
	for _, e := range gone {
		delete(s.entries[e.Kind], e.Key)
	}
	return len(gone), nil
}

// persist writes entries in one transaction; the caller holds s.mu.
func (s *State) persist(entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, e := range entries {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(e.dbKey(), data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing replicated state: %w", err)
	}
	return nil
}

// set keeps e in memory; the caller holds s.mu.
func (s *State) set(e Entry) {
	byKey := s.entries[e.Kind]
	if byKey == nil {
		byKey = map[string]Entry{}
		s.entries[e.Kind] = byKey
	}
	byKey[e.Key] = e
}
