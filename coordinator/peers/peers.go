// Package peers replicates the state clients write to a coordinator
// (replica.State: registry, events, maintenance windows) between the
// coordinators of a peer group, as Alertmanager replicates silences:
// each write is broadcast over memberlist's gossip (entries too large for
// a UDP packet go over TCP to each member), and every push/pull interval
// two members exchange their whole state over TCP, so a member that was
// away catches up when it returns. Entries merge last writer wins.
package peers

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vantageprobe/vantage/coordinator/replica"
	"github.com/vantageprobe/vantage/internal/gossip"
)

// DefaultPushPullInterval is --cluster.pushpull-interval's default for
// coordinators: a peer that missed broadcasts catches up within two
// intervals (memberlist's LAN default, 30s, is too slow for that).
const DefaultPushPullInterval = 5 * time.Second

// Options configure a peer; cmd/vantage-coordinator fills them from the
// --cluster.* flags.
type Options struct {
	gossip.Options
	// Name names this coordinator among its peers (the replica's peer
	// name); it must differ between peers.
	Name       string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// DefaultOptions returns memberlist's LAN intervals, with a push/pull
// every DefaultPushPullInterval.
func DefaultOptions() Options {
	o := Options{Options: gossip.DefaultOptions()}
	o.PushPullInterval = DefaultPushPullInterval
	return o
}

// maxBroadcast is the largest message queued for gossip: what fits in a
// UDP packet (memberlist's UDPBufferSize, 1400 bytes) with room for the
// headers. Larger entries are sent to each member over TCP.
const maxBroadcast = 1200

// maxRemoteState bounds a peer's state once decompressed.
const maxRemoteState = 1 << 30

// Message types: the first byte of a user message.
const (
	msgEntries byte = 'E' // JSON []replica.Entry
)

// meta is a member's gossiped metadata: it says the member is a
// coordinator, so an exporter of a location's cluster pointed at a
// coordinator's gossip port is refused rather than merged.
type meta struct {
	Program string `json:"program"`
}

const program = "vantage-coordinator"

// Peers is this coordinator's membership in its peer group.
type Peers struct {
	opts    Options
	name    string
	address string // advertised host:port
	// roster: the members, copied as memberlist announces them.
	roster gossip.Roster
	state  *replica.State
	ml     *memberlist.Memberlist
	queue  *memberlist.TransmitLimitedQueue
	large  chan []byte
	stop   chan struct{}
	wg     sync.WaitGroup
	closed atomic.Bool

	mu       sync.Mutex
	rejected map[string]bool // "name\x00reason" already logged

	metrics *metrics
	// generation counts the changes of the state, for the cache of its
	// encoding.
	generation atomic.Uint64
	cache      struct {
		sync.Mutex
		gen  uint64
		at   time.Time
		data []byte
	}
}

// New joins the peer group: it binds the gossip listener, replicates
// state's writes from now on and joins the peers it can reach; the others
// are retried every ReconnectInterval.
func New(opts Options, state *replica.State) (*Peers, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cfg, transport, err := gossip.Config(opts.Options, opts.Logger)
	if err != nil {
		return nil, err
	}
	if opts.Name != "" {
		cfg.Name = opts.Name
	}
	p := &Peers{
		opts:     opts,
		name:     cfg.Name,
		address:  net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(cfg.AdvertisePort)),
		state:    state,
		large:    make(chan []byte, 64),
		stop:     make(chan struct{}),
		rejected: map[string]bool{},
	}
	p.queue = &memberlist.TransmitLimitedQueue{NumNodes: p.numMembers, RetransmitMult: 3}
	p.metrics = newMetrics(opts.Registerer, p)
	d := (*delegate)(p)
	cfg.Delegate, cfg.Events, cfg.Alive, cfg.Merge = d, (*events)(p), d, d
	ml, err := memberlist.Create(cfg)
	if err != nil {
		_ = transport.Shutdown()
		return nil, fmt.Errorf("starting the coordinator peer on %s: %w", opts.ListenAddress, err)
	}
	p.ml = ml
	state.SetBroadcast(p.broadcast)
	p.join()
	p.wg.Go(p.maintain)
	p.wg.Go(p.sendLarge)
	opts.Logger.Info("Coordinator peer started", "peer", p.name, "address", p.address, "peers", len(opts.Peers))
	return p, nil
}

func (p *Peers) numMembers() int {
	if p.ml == nil {
		return 1
	}
	return p.ml.NumMembers()
}

// Members returns the names of the live members, this one's included.
func (p *Peers) Members() []string {
	return p.roster.Names()
}

// Close leaves the group and stops; writes are no longer broadcast.
func (p *Peers) Close(timeout time.Duration) {
	if !p.closed.CompareAndSwap(false, true) {
		return
	}
	p.state.SetBroadcast(nil)
	close(p.stop)
	p.wg.Wait()
	gossip.Leave(p.ml, timeout, p.opts.Logger)
}

func (p *Peers) join() { gossip.Join(p.ml, &p.roster, p.opts.Peers, p.address, p.opts.Logger) }

// maintain joins the configured peers that are not members every
// ReconnectInterval: after a partition or a peer's restart, memberlist
// stops gossiping to members it declared dead.
func (p *Peers) maintain() {
	t := time.NewTicker(p.opts.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.join()
		}
	}
}

// broadcast is the replica's transport: one gossip broadcast per entry
// (a newer write of the same entry replaces one not sent yet), or, for an
// entry too large for a packet, a TCP message to each member.
func (p *Peers) broadcast(entries []replica.Entry) {
	p.generation.Add(1)
	for _, e := range entries {
		msg, err := encodeEntries([]replica.Entry{e})
		if err != nil {
			p.opts.Logger.Error("Encoding a replicated entry failed", "kind", e.Kind, "key", e.Key, "err", err)
			continue
		}
		if len(msg) > maxBroadcast {
			select {
			case p.large <- msg:
			default:
				// The next push/pull carries it.
				p.metrics.dropped.Inc()
			}
			continue
		}
		p.queue.QueueBroadcast(&gossip.Broadcast{Key: e.Kind + "\x00" + e.Key, Msg: msg})
	}
}

// sendLarge sends the entries too large for gossip to each live member
// over TCP, one at a time.
func (p *Peers) sendLarge() {
	for {
		select {
		case <-p.stop:
			return
		case msg := <-p.large:
			for _, n := range p.roster.Nodes(p.name) {
				if err := p.ml.SendReliable(&n, msg); err != nil {
					p.opts.Logger.Warn("Sending a large entry to a peer failed; the next state sync carries it", "peer", n.Name, "err", err)
					continue
				}
				p.metrics.sent(typeReliable, len(msg))
			}
		}
	}
}

func encodeEntries(entries []replica.Entry) ([]byte, error) {
	b, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	return append([]byte{msgEntries}, b...), nil
}

// merge applies entries a peer sent; what is the kind of message, for
// the logs and series.
func (p *Peers) merge(what string, entries []replica.Entry) {
	won, err := p.state.Merge(entries)
	if err != nil {
		p.metrics.mergeFailures.Inc()
		p.opts.Logger.Error("Merging a peer's entries failed", "message", what, "entries", len(entries), "err", err)
		return
	}
	if len(won) > 0 {
		p.generation.Add(1)
		p.opts.Logger.Debug("Merged a peer's entries", "message", what, "entries", len(entries), "applied", len(won))
	}
}

// errNotCoordinator refuses a node that is not a vantage-coordinator.
var errNotCoordinator = errors.New("not a vantage-coordinator (an exporter's cluster pointed at a coordinator's --cluster.listen-address?)")

// admit checks a node's metadata; a refusal is logged once per node.
func (p *Peers) admit(n *memberlist.Node) error {
	var m meta
	if err := json.Unmarshal(n.Meta, &m); err == nil && m.Program == program {
		return nil
	}
	p.metrics.rejected.Inc()
	p.mu.Lock()
	first := !p.rejected[n.Name]
	p.rejected[n.Name] = true
	p.mu.Unlock()
	if first {
		p.opts.Logger.Warn("Refused a gossip member", "member", n.Name, "address", n.Address(), "err", errNotCoordinator)
	}
	return errNotCoordinator
}
