package replica

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func open(t *testing.T, db *bolt.DB, peer string) *State {
	t.Helper()
	s, err := Open(db, peer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type monitor struct {
	Target string `json:"target"`
}

func value(t *testing.T, s *State, kind, key string) string {
	t.Helper()
	e, ok := s.Get(kind, key)
	if !ok {
		return ""
	}
	var m monitor
	if err := e.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m.Target
}

// Two peers exchanging what they broadcast end with the same entries,
// the last write winning, ties broken by peer name, tombstones included.
func TestLastWriterWins(t *testing.T) {
	dir := t.TempDir()
	a := open(t, openDB(t, filepath.Join(dir, "a.db")), "a")
	b := open(t, openDB(t, filepath.Join(dir, "b.db")), "b")
	var toB, toA []Entry
	a.SetBroadcast(func(es []Entry) { toB = append(toB, es...) })
	b.SetBroadcast(func(es []Entry) { toA = append(toA, es...) })
	var watched []string
	b.Watch("monitor", func(e Entry) { watched = append(watched, e.Key) })

	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, err := a.Put("monitor", "m1", monitor{"https://one"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("monitor", "m1", monitor{"https://older"}, t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	// A tie at the same instant: the greater peer name wins on both sides.
	if _, err := a.Put("monitor", "m2", monitor{"https://from-a"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put("monitor", "m2", monitor{"https://from-b"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Put("monitor", "m3", monitor{"https://gone"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Delete("monitor", "m3", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Merge(toB); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Merge(toA); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*State{a, b} {
		if got := value(t, s, "monitor", "m1"); got != "https://one" {
			t.Errorf("%s: m1 = %q, want the later write https://one", s.Peer(), got)
		}
		if got := value(t, s, "monitor", "m2"); got != "https://from-b" {
			t.Errorf("%s: m2 = %q, want peer b's write of the same instant", s.Peer(), got)
		}
		if _, ok := s.Get("monitor", "m3"); ok {
			t.Errorf("%s: m3 still there after its deletion", s.Peer())
		}
		if n := len(s.List("monitor")); n != 2 {
			t.Errorf("%s: %d monitors listed, want 2", s.Peer(), n)
		}
	}
	// b applied a's m1 and m3 (twice: value, then tombstone), not a's m2.
	if want := []string{"m1", "m3", "m3"}; len(watched) != len(want) || watched[0] != "m1" || watched[1] != "m3" || watched[2] != "m3" {
		t.Errorf("b's watcher saw %v, want %v", watched, want)
	}
	// The stale value of m3 sent again later does not bring it back.
	if won, err := b.Merge([]Entry{toB[len(toB)-2]}); err != nil || len(won) != 0 {
		t.Errorf("re-sent stale m3 applied %d entries (err %v), want 0", len(won), err)
	}
}

// A local write after a peer's write from a clock running ahead still
// wins: it is versioned after what is stored.
func TestLocalWriteAfterFutureVersion(t *testing.T) {
	s := open(t, openDB(t, filepath.Join(t.TempDir(), "s.db")), "a")
	now := time.Now()
	if _, err := s.Merge([]Entry{{Kind: "k", Key: "x", Version: Version{At: now.Add(time.Hour), Peer: "z"}, Value: []byte(`{"target":"peer"}`)}}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Put("k", "x", monitor{"local"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := value(t, s, "k", "x"); got != "local" || !e.Version.At.After(now.Add(time.Hour)) {
		t.Errorf("after a local write: %q at %s, want local after the peer's version", got, e.Version.At)
	}
}

// Entries survive a restart; Prune drops old tombstones only.
func TestDurableAndPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db := openDB(t, path)
	s := open(t, db, "a")
	t0 := time.Now()
	for _, key := range []string{"keep", "old", "recent"} {
		if _, err := s.Put("k", key, monitor{key}, t0.Add(-2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Delete("k", "old", t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete("k", "recent", t0); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	s = open(t, db, "a")
	if got := value(t, s, "k", "keep"); got != "keep" {
		t.Errorf("after reopening: keep = %q", got)
	}
	if n := len(s.All()); n != 3 {
		t.Errorf("after reopening: %d entries with tombstones, want 3", n)
	}
	n, err := s.Prune(t0.Add(-30 * time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v; want 1 tombstone pruned", n, err)
	}
	if n := len(s.All()); n != 2 {
		t.Errorf("after Prune: %d entries, want keep and the recent tombstone", n)
	}
}
