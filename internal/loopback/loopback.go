// Package loopback holds helpers for tests that need loopback addresses.
package loopback

import (
	"net"
	"testing"
)

// ClosedAddr returns a 127.0.0.1 address with a port nothing listens on:
// connecting to it is refused.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}
