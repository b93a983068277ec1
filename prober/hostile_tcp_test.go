package prober

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
)

// Hostile tcp peers: silent, trickling, flooding, or stalling a STARTTLS
// upgrade.

func TestHostileTCP(t *testing.T) {
	sshBanner := config.QueryResponse{Expect: mustRegexp(t, `^SSH-2.0-`)}
	for _, tc := range []struct {
		name   string
		handle func(net.Conn, <-chan struct{})
		steps  []config.QueryResponse
		want   result.Reason
		// the peer keeps the probe waiting until its deadline
		stalls bool
		regex  bool // probe_failed_due_to_regex
	}{
		// Accepts and never says a word: timeout, not a mismatch.
		{"never speaks", func(net.Conn, <-chan struct{}) {}, []config.QueryResponse{sshBanner}, result.ReasonTimeout, true, false},
		// One byte at a time, never a line: what arrived did not match.
		{"trickles a line that never ends", func(c net.Conn, stop <-chan struct{}) {
			trickle(c, stop, "SSH-1.99", "-", 20*time.Millisecond)
		}, []config.QueryResponse{sshBanner}, result.ReasonExpectMismatch, true, true},
		// Line after line, as fast as it can, none matching: the probe
		// reads one line at a time until its deadline.
		{"floods lines", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "", bytes.Repeat([]byte("220 not the banner you are looking for\r\n"), 1000))
		}, []config.QueryResponse{sshBanner}, result.ReasonExpectMismatch, true, true},
		// An endless line: cut at 64 KiB.
		{"floods one line", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "", hostileChunk)
		}, []config.QueryResponse{sshBanner}, result.ReasonProtocolError, false, false},
		{"expect_bytes, never speaks", func(net.Conn, <-chan struct{}) {},
			[]config.QueryResponse{{ExpectBytes: "\x00\x01"}}, result.ReasonTimeout, true, false},
		// Agrees to STARTTLS, then never starts the handshake.
		{"stalls STARTTLS", func(c net.Conn, stop <-chan struct{}) {
			br := bufio.NewReader(c)
			c.Write([]byte("220 smtp.test ESMTP\r\n"))
			if line, _ := br.ReadString('\n'); line == "STARTTLS\n" {
				c.Write([]byte("220 Ready to start TLS\r\n"))
			}
		}, []config.QueryResponse{
			{Expect: mustRegexp(t, `^220 `), Send: "STARTTLS"},
			{Expect: mustRegexp(t, `^220 Ready`)},
			{StartTLS: true},
		}, result.ReasonTimeout, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			srv := newHostileServer(t, tc.handle)
			o := probeHostile(t, tcpModule(tc.steps...), srv.addr, deadlineFor(tc.stalls))
			o.requireBounded(t, tc.want, hostileHeapFloor)
			o.requireTiming(t, tc.stalls)
			want := map[bool]float64{false: 0, true: 1}[tc.regex]
			if got := seriesOfResult(o.r)["probe_failed_due_to_regex"]; got != want {
				t.Errorf("probe_failed_due_to_regex = %v, want %v", got, want)
			}
			srv.waitClosed(t)
			t.Logf("the server wrote %d bytes", srv.written.Load())
		})
	}
}
