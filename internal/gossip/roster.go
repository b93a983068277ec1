package gossip

import (
	"slices"
	"sync"

	"github.com/hashicorp/memberlist"
)

// Roster is the members memberlist counts, as copies taken in its event
// callbacks. memberlist's Members and LocalNode return pointers into its
// own state, which it changes under a lock of its own (a member's address
// and metadata on every alive message, its state on suspicion), so
// reading their fields anywhere else races; the callbacks run under that
// lock. A member is on the roster from its join until memberlist declares
// it failed (its suspicion ended) or it leaves. The zero Roster is empty
// and ready; it is a memberlist.EventDelegate, or part of one.
type Roster struct {
	mu    sync.Mutex
	nodes map[string]memberlist.Node
}

// NotifyJoin adds n.
func (r *Roster) NotifyJoin(n *memberlist.Node) { r.put(n) }

// NotifyUpdate replaces n's copy.
func (r *Roster) NotifyUpdate(n *memberlist.Node) { r.put(n) }

// NotifyLeave removes n.
func (r *Roster) NotifyLeave(n *memberlist.Node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.nodes, n.Name)
}

func (r *Roster) put(n *memberlist.Node) {
	c := *n
	c.Addr = slices.Clone(n.Addr)
	c.Meta = slices.Clone(n.Meta)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.nodes == nil {
		r.nodes = map[string]memberlist.Node{}
	}
	r.nodes[n.Name] = c
}

// Names returns the members' names, sorted.
func (r *Roster) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.nodes))
	for name := range r.nodes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Nodes returns copies of the members but the one named except.
func (r *Roster) Nodes(except string) []memberlist.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]memberlist.Node, 0, len(r.nodes))
	for name, n := range r.nodes {
		if name != except {
			out = append(out, n)
		}
	}
	return out
}

// Has reports whether the member named is on the roster.
func (r *Roster) Has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.nodes[name]
	return ok
}

// addresses returns the members' host:port addresses.
func (r *Roster) addresses() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.nodes))
	for _, n := range r.nodes {
		out[n.Address()] = true
	}
	return out
}
