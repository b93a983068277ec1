package cluster

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// streaks records the peers' streaks a member is handed.
type streaks struct {
	mu     sync.Mutex
	local  []Streak
	remote map[string]Streak // target → streak
}

func (s *streaks) Local() []Streak {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.local)
}

func (s *streaks) Remote(_ string, st Streak) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remote == nil {
		s.remote = map[string]Streak{}
	}
	s.remote[st.Target] = st
}

func (s *streaks) RemoteAll(owner string, ss []Streak) {
	for _, st := range ss {
		s.Remote(owner, st)
	}
}

func (s *streaks) get(target string) (Streak, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.remote[target]
	return st, ok
}

type member struct {
	*Cluster
	reg     *prometheus.Registry
	streaks *streaks
	set     *Set
}

func start(t *testing.T, location string, set *Set, peers ...string) *member {
	t.Helper()
	opts := DefaultOptions()
	opts.ListenAddress, opts.Peers, opts.Location = "127.0.0.1:0", peers, location
	opts.GossipInterval, opts.ProbeInterval, opts.ProbeTimeout = 50*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	opts.PushPullInterval, opts.ReconnectInterval = time.Second, time.Second
	m := &member{reg: prometheus.NewRegistry(), streaks: &streaks{}, set: set}
	opts.Registerer, opts.Streaks = m.reg, m.streaks
	c, err := New(opts, set, 1)
	if err != nil {
		t.Fatal(err)
	}
	m.Cluster = c
	t.Cleanup(func() { c.Close(time.Second) })
	return m
}

// TestRolloutOverGossip runs three members whose target sets differ as
// during a rollout: a knows a new target first, b has dropped an old
// one. Once the digests are gossiped and the sets fetched, every target
// is checked exactly once, by a member that knows it.
func TestRolloutOverGossip(t *testing.T) {
	common, added, dropped := hashes("common", 1000), hashes("new", 50), hashes("old", 50)
	a := start(t, "ams", NewSet(append(append(append([]uint64{}, common...), added...), dropped...)))
	b := start(t, "ams", NewSet(common), a.Name())
	c := start(t, "ams", NewSet(append(append([]uint64{}, common...), dropped...)), a.Name())
	members := []*member{a, b, c}
	all := append(append(append([]uint64{}, common...), added...), dropped...)
	owners := func() map[uint64]int {
		n := map[uint64]int{}
		for _, m := range members {
			owns := m.Owns(all)
			for i, h := range all {
				if owns[i] {
					if !m.set.Has(h) {
						t.Fatalf("%s owns a target it does not know", m.Name())
					}
					n[h]++
				}
			}
		}
		return n
	}
	testbin.WaitFor(t, "every target owned exactly once", 10*time.Second, func() error {
		n := owners()
		for _, h := range all {
			if n[h] != 1 {
				return errorf("target %x owned %d times", h, n[h])
			}
		}
		return nil
	})
	if got := testutil.ToFloat64(b.mismatch); got != 2 {
		t.Errorf("b's vantage_cluster_target_set_mismatch = %v, want 2", got)
	}
	if got := testutil.ToFloat64(a.members); got != 3 {
		t.Errorf("vantage_cluster_members = %v, want 3", got)
	}

	// The rollout completes: every member holds the same set, no mismatch.
	final := NewSet(append(append([]uint64{}, common...), added...))
	for _, m := range members {
		m.set = final
		m.SetTargets(final, 1, 3)
	}
	testbin.WaitFor(t, "the sets agree", 10*time.Second, func() error {
		for _, m := range members {
			if got := testutil.ToFloat64(m.mismatch); got != 0 {
				return errorf("%s sees %v mismatched peers", m.Name(), got)
			}
		}
		n := owners()
		for _, h := range final.Hashes() {
			if n[h] != 1 {
				return errorf("target %x owned %d times", h, n[h])
			}
		}
		return nil
	})

	// A streak announced by its owner reaches the others.
	st := Streak{Module: "http_2xx", Target: "http://x/", First: time.Unix(100, 0).UTC(), Last: time.Unix(110, 0).UTC(), State: "failing"}
	a.Announce(st)
	testbin.WaitFor(t, "the streak gossiped", 10*time.Second, func() error {
		for _, m := range []*member{b, c} {
			if got, ok := m.streaks.get(st.Target); !ok || !got.First.Equal(st.First) || got.State != "failing" {
				return errorf("%s has %+v", m.Name(), got)
			}
		}
		return nil
	})

	// When a leaves, b and c take its targets over.
	a.Close(time.Second)
	members = members[1:]
	testbin.WaitFor(t, "a's targets taken over", 10*time.Second, func() error {
		n := owners()
		for _, h := range final.Hashes() {
			if n[h] != 1 {
				return errorf("target %x owned %d times", h, n[h])
			}
		}
		return nil
	})
}

// TestMemberOfAnotherLocationRefused: an exporter of fra that names an
// ams member as its peer is refused, logged and counted, and joins no one.
func TestMemberOfAnotherLocationRefused(t *testing.T) {
	set := NewSet(hashes("t", 10))
	a := start(t, "ams", set)
	f := start(t, "fra", set, a.Name())
	testbin.WaitFor(t, "the foreign member refused", 10*time.Second, func() error {
		if got := testutil.ToFloat64(a.rejections.WithLabelValues(rejectLocation)) + testutil.ToFloat64(f.rejections.WithLabelValues(rejectLocation)); got < 1 {
			return errorf("no rejection counted")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	if got := a.Members(); len(got) != 1 {
		t.Errorf("ams members: %v, want only itself", got)
	}
	if got := testutil.ToFloat64(a.members); got != 1 {
		t.Errorf("ams vantage_cluster_members = %v, want 1", got)
	}
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
