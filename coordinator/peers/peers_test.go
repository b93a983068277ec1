package peers

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	bolt "go.etcd.io/bbolt"

	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/testbin"
)

type member struct {
	state *replica.State
	peers *Peers
	reg   *prometheus.Registry
	addr  string
}

func openState(t *testing.T, name string) *replica.State {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), name+".db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := replica.Open(db, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// start runs a peer named name on 127.0.0.1, joining join.
func start(t *testing.T, name string, state *replica.State, join ...string) *member {
	t.Helper()
	o := DefaultOptions()
	o.ListenAddress = "127.0.0.1:0"
	o.Peers = join
	o.Name = name
	o.PushPullInterval = 500 * time.Millisecond
	o.GossipInterval = 50 * time.Millisecond
	o.ReconnectInterval = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	o.Registerer = reg
	p, err := New(o, state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(time.Second) })
	return &member{state: state, peers: p, reg: reg, addr: p.address}
}

type value struct {
	Text string `json:"text"`
}

func text(s *replica.State, kind, key string) string {
	e, ok := s.Get(kind, key)
	if !ok {
		return ""
	}
	var v value
	if err := e.Decode(&v); err != nil {
		return "undecodable: " + err.Error()
	}
	return v.Text
}

func waitValue(t *testing.T, m *member, kind, key, want string) {
	t.Helper()
	testbin.WaitFor(t, fmt.Sprintf("%s %s %q on %s", kind, key, want, m.peers.name), 5*time.Second, func() error {
		if got := text(m.state, kind, key); got != want {
			return fmt.Errorf("got %.40q", got)
		}
		return nil
	})
}

// A write on one peer reaches the other by gossip, a large one over TCP,
// and a deletion stays deleted.
func TestWritesReplicate(t *testing.T) {
	a := start(t, "a", openState(t, "a"))
	b := start(t, "b", openState(t, "b"), a.addr)
	testbin.WaitFor(t, "two members", 5*time.Second, func() error {
		if n := len(b.peers.Members()); n != 2 {
			return fmt.Errorf("%d members", n)
		}
		return nil
	})
	if _, err := a.state.Put("event", "s/x", value{"small"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("0123456789", 1000) // 10 kB: no UDP packet holds it
	if _, err := b.state.Put("monitor", "m1", value{big}, time.Now()); err != nil {
		t.Fatal(err)
	}
	// Kinds the transport knows nothing of replicate too.
	if _, err := b.state.Put("anything", "k", value{"any"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitValue(t, b, "event", "s/x", "small")
	waitValue(t, a, "monitor", "m1", big)
	waitValue(t, a, "anything", "k", "any")
	if _, err := b.state.Delete("event", "s/x", time.Now()); err != nil {
		t.Fatal(err)
	}
	waitValue(t, a, "event", "s/x", "")
	if n := testutil.ToFloat64(b.peers.metrics.messagesSent.WithLabelValues(typeReliable)); n < 1 {
		t.Errorf("the large entry was not sent over TCP: reliable messages sent = %v", n)
	}
	if n := testutil.ToFloat64(a.peers.metrics.messagesSent.WithLabelValues(typeBroadcast)); n < 1 {
		t.Errorf("the small entry was not gossiped: broadcasts sent = %v", n)
	}
	if err := testutil.GatherAndCompare(a.reg, strings.NewReader(`
# HELP vantage_coordinator_cluster_members Live coordinators of the peer group as this one sees them, itself included.
# TYPE vantage_coordinator_cluster_members gauge
vantage_coordinator_cluster_members 2
# HELP vantage_coordinator_cluster_merge_failures_total Messages from peers that could not be decoded or stored; the next state sync retries the stored ones.
# TYPE vantage_coordinator_cluster_merge_failures_total counter
vantage_coordinator_cluster_merge_failures_total 0
`), "vantage_coordinator_cluster_members", "vantage_coordinator_cluster_merge_failures_total"); err != nil {
		t.Error(err)
	}
}

// A peer that joins late gets the whole state by push/pull, a registry
// far larger than a packet (memberlist bounds a push/pull state at 20 MiB
// once gzipped), and a deletion it missed wins over the value it held.
func TestLateJoinerCatchesUpWithABigState(t *testing.T) {
	a := start(t, "a", openState(t, "a"))
	sb := openState(t, "b")
	// b held m-0 before a deleted it: the tombstone must win.
	if _, err := sb.Put("monitor", "m-0", value{"stale"}, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	const n = 500
	body := strings.Repeat("https://example.com/a/long/path?with=query ", 48) // 2 kB
	entries := make([]replica.Entry, n)
	for i := range entries {
		entries[i] = replica.Entry{Kind: "monitor", Key: fmt.Sprintf("m-%d", i), Version: replica.Version{At: time.Now(), Peer: "a"},
			Value: []byte(fmt.Sprintf(`{"text":%q}`, fmt.Sprint(i, body)))}
	}
	if _, err := a.state.Merge(entries); err != nil {
		t.Fatal(err)
	}
	if _, err := a.state.Delete("monitor", "m-0", time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, err := encodeState(a.state.All())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("state: %d entries, %d bytes gzipped", n, len(raw))

	b := start(t, "b", sb, a.addr)
	waitValue(t, b, "monitor", fmt.Sprintf("m-%d", n-1), fmt.Sprint(n-1, body))
	if got := len(b.state.List("monitor")); got != n-1 {
		t.Errorf("b holds %d monitors, want %d", got, n-1)
	}
	if got := text(b.state, "monitor", "m-0"); got != "" {
		t.Errorf("m-0 came back on b: %q", got)
	}
	waitValue(t, a, "monitor", "m-0", "")
}

// A node that is not a coordinator (an exporter's cluster member) is
// refused.
func TestRefusesWhatIsNotACoordinator(t *testing.T) {
	a := start(t, "a", openState(t, "a"))
	d := (*delegate)(a.peers)
	if err := d.NotifyAlive(&memberlist.Node{Name: "x", Meta: []byte(`{"l":"ams","d":1}`)}); err == nil {
		t.Error("an exporter's metadata was admitted")
	}
	if err := d.NotifyAlive(&memberlist.Node{Name: "y", Meta: d.NodeMeta(512)}); err != nil {
		t.Errorf("a coordinator was refused: %v", err)
	}
	if n := testutil.ToFloat64(a.peers.metrics.rejected); n != 1 {
		t.Errorf("rejections counted: %v, want 1", n)
	}
}
