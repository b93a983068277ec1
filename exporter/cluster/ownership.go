package cluster

import (
	"cmp"
	"hash/fnv"
	"slices"
)

// KeyHash is the hash of a target's key (scheduler.Key: module and
// target) that ownership and target sets work with. It is the same in
// every member, so all of them agree on it.
func KeyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return mix(h.Sum64())
}

// mix is splitmix64's finaliser: it spreads FNV's output over all 64
// bits, so the scores of two members for one key are independent.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Set is a member's target set: the hashes of the keys it schedules,
// sorted, and their digest.
type Set struct {
	hashes []uint64
	digest uint64
}

// NewSet builds the set of the given key hashes (in any order, with
// repeats).
func NewSet(hashes []uint64) *Set {
	hs := slices.Clone(hashes)
	slices.Sort(hs)
	hs = slices.Compact(hs)
	// The digest mixes the sorted hashes in turn: equal sets give equal
	// digests whatever order their keys came in.
	d := uint64(len(hs))
	for _, h := range hs {
		d = mix(d ^ h)
	}
	return &Set{hashes: hs, digest: d}
}

// Has says whether the set holds the key hash h.
func (s *Set) Has(h uint64) bool {
	_, ok := slices.BinarySearch(s.hashes, h)
	return ok
}

// Digest identifies the set: members whose digests are equal hold the
// same targets.
func (s *Set) Digest() uint64 { return s.digest }

// Len is the number of targets in the set.
func (s *Set) Len() int { return len(s.hashes) }

// Hashes returns the set's sorted key hashes; the caller must not change them.
func (s *Set) Hashes() []uint64 { return s.hashes }

// Peer is another live member of the cluster as this member knows it:
// the digest of its target set from its gossiped metadata and, when it
// differs from this member's and was fetched, the set itself. A peer
// with the same digest holds the same targets; a peer whose differing
// set was not fetched yet counts as not knowing any of them, so a target
// is never left to a member that may not check it (an overlap instead,
// until the set arrives).
type Peer struct {
	Name   string
	Digest uint64
	// Known is the peer's target set for Digest; nil while not fetched.
	Known *Set
}

// View is what one member knows of its cluster: its own name and target
// set, its live peers, and how many members check each target. Ownership
// is a pure function of it.
type View struct {
	Self     string
	Own      *Set
	Peers    []Peer
	Replicas int
	selfHash uint64
	peerHash []uint64
}

// NewView builds a view; the peers are sorted by name so equal views give
// equal answers.
func NewView(self string, own *Set, peers []Peer, replicas int) *View {
	ps := slices.Clone(peers)
	slices.SortFunc(ps, func(a, b Peer) int { return cmp.Compare(a.Name, b.Name) })
	v := &View{Self: self, Own: own, Peers: ps, Replicas: max(replicas, 1), selfHash: KeyHash(self)}
	v.peerHash = make([]uint64, len(ps))
	for i := range ps {
		v.peerHash[i] = KeyHash(ps[i].Name)
	}
	return v
}

// score is a member's rendezvous (highest random weight) score for a key:
// the key goes to the highest scores, so when a member leaves only its
// keys move, and a joining member takes an even share from every other.
func score(member, key uint64) uint64 { return mix(member ^ key) }

// Owns says whether this member checks the key hash h: h is in its own
// set and this member's score is among the Replicas highest of the
// members that know h. Ties (equal scores) go to the smaller name.
func (v *View) Owns(h uint64) bool {
	if !v.Own.Has(h) {
		return false
	}
	mine := score(v.selfHash, h)
	above := 0
	for i := range v.Peers {
		p := &v.Peers[i]
		// h is in this member's set: a peer with the same digest knows it.
		if p.Digest != v.Own.digest && (p.Known == nil || !p.Known.Has(h)) {
			continue
		}
		s := score(v.peerHash[i], h)
		if s > mine || (s == mine && p.Name < v.Self) {
			if above++; above >= v.Replicas {
				return false
			}
		}
	}
	return true
}

// Mismatched counts the peers whose target set differs from this member's.
func (v *View) Mismatched() int {
	n := 0
	for i := range v.Peers {
		if v.Peers[i].Digest != v.Own.digest {
			n++
		}
	}
	return n
}
