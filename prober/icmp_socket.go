package prober

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/net/bpf"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// icmpSocket is an open ICMP socket of one address family.
type icmpSocket struct {
	conn net.PacketConn
	p4   *ipv4.PacketConn // IPv4 sockets
	p6   *ipv6.PacketConn // IPv6 sockets
	// privileged is set for a raw socket and unset for an unprivileged
	// datagram ("ping") socket.
	privileged bool
	// hopLimit is set once the socket reports the TTL / hop limit of
	// received packets.
	hopLimit bool
}

// datagramICMP reports whether the OS has unprivileged datagram ICMP
// sockets.
var datagramICMP = runtime.GOOS == "linux" || runtime.GOOS == "darwin"

// openICMPSocket opens the socket a probe sends from: a raw socket, or,
// when raw sockets are not permitted (no CAP_NET_RAW), an unprivileged
// datagram socket (on Linux where net.ipv4.ping_group_range allows it).
// needRaw (dont_fragment) rules the fallback out.
func openICMPSocket(needRaw bool, openRaw, openDatagram func() (*icmpSocket, error), logger *slog.Logger) (*icmpSocket, error) {
	s, err := openRaw()
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, os.ErrPermission) || !datagramICMP {
		return nil, err
	}
	if needRaw {
		return nil, fmt.Errorf("dont_fragment needs a raw socket: %w", err)
	}
	logger.Debug("Raw ICMP socket not permitted, trying an unprivileged datagram socket", "err", err)
	s, derr := openDatagram()
	if derr != nil {
		return nil, fmt.Errorf("%w; unprivileged datagram socket: %w", err, derr)
	}
	return s, nil
}

func listenRawICMP(family int, source string, dontFragment bool) (*icmpSocket, error) {
	network := "ip4:icmp"
	if family == 6 {
		network = "ip6:ipv6-icmp"
	}
	c, err := net.ListenPacket(network, source)
	if err != nil {
		return nil, err
	}
	s := &icmpSocket{conn: c, privileged: true}
	if family == 4 {
		s.p4 = ipv4.NewPacketConn(c)
	} else {
		s.p6 = ipv6.NewPacketConn(c)
	}
	if dontFragment {
		if err := setDontFragment(c.(syscall.Conn)); err != nil {
			c.Close()
			return nil, fmt.Errorf("setting dont_fragment: %w", err)
		}
	}
	return s, nil
}

func listenDatagramICMP(family int, source string) (*icmpSocket, error) {
	network := "udp4"
	if family == 6 {
		network = "udp6"
	}
	c, err := icmp.ListenPacket(network, source)
	if err != nil {
		return nil, err
	}
	return &icmpSocket{conn: c, p4: c.IPv4PacketConn(), p6: c.IPv6PacketConn()}, nil
}

// setTTL sets the TTL (IPv4) or unicast hop limit (IPv6) of sent packets;
// 0 keeps the system default.
func (s *icmpSocket) setTTL(ttl int) error {
	if ttl <= 0 {
		return nil
	}
	if s.p4 != nil {
		return s.p4.SetTTL(ttl)
	}
	return s.p6.SetHopLimit(ttl)
}

// enableHopLimit asks for the TTL / hop limit of received packets.
func (s *icmpSocket) enableHopLimit() error {
	var err error
	if s.p4 != nil {
		err = s.p4.SetControlMessage(ipv4.FlagTTL, true)
	} else {
		err = s.p6.SetControlMessage(ipv6.FlagHopLimit, true)
	}
	s.hopLimit = err == nil
	return err
}

// destination is the address to send to ip from the socket.
func (s *icmpSocket) destination(ip net.IP) net.Addr {
	if s.privileged {
		return &net.IPAddr{IP: ip}
	}
	return &net.UDPAddr{IP: ip}
}

// filterEchoReply attaches a socket filter passing only the echo reply with
// id and seq (any sequence number when seq is negative).
func (s *icmpSocket) filterEchoReply(id, seq int) error {
	var filter []bpf.Instruction
	if s.p4 != nil {
		filter = echoReplyFilter(true, byte(ipv4.ICMPTypeEchoReply), id, seq)
	} else {
		filter = echoReplyFilter(false, byte(ipv6.ICMPTypeEchoReply), id, seq)
	}
	prog, err := bpf.Assemble(filter)
	if err != nil {
		return err
	}
	if s.p4 != nil {
		return s.p4.SetBPF(prog)
	}
	return s.p6.SetBPF(prog)
}

// echoReplyFilter is a classic BPF program accepting ICMP echo replies of
// type typ with id and seq (any seq when negative). A raw IPv4 socket's
// filter sees the IP header first; a raw IPv6 socket's sees the ICMPv6
// message.
func echoReplyFilter(ipv4Header bool, typ byte, id, seq int) []bpf.Instruction {
	prog := []bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegX, Val: 0}}
	if ipv4Header {
		prog[0] = bpf.LoadMemShift{Off: 0} // X = IPv4 header length
	}
	type check struct {
		off, size int
		val       uint32
	}
	checks := []check{{0, 1, uint32(typ)}, {4, 2, uint32(id)}}
	if seq >= 0 {
		checks = append(checks, check{6, 2, uint32(seq)})
	}
	for i, c := range checks {
		// On a mismatch, skip the remaining checks and the accept.
		skip := uint8(2*(len(checks)-1-i) + 1)
		prog = append(prog,
			bpf.LoadIndirect{Off: uint32(c.off), Size: c.size},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: c.val, SkipTrue: skip},
		)
	}
	return append(prog,
		bpf.RetConstant{Val: 1 << 18}, // the whole packet
		bpf.RetConstant{Val: 0},       // drop
	)
}

// read receives one ICMP message (without IP header) into b, with the TTL
// or hop limit it arrived with (-1 when unknown) and its sender.
func (s *icmpSocket) read(b []byte) (n, hopLimit int, from net.IP, err error) {
	var src net.Addr
	hopLimit = -1
	if s.p4 != nil {
		var cm *ipv4.ControlMessage
		n, cm, src, err = s.p4.ReadFrom(b)
		if cm != nil {
			hopLimit = cm.TTL
		}
	} else {
		var cm *ipv6.ControlMessage
		n, cm, src, err = s.p6.ReadFrom(b)
		if cm != nil {
			hopLimit = cm.HopLimit
		}
	}
	switch a := src.(type) {
	case *net.IPAddr:
		from = a.IP
	case *net.UDPAddr:
		from = a.IP
	}
	return n, hopLimit, from, err
}
