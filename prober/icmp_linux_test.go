package prober

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

// allowPingSockets lets this process's group open unprivileged ICMP
// ("ping") sockets for the duration of the test, widening
// net.ipv4.ping_group_range (which governs IPv4 and IPv6) when needed and
// restoring it afterwards. It skips the test when the kernel refuses.
func allowPingSockets(tb testing.TB) {
	tb.Helper()
	const path = "/proc/sys/net/ipv4/ping_group_range"
	old, err := os.ReadFile(path)
	if err != nil {
		tb.Skipf("cannot read %s: %v", path, err)
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(old), &lo, &hi); err != nil {
		tb.Skipf("cannot parse %s %q: %v", path, old, err)
	}
	gid := os.Getgid()
	if lo <= gid && gid <= hi {
		return
	}
	if err := os.WriteFile(path, fmt.Appendf(nil, "%d %d", gid, gid), 0o644); err != nil {
		tb.Skipf("unprivileged ICMP sockets are off (%s = %s) and cannot be allowed: %v", path, strings.TrimSpace(string(old)), err)
	}
	tb.Cleanup(func() {
		if err := os.WriteFile(path, old, 0o644); err != nil {
			tb.Errorf("restoring %s: %v", path, err)
		}
	})
}

func TestListenRawICMPDontFragment(t *testing.T) {
	requireRawICMP(t)
	for _, df := range []bool{true, false} {
		s, err := listenRawICMP(4, "127.0.0.1", df)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := s.conn.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var mode int
		var gerr error
		rc.Control(func(fd uintptr) {
			mode, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER)
		})
		s.conn.Close()
		if gerr != nil {
			t.Fatal(gerr)
		}
		// IP_PMTUDISC_DO: DF on every packet, and never fragment locally.
		if (mode == syscall.IP_PMTUDISC_DO) != df {
			t.Errorf("dont_fragment=%v: IP_MTU_DISCOVER = %d", df, mode)
		}
	}
}

// hostHopLimit is the TTL (IPv4) or hop limit (IPv6) this host's stack sends
// its own packets, echo replies included, with.
func hostHopLimit(tb testing.TB, family int) int {
	tb.Helper()
	path := "/proc/sys/net/ipv4/ip_default_ttl"
	if family == 6 {
		path = "/proc/sys/net/ipv6/conf/lo/hop_limit"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var n int
	if _, err := fmt.Sscan(string(b), &n); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return n
}
