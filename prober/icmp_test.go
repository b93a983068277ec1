package prober

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/vantageprobe/vantage/config"
)

func icmpTestModule(edit func(*config.ICMPProbe)) config.Module {
	m := config.DefaultModule
	m.Prober = "icmp"
	m.ICMP = config.DefaultICMPProbe
	m.ICMP.IPProtocol = "ip4"
	if edit != nil {
		edit(&m.ICMP)
	}
	return m
}

// requireRawICMP skips tests that need raw ICMP sockets (to ping and to
// watch the packets on the wire) where the process may not open them.
func requireRawICMP(tb testing.TB) {
	tb.Helper()
	c, err := net.ListenPacket("ip4:icmp", "127.0.0.1")
	if err != nil {
		tb.Skipf("raw ICMP sockets are not permitted here (run as root or with CAP_NET_RAW): %v", err)
	}
	c.Close()
}

// icmpSniffer receives a copy of every ICMP packet of one family the host
// receives, so a test can inspect the echo requests a probe sent.
type icmpSniffer struct {
	v4 *ipv4.RawConn
	v6 *ipv6.PacketConn
}

func newICMPSniffer(tb testing.TB, family int) *icmpSniffer {
	tb.Helper()
	s := &icmpSniffer{}
	if family == 4 {
		c, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
		if err != nil {
			tb.Fatal(err)
		}
		if s.v4, err = ipv4.NewRawConn(c); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { s.v4.Close() })
		return s
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		tb.Fatal(err)
	}
	s.v6 = ipv6.NewPacketConn(c)
	if err := s.v6.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.v6.Close() })
	return s
}

// sentRequest is an echo request as the sniffer saw it.
type sentRequest struct {
	src      net.IP
	hopLimit int // TTL for IPv4
	dontFrag bool
	payload  int // echo data bytes
}

// request finds the echo request with id and seq among the packets received
// so far.
func (s *icmpSniffer) request(tb testing.TB, id, seq int) sentRequest {
	tb.Helper()
	buf := make([]byte, 1<<17)
	deadline := time.Now().Add(time.Second)
	for {
		var (
			req  sentRequest
			icmp []byte
			err  error
		)
		if s.v4 != nil {
			s.v4.SetReadDeadline(deadline)
			var h *ipv4.Header
			h, icmp, _, err = s.v4.ReadFrom(buf)
			if err == nil {
				req = sentRequest{src: h.Src, hopLimit: h.TTL, dontFrag: h.Flags&ipv4.DontFragment != 0}
			}
		} else {
			s.v6.SetReadDeadline(deadline)
			var n int
			var cm *ipv6.ControlMessage
			var src net.Addr
			n, cm, src, err = s.v6.ReadFrom(buf)
			if err == nil {
				icmp = buf[:n]
				req = sentRequest{src: src.(*net.IPAddr).IP, hopLimit: -1}
				if cm != nil {
					req.hopLimit = cm.HopLimit
				}
			}
		}
		if err != nil {
			tb.Fatalf("no echo request id=%d seq=%d seen: %v", id, seq, err)
		}
		if len(icmp) < 8 || (icmp[0] != byte(ipv4.ICMPTypeEcho) && icmp[0] != byte(ipv6.ICMPTypeEchoRequest)) {
			continue
		}
		if int(icmp[4])<<8|int(icmp[5]) == id && int(icmp[6])<<8|int(icmp[7]) == seq {
			req.payload = len(icmp) - 8
			return req
		}
	}
}

func TestICMPPingLoopback(t *testing.T) {
	requireRawICMP(t)
	for _, tc := range []struct {
		name, target, protocol string
		family                 int
	}{
		{"ipv4", "127.0.0.1", "ip4", 4},
		{"ipv6", "::1", "ip6", 6},
		{"bracketed ipv6", "[::1]", "ip6", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runTestProbe(t, icmpTestModule(func(p *config.ICMPProbe) { p.IPProtocol = tc.protocol }), tc.target, 2*time.Second)
			requireReason(t, r, result.ReasonNone)
			if r.ICMP.Socket != "raw" {
				t.Errorf("socket = %q, want raw (running with raw socket permission)", r.ICMP.Socket)
			}
			if r.Resolve.IPProtocol != tc.family {
				t.Errorf("ip protocol = %d, want %d", r.Resolve.IPProtocol, tc.family)
			}
			if r.PhaseDuration("setup") <= 0 || r.PhaseDuration("rtt") <= 0 {
				t.Errorf("phases = %+v, want setup and rtt measured", r.Phases)
			}
			// The loopback reply comes from this host's own stack, with its
			// default TTL / hop limit.
			compareResultSeries(t, r, fmt.Sprintf(`
# HELP probe_icmp_reply_hop_limit Replied packet hop limit (TTL for ipv4)
# TYPE probe_icmp_reply_hop_limit gauge
probe_icmp_reply_hop_limit %d
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 1
`, hostHopLimit(t, tc.family)), "probe_icmp_reply_hop_limit", "probe_success")
			got := seriesOfResult(r)
			for _, name := range []string{
				`probe_icmp_duration_seconds{phase="resolve"}`, `probe_icmp_duration_seconds{phase="setup"}`,
				`probe_icmp_duration_seconds{phase="rtt"}`, "probe_ip_protocol", "probe_ip_addr_hash",
				"probe_dns_lookup_time_seconds",
			} {
				if _, ok := got[name]; !ok {
					t.Errorf("series %s missing from %v", name, got)
				}
			}
		})
	}
}

func TestICMPPayloadSizeAndTTL(t *testing.T) {
	requireRawICMP(t)
	for _, family := range []int{4, 6} {
		t.Run(map[int]string{4: "ipv4", 6: "ipv6"}[family], func(t *testing.T) {
			sniffer := newICMPSniffer(t, family)
			target, protocol := "127.0.0.1", "ip4"
			if family == 6 {
				target, protocol = "::1", "ip6"
			}
			m := icmpTestModule(func(p *config.ICMPProbe) {
				p.IPProtocol, p.PayloadSize, p.TTL = protocol, 1200, 7
			})
			r := runTestProbe(t, m, target, 2*time.Second)
			requireReason(t, r, result.ReasonNone)
			if r.ICMP.PayloadBytes != 1200 {
				t.Errorf("payload bytes = %d, want 1200", r.ICMP.PayloadBytes)
			}
			// The reply matched only if it echoed all 1200 bytes; the
			// request went out with exactly that payload and the TTL.
			req := sniffer.request(t, r.ICMP.ID, r.ICMP.Sequence)
			if req.payload != 1200 {
				t.Errorf("request payload = %d bytes, want 1200", req.payload)
			}
			if req.hopLimit != 7 {
				t.Errorf("request TTL/hop limit = %d, want the configured 7", req.hopLimit)
			}
		})
	}
}

func TestICMPDefaultTTLAndPayload(t *testing.T) {
	requireRawICMP(t)
	sniffer := newICMPSniffer(t, 4)
	r := runTestProbe(t, icmpTestModule(nil), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	req := sniffer.request(t, r.ICMP.ID, r.ICMP.Sequence)
	if req.hopLimit != 64 || req.payload != len(defaultICMPPayload) {
		t.Errorf("request TTL %d payload %d, want 64 (the config default) and %d", req.hopLimit, req.payload, len(defaultICMPPayload))
	}
}

func TestICMPSourceIPAddress(t *testing.T) {
	requireRawICMP(t)
	requireSecondLoopback(t)
	sniffer := newICMPSniffer(t, 4)
	r := runTestProbe(t, icmpTestModule(func(p *config.ICMPProbe) { p.SourceIPAddress = "127.0.0.2" }), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if req := sniffer.request(t, r.ICMP.ID, r.ICMP.Sequence); !req.src.Equal(net.IPv4(127, 0, 0, 2)) {
		t.Errorf("request source = %s, want 127.0.0.2", req.src)
	}

	// A source of the other family cannot send to the target.
	r = runTestProbe(t, icmpTestModule(func(p *config.ICMPProbe) { p.SourceIPAddress = "::1" }), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonSocketError)
}

func TestICMPDontFragment(t *testing.T) {
	requireRawICMP(t)
	sniffer := newICMPSniffer(t, 4)
	r := runTestProbe(t, icmpTestModule(func(p *config.ICMPProbe) { p.DontFragment = true }), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.ICMP.Socket != "raw" {
		t.Errorf("socket = %q, want raw", r.ICMP.Socket)
	}
	if req := sniffer.request(t, r.ICMP.ID, r.ICMP.Sequence); !req.dontFrag {
		t.Error("the echo request went out without the DF bit")
	}
	// IPv6 has no DF bit: the option is ignored.
	r = runTestProbe(t, icmpTestModule(func(p *config.ICMPProbe) { p.DontFragment, p.IPProtocol = true, "ip6" }), "::1", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
}

func TestICMPTimeout(t *testing.T) {
	requireRawICMP(t)
	runTestProbe(t, icmpTestModule(nil), "127.0.0.1", 2*time.Second) // warm up lazily started runtime goroutines
	before := runtime.NumGoroutine()
	for range 5 {
		start := time.Now()
		r := runTestProbe(t, icmpTestModule(nil), "127.0.0.1", time.Nanosecond)
		requireReason(t, r, result.ReasonTimeout)
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("an expired probe took %v", took)
		}
		if r.ICMP.ReplyHopLimit != nil {
			t.Error("a timed out probe reports a reply hop limit")
		}
		if _, ok := seriesOfResult(r)[`probe_icmp_duration_seconds{phase="rtt"}`]; !ok {
			t.Error("a timed out probe lacks the rtt phase series")
		}
	}
	waitForGoroutinesAtMost(t, before)
}

// silentConn swallows what is written to it, so no echo request leaves and
// no reply ever comes.
type silentConn struct{ net.PacketConn }

func (silentConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }

func TestICMPNoReplyWaitsUntilDeadline(t *testing.T) {
	requireRawICMP(t)
	m := icmpTestModule(nil)
	q, err := newICMPProber(m.ICMP)
	if err != nil {
		t.Fatal(err)
	}
	q.listenRaw = func(family int, source string, df bool) (*icmpSocket, error) {
		s, err := listenRawICMP(family, source, df)
		if err == nil {
			s.conn = silentConn{s.conn}
		}
		return s, err
	}
	mod := &Module{Name: "test", Config: m, probe: q.probe}
	before := runtime.NumGoroutine()
	// Replies to other probes arrive meanwhile and must not end the wait.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				runTestProbe(t, icmpTestModule(nil), "127.0.0.1", time.Second)
			}
		}
	}()
	start := time.Now()
	r := probeModule(t, mod, "127.0.0.1", 200*time.Millisecond)
	took := time.Since(start)
	close(stop)
	<-done
	requireReason(t, r, result.ReasonTimeout)
	if rtt := r.PhaseDuration("rtt"); rtt < 150*time.Millisecond || took > time.Second {
		t.Errorf("rtt phase %v, probe took %v; want it to wait for the 200ms deadline and no longer", rtt, took)
	}
	waitForGoroutinesAtMost(t, before)
}

func TestICMPTargets(t *testing.T) {
	useHTTPTestDNS(t, map[string]string{"pingme.vantage.test.": "127.0.0.1"})
	for _, target := range []string{"", "127.0.0.1:80", "ping me", "a/b", "[127.0.0.1"} {
		r := runTestProbe(t, icmpTestModule(nil), target, time.Second)
		requireReason(t, r, result.ReasonInvalidTarget)
	}
	r := runTestProbe(t, icmpTestModule(nil), "missing.vantage.test", time.Second)
	requireReason(t, r, result.ReasonDNSError)
	if _, ok := seriesOfResult(r)[`probe_icmp_duration_seconds{phase="setup"}`]; !ok {
		t.Error("a failed resolution lacks the setup phase series")
	}

	requireRawICMP(t)
	r = runTestProbe(t, icmpTestModule(nil), "pingme.vantage.test", 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.Resolve.IP != "127.0.0.1" {
		t.Errorf("resolved %q, want 127.0.0.1", r.Resolve.IP)
	}
}

func TestICMPPrepareErrors(t *testing.T) {
	for _, edit := range []func(*config.ICMPProbe){
		func(p *config.ICMPProbe) { p.SourceIPAddress = "not-an-ip" },
		func(p *config.ICMPProbe) { p.TTL = 256 },
		func(p *config.ICMPProbe) { p.PayloadSize = -1 },
	} {
		if _, err := Prepare("bad", icmpTestModule(edit)); err == nil {
			t.Errorf("Prepare accepted %+v", icmpTestModule(edit).ICMP)
		}
	}
}

func TestICMPPayloadFill(t *testing.T) {
	q, err := newICMPProber(config.ICMPProbe{PayloadSize: 60})
	if err != nil {
		t.Fatal(err)
	}
	want := (defaultICMPPayload + defaultICMPPayload + defaultICMPPayload)[:60]
	if string(q.payload) != want {
		t.Errorf("payload = %q, want %q", q.payload, want)
	}
}

// errPermission stands for the EPERM of a raw socket without CAP_NET_RAW.
var errPermission = &net.OpError{Op: "listen", Net: "ip4:icmp", Err: os.NewSyscallError("socket", syscall.EPERM)}

func TestOpenICMPSocketFallback(t *testing.T) {
	if !datagramICMP {
		t.Skip("this OS has no unprivileged ICMP sockets")
	}
	raw, dgram := &icmpSocket{privileged: true}, &icmpSocket{}
	other := errors.New("address not available")
	for _, tc := range []struct {
		name      string
		needRaw   bool
		rawErr    error
		dgramErr  error
		want      *icmpSocket
		wantDgram bool // whether the datagram socket was tried
	}{
		{name: "raw permitted", want: raw},
		{name: "raw not permitted", rawErr: errPermission, want: dgram, wantDgram: true},
		{name: "neither permitted", rawErr: errPermission, dgramErr: errPermission, wantDgram: true},
		{name: "dont_fragment needs raw", needRaw: true, rawErr: errPermission},
		{name: "other raw errors are final", rawErr: other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			triedDgram := false
			s, err := openICMPSocket(tc.needRaw,
				func() (*icmpSocket, error) {
					if tc.rawErr != nil {
						return nil, tc.rawErr
					}
					return raw, nil
				},
				func() (*icmpSocket, error) {
					triedDgram = true
					if tc.dgramErr != nil {
						return nil, tc.dgramErr
					}
					return dgram, nil
				}, slog.New(slog.DiscardHandler))
			if s != tc.want {
				t.Errorf("socket = %+v, want %+v", s, tc.want)
			}
			if (err == nil) != (tc.want != nil) {
				t.Errorf("err = %v", err)
			}
			if triedDgram != tc.wantDgram {
				t.Errorf("datagram socket tried = %v, want %v", triedDgram, tc.wantDgram)
			}
			if tc.rawErr != nil && tc.want == nil && !errors.Is(err, tc.rawErr) {
				t.Errorf("err = %v, want it to wrap the raw socket's %v", err, tc.rawErr)
			}
		})
	}
}

func TestEchoReplyMatches(t *testing.T) {
	data := []byte("payload")
	target := net.ParseIP("192.0.2.1")
	want := echoReply{typ: 0, id: 0x1234, seq: 0xabcd, data: data, from: target}
	reply := func(typ byte, id, seq int, data string) []byte {
		return append([]byte{typ, 0, 0xff, 0xff, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}, data...)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		from net.IP
		id   int
		ok   bool
	}{
		{"ours", reply(0, 0x1234, 0xabcd, "payload"), target, 0x1234, true},
		{"other id", reply(0, 0x1235, 0xabcd, "payload"), target, 0x1234, false},
		{"any id (datagram socket)", reply(0, 0x9999, 0xabcd, "payload"), target, -1, true},
		{"other sequence", reply(0, 0x1234, 0xabce, "payload"), target, 0x1234, false},
		{"other payload", reply(0, 0x1234, 0xabcd, "payloaD"), target, 0x1234, false},
		{"truncated payload", reply(0, 0x1234, 0xabcd, "pay"), target, 0x1234, false},
		{"echo request", reply(8, 0x1234, 0xabcd, "payload"), target, 0x1234, false},
		{"other sender", reply(0, 0x1234, 0xabcd, "payload"), net.ParseIP("192.0.2.2"), 0x1234, false},
		{"short", []byte{0, 0, 0, 0}, target, 0x1234, false},
	} {
		w := want
		w.id = tc.id
		if got := w.matches(tc.msg, tc.from); got != tc.ok {
			t.Errorf("%s: matches = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestEchoReplyFilter(t *testing.T) {
	icmpMsg := func(typ byte, id, seq int) []byte {
		return []byte{typ, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq), 'x'}
	}
	ipv4Packet := func(optionWords int, msg []byte) []byte {
		h := make([]byte, 20+4*optionWords)
		h[0] = 0x40 | byte(5+optionWords)
		return append(h, msg...)
	}
	for _, tc := range []struct {
		name   string
		ipv4   bool
		typ    byte
		packet []byte
		pass   bool
	}{
		{"ipv4 reply", true, 0, ipv4Packet(0, icmpMsg(0, 7, 9)), true},
		{"ipv4 reply behind IP options", true, 0, ipv4Packet(2, icmpMsg(0, 7, 9)), true},
		{"ipv4 request", true, 0, ipv4Packet(0, icmpMsg(8, 7, 9)), false},
		{"ipv4 other id", true, 0, ipv4Packet(0, icmpMsg(0, 8, 9)), false},
		{"ipv4 other seq", true, 0, ipv4Packet(0, icmpMsg(0, 7, 10)), false},
		{"ipv4 short", true, 0, ipv4Packet(0, []byte{0, 0}), false},
		{"ipv6 reply", false, 129, icmpMsg(129, 7, 9), true},
		{"ipv6 neighbour solicitation", false, 129, icmpMsg(135, 7, 9), false},
		{"ipv6 other seq", false, 129, icmpMsg(129, 7, 10), false},
	} {
		vm, err := bpf.NewVM(echoReplyFilter(tc.ipv4, tc.typ, 7, 9))
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(tc.packet)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter kept %d bytes, want pass=%v", tc.name, n, tc.pass)
		}
	}
}

func TestICMPReplyHopLimitSeries(t *testing.T) {
	// The details go over the JSON API; the series come only from a reply.
	d := &result.ICMPDetails{}
	r := &result.Result{Prober: "icmp", ICMP: d}
	if s := seriesOfResult(r); len(s) != 2 { // probe_success, probe_duration_seconds
		t.Errorf("series without a reply: %v", s)
	}
	hop := 3
	d.ReplyHopLimit = &hop
	if got := seriesOfResult(r)["probe_icmp_reply_hop_limit"]; got != 3 {
		t.Errorf("probe_icmp_reply_hop_limit = %v, want 3", got)
	}
}

// icmpProbeWithoutRaw prepares m with raw sockets refused as they are
// without CAP_NET_RAW, so the probe must fall back to a datagram socket.
func icmpProbeWithoutRaw(tb testing.TB, m config.Module) *Module {
	tb.Helper()
	q, err := newICMPProber(m.ICMP)
	if err != nil {
		tb.Fatal(err)
	}
	q.listenRaw = func(int, string, bool) (*icmpSocket, error) { return nil, errPermission }
	return &Module{Name: "test", Config: m, probe: q.probe}
}

func probeModule(tb testing.TB, mod *Module, target string, timeout time.Duration) *result.Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return mod.Probe(ctx, target, Params{Logger: testProbeLogger(tb)})
}

func TestICMPWithoutRawSocket(t *testing.T) {
	allowPingSockets(t)
	for _, tc := range []struct{ target, protocol string }{{"127.0.0.1", "ip4"}, {"::1", "ip6"}} {
		t.Run(tc.protocol, func(t *testing.T) {
			m := icmpTestModule(func(p *config.ICMPProbe) { p.IPProtocol, p.PayloadSize = tc.protocol, 100 })
			r := probeModule(t, icmpProbeWithoutRaw(t, m), tc.target, 2*time.Second)
			requireReason(t, r, result.ReasonNone)
			if r.ICMP.Socket != "datagram" {
				t.Errorf("socket = %q, want datagram", r.ICMP.Socket)
			}
			if want := hostHopLimit(t, familyOf(net.ParseIP(tc.target))); r.ICMP.ReplyHopLimit == nil || *r.ICMP.ReplyHopLimit != want {
				t.Errorf("reply hop limit = %v, want %d", r.ICMP.ReplyHopLimit, want)
			}
		})
	}
	// dont_fragment needs the raw socket: no fallback.
	m := icmpTestModule(func(p *config.ICMPProbe) { p.DontFragment = true })
	r := probeModule(t, icmpProbeWithoutRaw(t, m), "127.0.0.1", 2*time.Second)
	requireReason(t, r, result.ReasonSocketError)
	if !strings.Contains(r.Error, "dont_fragment") {
		t.Errorf("error %q does not name dont_fragment", r.Error)
	}
}

// waitForGoroutinesAtMost waits up to 5s for the goroutine count to fall
// back to at most want (the icmp and grpc tests' leak check).
func waitForGoroutinesAtMost(t *testing.T, want int) {
	t.Helper()
	var n int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = runtime.NumGoroutine(); n <= want {
			return
		}
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("%d goroutines after the probes, %d before:\n%s", n, want, buf)
}
