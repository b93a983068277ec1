//go:build !linux

package prober

import "testing"

// allowPingSockets needs nothing where unprivileged ICMP sockets have no
// group restriction (Darwin).
func allowPingSockets(testing.TB) {}

// hostHopLimit is the TTL / hop limit of the host's own packets: 64 on the
// BSDs and Darwin.
func hostHopLimit(testing.TB, int) int { return 64 }
