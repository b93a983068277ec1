// Package cluster joins the exporters of one location into a gossip
// cluster (hashicorp/memberlist, as Alertmanager's cluster) and decides
// which member checks which target: rendezvous hashing over the live
// members that know the target. Members gossip the digest of their
// target set and fetch a differing set, so during a rollout a target
// that only some members know is checked by one of those. They also
// share the failing streaks of their targets, so a target's new owner
// continues its streak instead of starting another.
package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/internal/gossip"
)

// Options configure a member; cmd/vantage-exporter fills them from the
// --cluster.* flags.
type Options struct {
	// Options are the listen, advertise and peer addresses and the
	// intervals of memberlist.
	gossip.Options
	// Location is the exporter's --location: every member must share it.
	Location string
	// Streaks is where the failing streaks of this member's targets are
	// read and where the peers' are handed over; nil: not shared.
	Streaks    StreakStore
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// DefaultOptions returns memberlist's LAN intervals.
func DefaultOptions() Options { return Options{Options: gossip.DefaultOptions()} }

// Cluster is this exporter's membership in its location's cluster.
type Cluster struct {
	opts  Options
	name  string
	ml    *memberlist.Memberlist
	queue *memberlist.TransmitLimitedQueue
	// roster: the members, copied as memberlist announces them.
	roster gossip.Roster

	mu       sync.Mutex
	own      *Set
	replicas int
	peers    map[string]*peer
	seen     map[string]bool // members ever seen: name → alive now
	rejected map[string]bool // "name\x00reason" already logged
	view     atomic.Pointer[View]
	changed  chan struct{}
	version  atomic.Uint64 // of the view; ownership computed for
	computed atomic.Uint64

	stop   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup

	members    prometheus.Gauge
	owned      prometheus.Gauge
	rebalances prometheus.Counter
	rejections *prometheus.CounterVec
	mismatch   prometheus.Gauge
	expected   prometheus.Gauge
}

type peer struct {
	node   *memberlist.Node
	digest uint64
	known  *Set
	asked  time.Time
}

// meta is a member's gossiped metadata (memberlist limits it to 512 bytes).
type meta struct {
	Location string `json:"l"`
	Digest   uint64 `json:"d"`
	Targets  int    `json:"n"`
}

// Rejection reasons of vantage_cluster_peer_rejected_total.
const (
	rejectLocation = "location"
	rejectMetadata = "metadata"
)

// New starts a member: it binds the gossip listener and joins the peers
// it can reach; the others are retried every ReconnectInterval. own is
// the member's target set; replicas how many members check a target.
func New(opts Options, own *Set, replicas int) (*Cluster, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, transport, err := gossip.Config(opts.Options, opts.Logger)
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		opts:     opts,
		name:     cfg.Name,
		own:      own,
		replicas: max(replicas, 1),
		peers:    map[string]*peer{},
		seen:     map[string]bool{},
		rejected: map[string]bool{},
		changed:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	c.registerMetrics(opts.Registerer)
	c.queue = &memberlist.TransmitLimitedQueue{NumNodes: c.numMembers, RetransmitMult: 3}
	cfg.Delegate, cfg.Events = (*delegate)(c), (*events)(c)
	cfg.Alive, cfg.Merge = (*admission)(c), (*admission)(c)
	ml, err := memberlist.Create(cfg)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("starting the cluster member on %s: %w", opts.ListenAddress, err)
	}
	c.ml = ml
	c.rebuild()
	c.join()
	c.wg.Go(c.maintain)
	opts.Logger.Info("Cluster member started", "member", c.name, "location", opts.Location, "peers", len(opts.Peers))
	return c, nil
}

// numMembers counts the live members, this one included.
func (c *Cluster) numMembers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peers) + 1
}

// Name is this member's name: its advertised address.
func (c *Cluster) Name() string { return c.name }

// Changed receives a value whenever the view changed (a member joined or
// left, a target set changed or arrived): ownership must be computed again.
func (c *Cluster) Changed() <-chan struct{} { return c.changed }

// SetTargets replaces this member's target set and how many members
// check a target, and gossips the new digest.
func (c *Cluster) SetTargets(own *Set, replicas, expectedMembers int) {
	c.mu.Lock()
	digestChanged := own.Digest() != c.own.Digest()
	c.own, c.replicas = own, max(replicas, 1)
	c.rebuildLocked()
	c.mu.Unlock()
	c.expected.Set(float64(expectedMembers))
	if digestChanged {
		if err := c.ml.UpdateNode(c.opts.TCPTimeout); err != nil {
			c.opts.Logger.Warn("Gossiping the new target set failed", "err", err)
		}
	}
}

// Owns reports, for each key hash, whether this member checks it, and
// updates the owned-targets gauge with the count.
func (c *Cluster) Owns(hashes []uint64) []bool {
	v := c.view.Load()
	if ver := c.version.Load(); c.computed.Swap(ver) != ver {
		c.rebalances.Inc()
	}
	out := make([]bool, len(hashes))
	n := 0
	for i, h := range hashes {
		if out[i] = v.Owns(h); out[i] {
			n++
		}
	}
	c.owned.Set(float64(n))
	return out
}

// Members returns the live members' names, this one's included.
func (c *Cluster) Members() []string {
	return c.roster.Names()
}

// Close leaves the cluster (the others take over at once) and stops.
func (c *Cluster) Close(timeout time.Duration) {
	if !c.closed.CompareAndSwap(false, true) {
		return
	}
	close(c.stop)
	c.wg.Wait()
	gossip.Leave(c.ml, timeout, c.opts.Logger)
}

// rebuild makes a new view from the live peers and signals the change.
func (c *Cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rebuildLocked()
}

func (c *Cluster) rebuildLocked() {
	ps := make([]Peer, 0, len(c.peers))
	for name, p := range c.peers {
		known := p.known
		if known != nil && known.Digest() != p.digest {
			known = nil // an older set: not what the peer holds now
		}
		ps = append(ps, Peer{Name: name, Digest: p.digest, Known: known})
	}
	v := NewView(c.name, c.own, ps, c.replicas)
	c.view.Store(v)
	c.version.Add(1)
	c.members.Set(float64(len(ps) + 1))
	c.mismatch.Set(float64(v.Mismatched()))
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// maintain fetches the target sets of peers whose digest differs, and
// joins the configured peers not in the cluster every ReconnectInterval
// (after a partition, memberlist stops gossiping to members it declared
// dead).
func (c *Cluster) maintain() {
	fetch := time.NewTicker(500 * time.Millisecond)
	defer fetch.Stop()
	reconnect := time.NewTicker(c.opts.ReconnectInterval)
	defer reconnect.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-fetch.C:
			c.askForSets()
		case <-reconnect.C:
			c.join()
		}
	}
}

// askForSets asks each peer whose target set differs from this member's,
// and is not known yet, for it (at most every 2s per peer).
func (c *Cluster) askForSets() {
	c.mu.Lock()
	var ask []*memberlist.Node
	now := time.Now()
	for _, p := range c.peers {
		if p.digest == c.own.Digest() || (p.known != nil && p.known.Digest() == p.digest) || now.Sub(p.asked) < 2*time.Second {
			continue
		}
		p.asked = now
		ask = append(ask, p.node)
	}
	c.mu.Unlock()
	for _, n := range ask {
		if err := c.ml.SendReliable(n, encodeSetRequest(c.name)); err != nil {
			c.opts.Logger.Debug("Asking a member for its target set failed", "member", n.Name, "err", err)
		}
	}
}

// join joins the configured peers that are not live members.
func (c *Cluster) join() { gossip.Join(c.ml, &c.roster, c.opts.Peers, c.name, c.opts.Logger) }

// reject refuses a node: logged once per node and reason, counted each time.
func (c *Cluster) reject(n *memberlist.Node, reason string, err error) error {
	c.rejections.WithLabelValues(reason).Inc()
	c.mu.Lock()
	first := !c.rejected[n.Name+"\x00"+reason]
	c.rejected[n.Name+"\x00"+reason] = true
	c.mu.Unlock()
	if first {
		c.opts.Logger.Warn("Refused a cluster member", "member", n.Name, "address", n.Address(), "reason", reason, "err", err)
	}
	return err
}

// admit checks a node's metadata: it must decode and name this location.
func (c *Cluster) admit(n *memberlist.Node) (meta, error) {
	var m meta
	if err := json.Unmarshal(n.Meta, &m); err != nil {
		return m, c.reject(n, rejectMetadata, fmt.Errorf("undecodable metadata (not a vantage-exporter?): %w", err))
	}
	if m.Location != c.opts.Location {
		return m, c.reject(n, rejectLocation, fmt.Errorf("member of location %q, this one is %q: a cluster is the exporters of one location", m.Location, c.opts.Location))
	}
	return m, nil
}

func (c *Cluster) registerMetrics(reg prometheus.Registerer) {
	f := promauto.With(reg)
	c.members = f.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_cluster_members", Help: "Live members of the location's cluster as this member sees them, itself included.",
	})
	c.expected = f.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_cluster_expected_members", Help: "Members the location should have (cluster.expected_members; 0: not set).",
	})
	c.owned = f.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_cluster_owned_targets", Help: "Targets this member checks.",
	})
	c.rebalances = f.NewCounter(prometheus.CounterOpts{
		Name: "vantage_cluster_rebalances_total", Help: "Times ownership was computed again after a member joined or left or a target set changed.",
	})
	c.rejections = f.NewCounterVec(prometheus.CounterOpts{
		Name: "vantage_cluster_peer_rejected_total", Help: "Gossip from nodes refused as members: location (another location's exporter), metadata (not a vantage-exporter).",
	}, []string{"reason"})
	c.rejections.WithLabelValues(rejectLocation)
	c.rejections.WithLabelValues(rejectMetadata)
	c.mismatch = f.NewGauge(prometheus.GaugeOpts{
		Name: "vantage_cluster_target_set_mismatch", Help: "Live peers whose target set differs from this member's (a rollout or discovery refresh in progress).",
	})
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vantage_cluster_joined", Help: "Whether this member runs in a cluster with at least one peer.",
	}, func() float64 {
		if c.ml != nil && c.ml.NumMembers() > 1 {
			return 1
		}
		return 0
	})
	if reg != nil {
		reg.MustRegister(memberHealth{c})
	}
}

// memberHealth renders vantage_cluster_member_healthy for every member
// seen: 1 while on the roster, 0 once failed or left.
type memberHealth struct{ c *Cluster }

var memberHealthyDesc = prometheus.NewDesc("vantage_cluster_member_healthy",
	"Whether a member of the location's cluster (seen since this one started) is a member (1) or failed (its suspicion ended) or gone (0).", []string{"member"}, nil)

func (m memberHealth) Describe(ch chan<- *prometheus.Desc) { ch <- memberHealthyDesc }

func (m memberHealth) Collect(ch chan<- prometheus.Metric) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	for name := range m.c.seen {
		v := 0.0
		if m.c.roster.Has(name) {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(memberHealthyDesc, prometheus.GaugeValue, v, name)
	}
}
