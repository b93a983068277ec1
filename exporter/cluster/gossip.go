package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/vantageprobe/vantage/internal/gossip"
)

// Streak is a failing streak of a target, as its owner reported it to
// the coordinators: the new owner of the target continues it.
type Streak struct {
	Module string    `json:"m"`
	Target string    `json:"t"`
	First  time.Time `json:"f"`
	Last   time.Time `json:"l"`
	// State is the state last reported (failing or unknown).
	State string `json:"s"`
	// Ended: the streak ended (the target recovered).
	Ended bool `json:"e,omitempty"`
}

// StreakStore holds the failing streaks: this member's, which it gossips,
// and its peers', which it takes over with their targets.
type StreakStore interface {
	// Local returns the streaks of the targets this member checks.
	Local() []Streak
	// Remote takes a peer's streak, or its end.
	Remote(owner string, s Streak)
	// RemoteAll takes every streak of a peer: the peer's streaks not in
	// it have ended.
	RemoteAll(owner string, ss []Streak)
}

// Announce gossips a change of one of this member's streaks.
func (c *Cluster) Announce(s Streak) {
	b, err := json.Marshal(streakMsg{Owner: c.name, Streak: s})
	if err != nil {
		return
	}
	c.queue.QueueBroadcast(&gossip.Broadcast{Key: s.Module + "\x00" + s.Target, Msg: append([]byte{msgStreak}, b...)})
}

// Message types of the user messages between members.
const (
	msgSetRequest byte = 'Q' // name of the asking member
	msgSet        byte = 'S' // a member's target set
	msgStreak     byte = 'T' // a streak change (broadcast)
)

type streakMsg struct {
	Owner  string `json:"o"`
	Streak Streak `json:"s"`
}

type streakState struct {
	Owner   string   `json:"o"`
	Streaks []Streak `json:"s"`
}

func encodeSetRequest(name string) []byte { return append([]byte{msgSetRequest}, name...) }

// encodeSet is the set message: type, the sender's name (length-prefixed),
// then the sorted key hashes, 8 bytes each.
func encodeSet(name string, s *Set) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(name)+8*s.Len())
	b = append(b, msgSet)
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	for _, h := range s.Hashes() {
		b = binary.BigEndian.AppendUint64(b, h)
	}
	return b
}

func decodeSet(b []byte) (string, *Set, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, errors.New("truncated member name")
	}
	name, rest := string(b[k:k+int(n)]), b[k+int(n):]
	if len(rest)%8 != 0 {
		return "", nil, errors.New("target set length is not a multiple of 8")
	}
	hs := make([]uint64, len(rest)/8)
	for i := range hs {
		hs[i] = binary.BigEndian.Uint64(rest[8*i:])
	}
	return name, NewSet(hs), nil
}

// delegate is memberlist's Delegate: metadata, user messages, broadcasts
// and the push/pull state (the streaks).
type delegate Cluster

func (d *delegate) NodeMeta(limit int) []byte {
	c := (*Cluster)(d)
	c.mu.Lock()
	m := meta{Location: c.opts.Location, Digest: c.own.Digest(), Targets: c.own.Len()}
	c.mu.Unlock()
	b, _ := json.Marshal(m)
	if len(b) > limit {
		return nil
	}
	return b
}

func (d *delegate) NotifyMsg(b []byte) {
	c := (*Cluster)(d)
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case msgSetRequest:
		name := string(b[1:])
		go c.sendSet(name)
	case msgSet:
		name, s, err := decodeSet(b[1:])
		if err != nil {
			c.opts.Logger.Warn("Undecodable target set from a member", "err", err)
			return
		}
		c.mu.Lock()
		if p, ok := c.peers[name]; ok {
			p.known = s
			c.rebuildLocked()
		}
		c.mu.Unlock()
	case msgStreak:
		var m streakMsg
		if err := json.Unmarshal(b[1:], &m); err != nil || c.opts.Streaks == nil || m.Owner == c.name {
			return
		}
		c.opts.Streaks.Remote(m.Owner, m.Streak)
	}
}

// sendSet answers a member's request for this member's target set.
func (c *Cluster) sendSet(name string) {
	c.mu.Lock()
	p, ok := c.peers[name]
	own := c.own
	c.mu.Unlock()
	if !ok {
		return
	}
	if err := c.ml.SendReliable(p.node, encodeSet(c.name, own)); err != nil {
		c.opts.Logger.Debug("Sending the target set failed", "member", name, "err", err)
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(bool) []byte {
	c := (*Cluster)(d)
	st := streakState{Owner: c.name}
	if c.opts.Streaks != nil {
		st.Streaks = c.opts.Streaks.Local()
	}
	b, _ := json.Marshal(st)
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, _ bool) {
	c := (*Cluster)(d)
	var st streakState
	if err := json.Unmarshal(buf, &st); err != nil || c.opts.Streaks == nil || st.Owner == c.name || st.Owner == "" {
		return
	}
	c.opts.Streaks.RemoteAll(st.Owner, st.Streaks)
}

// events follows the members: joins, leaves and metadata updates.
type events Cluster

func (e *events) NotifyJoin(n *memberlist.Node) { e.upsert(n) }

func (e *events) NotifyUpdate(n *memberlist.Node) { e.upsert(n) }

func (e *events) upsert(n *memberlist.Node) {
	c := (*Cluster)(e)
	c.roster.NotifyUpdate(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[n.Name] = true
	if n.Name == c.name {
		return
	}
	var m meta
	_ = json.Unmarshal(n.Meta, &m) // admitted: it decodes
	p, ok := c.peers[n.Name]
	if !ok {
		p = &peer{}
		c.peers[n.Name] = p
		c.opts.Logger.Info("Cluster member joined", "member", n.Name, "targets", m.Targets)
	}
	node := *n
	p.node, p.digest = &node, m.Digest
	c.rebuildLocked()
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	c := (*Cluster)(e)
	c.roster.NotifyLeave(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.peers[n.Name]; !ok {
		return
	}
	delete(c.peers, n.Name)
	c.opts.Logger.Info("Cluster member left or failed", "member", n.Name)
	c.rebuildLocked()
}

// admission refuses nodes of another location (or no vantage-exporter)
// as members, whether they announce themselves or come with a merge.
type admission Cluster

func (a *admission) NotifyAlive(n *memberlist.Node) error {
	_, err := (*Cluster)(a).admit(n)
	return err
}

func (a *admission) NotifyMerge(nodes []*memberlist.Node) error {
	for _, n := range nodes {
		if _, err := (*Cluster)(a).admit(n); err != nil {
			return err
		}
	}
	return nil
}
