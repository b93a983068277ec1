//go:build !linux

package prober

import "testing"

// allowPingSockets needs nothing where unprivileged ICMP sockets have no
// group restriction (Darwin).
func allowPingSockets(testing.TB) {}
