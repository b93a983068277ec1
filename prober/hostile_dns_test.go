package prober

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/config"
)

// Hostile DNS servers: answers that do not parse, are cut short, are as
// large as a message can be, or carry another query's ID.

// newHostileUDPServer answers each datagram on 127.0.0.1:0 with reply,
// which may send any number of datagrams until stop is closed.
func newHostileUDPServer(tb testing.TB, reply func(pc net.PacketConn, to net.Addr, query []byte, stop <-chan struct{})) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			query := append([]byte(nil), buf[:n]...)
			wg.Go(func() { reply(pc, from, query, stop) })
		}
	})
	tb.Cleanup(func() {
		close(stop)
		pc.Close()
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// answerA is a reply to query with n A records for its question.
func answerA(tb testing.TB, query []byte, n int) *dns.Msg {
	tb.Helper()
	req := new(dns.Msg)
	if err := req.Unpack(query); err != nil {
		tb.Errorf("the prober sent a query that does not parse: %v", err)
		return new(dns.Msg)
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Compress = true
	for i := range n {
		m.Answer = append(m.Answer, &dns.A{
			Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A:   net.IPv4(127, 0, byte(i>>8), byte(i)),
		})
	}
	return m
}

func mustPack(tb testing.TB, m *dns.Msg) []byte {
	tb.Helper()
	b, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestHostileDNSOverUDP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(t *testing.T, query []byte) [][]byte // datagrams sent back
		want  result.Reason
		// the probe waits for its deadline: nothing it may accept arrives
		stalls bool
	}{
		{"garbage", func(t *testing.T, q []byte) [][]byte {
			return [][]byte{[]byte("\xde\xad\xbe\xef is not a DNS message at all, just bytes")}
		}, result.ReasonProtocolError, false},
		{"shorter than a header", func(t *testing.T, q []byte) [][]byte {
			return [][]byte{q[:2]}
		}, result.ReasonProtocolError, false},
		{"cut inside a record", func(t *testing.T, q []byte) [][]byte {
			b := mustPack(t, answerA(t, q, 3))
			return [][]byte{b[:len(b)-6]}
		}, result.ReasonProtocolError, false},
		// More than the 512 bytes a query without EDNS0 allows: read as
		// 512 bytes, which end inside a record.
		{"thousands of records", func(t *testing.T, q []byte) [][]byte {
			return [][]byte{mustPack(t, answerA(t, q, 3000))}
		}, result.ReasonProtocolError, false},
		// Strays with other IDs are skipped, as miekg/dns's client does;
		// the answer never comes.
		{"wrong ID only", func(t *testing.T, q []byte) [][]byte {
			m := answerA(t, q, 1)
			m.Id++
			return [][]byte{mustPack(t, m)}
		}, result.ReasonTimeout, true},
		{"wrong ID, then the answer", func(t *testing.T, q []byte) [][]byte {
			wrong := answerA(t, q, 1)
			wrong.Id++
			return [][]byte{mustPack(t, wrong), mustPack(t, answerA(t, q, 2))}
		}, result.ReasonNone, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			addr := newHostileUDPServer(t, func(pc net.PacketConn, to net.Addr, q []byte, _ <-chan struct{}) {
				for _, d := range tc.reply(t, q) {
					pc.WriteTo(d, to)
				}
			})
			o := probeHostile(t, dnsModule("A"), addr, deadlineFor(tc.stalls))
			if tc.want == result.ReasonNone {
				requireReason(t, o.r, result.ReasonNone)
				o.requireTiming(t, false)
				if o.r.DNS.AnswerRRs != 2 {
					t.Errorf("answer RRs %d, want the 2 of the answer with the right ID", o.r.DNS.AnswerRRs)
				}
				return
			}
			o.requireBounded(t, tc.want, hostileHeapFloor)
			o.requireTiming(t, tc.stalls)
			if s := seriesOfResult(o.r); s["probe_dns_query_succeeded"] != 0 {
				t.Errorf("probe_dns_query_succeeded = %v", s["probe_dns_query_succeeded"])
			}
		})
	}
}

// A flood of datagrams with wrong IDs: the probe skips them until its
// deadline, holding one datagram at a time.
func TestHostileDNSWrongIDFlood(t *testing.T) {
	checkNoLeaks(t)
	addr := newHostileUDPServer(t, func(pc net.PacketConn, to net.Addr, q []byte, stop <-chan struct{}) {
		m := answerA(t, q, 20)
		m.Id++
		b := mustPack(t, m)
		for end := time.Now().Add(2 * hostileDeadline); time.Now().Before(end); {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := pc.WriteTo(b, to); err != nil {
				return
			}
		}
	})
	o := probeHostile(t, dnsModule("A"), addr, hostileDeadline)
	o.requireBounded(t, result.ReasonTimeout, hostileHeapFloor)
	o.requireTiming(t, true)
}

// A truncated answer (TC set) over UDP is taken as it is, as
// blackbox_exporter takes it: the probe does not retry over TCP, and the
// records it lacks fail the record checks.
func TestHostileDNSTruncatedFlag(t *testing.T) {
	checkNoLeaks(t)
	addr := newHostileUDPServer(t, func(pc net.PacketConn, to net.Addr, q []byte, _ <-chan struct{}) {
		m := answerA(t, q, 0)
		m.Truncated = true
		pc.WriteTo(mustPack(t, m), to)
	})
	o := probeHostile(t, dnsModule("A"), addr, hostileQuickDeadline)
	requireReason(t, o.r, result.ReasonNone)
	o.requireTiming(t, false)
	if o.r.DNS.AnswerRRs != 0 {
		t.Errorf("answer RRs %d, want 0", o.r.DNS.AnswerRRs)
	}
	m := dnsModule("A")
	m.DNS.ValidateAnswer.FailIfNoneMatchesRegexp = []config.Regexp{mustRegexp(t, `\bA\b`)}
	o = probeHostile(t, m, addr, hostileQuickDeadline)
	o.requireBounded(t, result.ReasonDNSRecords, hostileHeapFloor)
	o.requireTiming(t, false)
}

func TestHostileDNSOverTCP(t *testing.T) {
	for _, tc := range []struct {
		name string
		// respond writes the answer to the query read from the connection.
		respond func(t *testing.T, c net.Conn, q []byte, stop <-chan struct{})
		want    result.Reason
		stalls  bool
	}{
		// TCP allows 64 KiB messages: 4000 records parse, in bounded memory.
		{"4000 records", func(t *testing.T, c net.Conn, q []byte, _ <-chan struct{}) {
			writeDNSFrame(c, mustPack(t, answerA(t, q, 4000)))
		}, result.ReasonNone, false},
		{"garbage", func(t *testing.T, c net.Conn, q []byte, _ <-chan struct{}) {
			writeDNSFrame(c, []byte("\xde\xad\xbe\xef is not a DNS message at all, just bytes"))
		}, result.ReasonProtocolError, false},
		{"wrong ID", func(t *testing.T, c net.Conn, q []byte, _ <-chan struct{}) {
			m := answerA(t, q, 1)
			m.Id++
			writeDNSFrame(c, mustPack(t, m))
		}, result.ReasonProtocolError, false},
		// Announces the largest message and sends a little of it.
		{"announced, never sent", func(t *testing.T, c net.Conn, q []byte, _ <-chan struct{}) {
			c.Write([]byte{0xff, 0xff, 0x12, 0x34})
		}, result.ReasonTimeout, true},
		// The largest message, then more bytes forever: the probe reads
		// one message, never more.
		{"endless stream", func(t *testing.T, c net.Conn, q []byte, stop <-chan struct{}) {
			flood(c, stop, "\xff\xff", hostileChunk)
		}, result.ReasonProtocolError, false},
		{"cut short and closed", func(t *testing.T, c net.Conn, q []byte, _ <-chan struct{}) {
			b := mustPack(t, answerA(t, q, 10))
			var frame [2]byte
			binary.BigEndian.PutUint16(frame[:], uint16(len(b)))
			c.Write(append(frame[:], b[:len(b)/2]...))
			c.Close()
		}, result.ReasonProtocolError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			srv := newHostileServer(t, func(c net.Conn, stop <-chan struct{}) {
				q, err := readDNSFrame(c)
				if err != nil {
					t.Errorf("reading the query: %v", err)
					return
				}
				tc.respond(t, c, q, stop)
			})
			m := dnsModule("A")
			m.DNS.TransportProtocol = "tcp"
			o := probeHostile(t, m, srv.addr, deadlineFor(tc.stalls))
			srv.waitClosed(t)
			if tc.want == result.ReasonNone {
				requireReason(t, o.r, result.ReasonNone)
				o.requireTiming(t, false)
				if o.r.DNS.AnswerRRs != 4000 {
					t.Errorf("answer RRs %d, want 4000", o.r.DNS.AnswerRRs)
				}
				// 4000 parsed records: some hundreds of KiB.
				if o.peak > hostileHeapFloor {
					t.Errorf("probe held %s of heap", kib(o.peak))
				}
				return
			}
			o.requireBounded(t, tc.want, hostileHeapFloor)
			o.requireTiming(t, tc.stalls)
			if w := srv.written.Load(); w > 16<<20 {
				t.Errorf("the server got %d MiB through", w>>20)
			}
		})
	}
}

// readDNSFrame reads one length-prefixed DNS message.
func readDNSFrame(r io.Reader) ([]byte, error) {
	var frame [2]byte
	if _, err := io.ReadFull(r, frame[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(frame[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading %d bytes: %w", len(b), err)
	}
	return b, nil
}

func writeDNSFrame(w io.Writer, b []byte) {
	var frame [2]byte
	binary.BigEndian.PutUint16(frame[:], uint16(len(b)))
	w.Write(append(frame[:], b...))
}
