package cluster

import (
	"fmt"
	"math"
	"testing"
)

func hashes(prefix string, n int) []uint64 {
	hs := make([]uint64, n)
	for i := range hs {
		hs[i] = KeyHash(fmt.Sprintf("http_2xx\x00http://%s-%d.example/", prefix, i))
	}
	return hs
}

// views builds each member's view of a cluster whose members all hold set.
func views(names []string, sets map[string]*Set, replicas int) map[string]*View {
	out := map[string]*View{}
	for _, self := range names {
		var peers []Peer
		for _, p := range names {
			if p != self {
				peers = append(peers, Peer{Name: p, Digest: sets[p].Digest(), Known: sets[p]})
			}
		}
		out[self] = NewView(self, sets[self], peers, replicas)
	}
	return out
}

func owners(vs map[string]*View, h uint64) []string {
	var out []string
	for name, v := range vs {
		if v.Owns(h) {
			out = append(out, name)
		}
	}
	return out
}

func TestSetDigestIgnoresOrderAndRepeats(t *testing.T) {
	hs := hashes("a", 100)
	rev := make([]uint64, 0, len(hs)+1)
	for i := len(hs) - 1; i >= 0; i-- {
		rev = append(rev, hs[i])
	}
	rev = append(rev, hs[3])
	a, b := NewSet(hs), NewSet(rev)
	if a.Digest() != b.Digest() || a.Len() != 100 || b.Len() != 100 {
		t.Fatalf("equal sets differ: %x/%d vs %x/%d", a.Digest(), a.Len(), b.Digest(), b.Len())
	}
	if c := NewSet(hs[1:]); c.Digest() == a.Digest() {
		t.Error("a set without one target has the same digest")
	}
	other := append(hs[1:], KeyHash("http_2xx\x00http://new.example/"))
	if NewSet(other).Digest() == a.Digest() {
		t.Error("a set with one target replaced has the same digest")
	}
	if !a.Has(hs[42]) || a.Has(KeyHash("nope")) {
		t.Error("Has is wrong")
	}
}

func TestEveryTargetOwnedOnceAndEvenly(t *testing.T) {
	hs := hashes("t", 30000)
	names := []string{"10.0.0.1:9716", "10.0.0.2:9716", "10.0.0.3:9716"}
	set := NewSet(hs)
	sets := map[string]*Set{}
	for _, n := range names {
		sets[n] = set
	}
	vs := views(names, sets, 1)
	load := map[string]int{}
	for _, h := range hs {
		o := owners(vs, h)
		if len(o) != 1 {
			t.Fatalf("target %x owned by %v, want exactly one member", h, o)
		}
		load[o[0]]++
	}
	for n, l := range load {
		if math.Abs(float64(l)-10000)/10000 > 0.05 {
			t.Errorf("%s owns %d of 30000, want 10000 ± 5%%", n, l)
		}
	}
}

func TestLeavingMemberMovesOnlyItsTargets(t *testing.T) {
	hs := hashes("t", 10000)
	set := NewSet(hs)
	all := []string{"a:1", "b:1", "c:1", "d:1"}
	sets := map[string]*Set{"a:1": set, "b:1": set, "c:1": set, "d:1": set}
	before := views(all, sets, 1)
	after := views(all[:3], sets, 1)
	moved, gained := 0, map[string]int{}
	for _, h := range hs {
		b, a := owners(before, h)[0], owners(after, h)
		if len(a) != 1 {
			t.Fatalf("target owned by %v after d left", a)
		}
		if b != a[0] {
			if b != "d:1" {
				t.Fatalf("a target of %s moved to %s when d left", b, a[0])
			}
			moved++
			gained[a[0]]++
		}
	}
	if moved < 2000 || moved > 3000 {
		t.Errorf("%d of 10000 targets moved, want d's quarter", moved)
	}
	for _, n := range all[:3] {
		if gained[n] < moved/5 {
			t.Errorf("%s took %d of d's %d targets: the share is uneven", n, gained[n], moved)
		}
	}
}

func TestReplicas(t *testing.T) {
	hs := hashes("t", 2000)
	set := NewSet(hs)
	names := []string{"a:1", "b:1", "c:1"}
	for replicas, want := range map[int]int{1: 1, 2: 2, 3: 3, 5: 3} {
		vs := views(names, map[string]*Set{"a:1": set, "b:1": set, "c:1": set}, replicas)
		for _, h := range hs {
			if got := len(owners(vs, h)); got != want {
				t.Fatalf("replicas %d: target owned by %d members, want %d", replicas, got, want)
			}
		}
	}
}

// TestRolloutTargetsOwnedByMembersThatKnowThem: a knows a new target
// first; b dropped an old one that a and c still check. Every target is
// owned exactly once, by a member that knows it.
func TestRolloutTargetsOwnedByMembersThatKnowThem(t *testing.T) {
	common := hashes("common", 3000)
	added := hashes("new", 300)
	dropped := hashes("old", 300)
	sa := NewSet(append(append(append([]uint64{}, common...), added...), dropped...))
	sb := NewSet(common)
	sc := NewSet(append(append([]uint64{}, common...), dropped...))
	names := []string{"a:1", "b:1", "c:1"}
	vs := views(names, map[string]*Set{"a:1": sa, "b:1": sb, "c:1": sc}, 1)
	for _, h := range added {
		if o := owners(vs, h); len(o) != 1 || o[0] != "a:1" {
			t.Fatalf("a new target known only by a is owned by %v", o)
		}
	}
	perMember := map[string]int{}
	for _, h := range dropped {
		o := owners(vs, h)
		if len(o) != 1 || o[0] == "b:1" {
			t.Fatalf("a target b dropped is owned by %v", o)
		}
		perMember[o[0]]++
	}
	if perMember["a:1"] == 0 || perMember["c:1"] == 0 {
		t.Errorf("the dropped targets are not shared between a and c: %v", perMember)
	}
	for _, h := range common {
		if o := owners(vs, h); len(o) != 1 {
			t.Fatalf("a common target is owned by %v", o)
		}
	}
	if got := vs["b:1"].Mismatched(); got != 2 {
		t.Errorf("b sees %d mismatched peers, want 2", got)
	}
}

// TestUnfetchedSetMeansOverlapNotGap: while a's differing set has not
// arrived at b, b counts a as not knowing b's targets: a target is then
// checked twice (by a and by b), never by nobody.
func TestUnfetchedSetMeansOverlapNotGap(t *testing.T) {
	common := hashes("common", 2000)
	sa := NewSet(append(append([]uint64{}, common...), hashes("new", 10)...))
	sb := NewSet(common)
	va := NewView("a:1", sa, []Peer{{Name: "b:1", Digest: sb.Digest(), Known: sb}}, 1)
	vb := NewView("b:1", sb, []Peer{{Name: "a:1", Digest: sa.Digest()}}, 1)
	for _, h := range common {
		if !va.Owns(h) && !vb.Owns(h) {
			t.Fatal("a target is checked by nobody while a set is being fetched")
		}
	}
	for _, h := range common {
		if !vb.Owns(h) {
			t.Fatal("b does not check a target while it cannot tell whether a knows it")
		}
	}
}

func TestSetMessageRoundTrip(t *testing.T) {
	s := NewSet(hashes("t", 50))
	name, got, err := decodeSet(encodeSet("127.0.0.2:7946", s)[1:])
	if err != nil || name != "127.0.0.2:7946" || got.Digest() != s.Digest() || got.Len() != 50 {
		t.Fatalf("decoded %q %v %v", name, got, err)
	}
	for _, bad := range [][]byte{{}, {9, 'a'}, append([]byte{1, 'a'}, 1, 2, 3)} {
		if _, _, err := decodeSet(bad); err == nil {
			t.Errorf("decodeSet(%v) accepted a malformed message", bad)
		}
	}
}

// BenchmarkOwns1M is the cost of computing ownership again for 1,000,000
// targets in a cluster of 5 (after a member joins or leaves).
func BenchmarkOwns1M(b *testing.B) {
	hs := hashes("t", 1_000_000)
	set := NewSet(hs)
	names := []string{"a:1", "b:1", "c:1", "d:1", "e:1"}
	v := views(names, map[string]*Set{"a:1": set, "b:1": set, "c:1": set, "d:1": set, "e:1": set}, 1)["a:1"]
	b.ResetTimer()
	for range b.N {
		n := 0
		for _, h := range hs {
			if v.Owns(h) {
				n++
			}
		}
		if n < 150_000 || n > 250_000 {
			b.Fatalf("owns %d of 1M, want about 200k", n)
		}
	}
}

// BenchmarkNewSet1M is the cost of a member's target set (its digest
// included) for 1,000,000 targets, at each change of the target list.
func BenchmarkNewSet1M(b *testing.B) {
	hs := hashes("t", 1_000_000)
	b.ResetTimer()
	for range b.N {
		NewSet(hs)
	}
}
