package gossip

import (
	"net"
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestRosterFollowsTheEvents(t *testing.T) {
	var r Roster
	a := &memberlist.Node{Name: "a", Addr: net.IPv4(127, 0, 0, 2), Port: 7946, Meta: []byte("one")}
	b := &memberlist.Node{Name: "b", Addr: net.IPv4(127, 0, 0, 3), Port: 7946}
	r.NotifyJoin(a)
	r.NotifyJoin(b)
	// memberlist changes its node in place; the roster keeps its copy.
	a.Addr[15], a.Meta[0] = 9, 'x'
	if got := r.Nodes("b"); len(got) != 1 || got[0].Address() != "127.0.0.2:7946" || string(got[0].Meta) != "one" {
		t.Fatalf("Nodes(except b) = %+v, want a's copy at 127.0.0.2:7946 with meta one", got)
	}
	r.NotifyUpdate(&memberlist.Node{Name: "a", Addr: net.IPv4(127, 0, 0, 4), Port: 7947})
	if got := r.addresses(); !got["127.0.0.4:7947"] || got["127.0.0.2:7946"] || !got["127.0.0.3:7946"] {
		t.Fatalf("addresses after a's update = %v", got)
	}
	r.NotifyLeave(b)
	if got := r.Names(); !slices.Equal(got, []string{"a"}) || r.Has("b") || !r.Has("a") {
		t.Fatalf("after b left: names %v, has b %v", got, r.Has("b"))
	}
}
