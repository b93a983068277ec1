package gossip

import (
	"log"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// transport is memberlist's network transport whose streams leave from
// the address gossip binds to, as its packets do, so that the traffic of
// a member is all between its own address and its peers' (firewall rules
// and routing that name the member's address then cover all of it).
type transport struct {
	*memberlist.NetTransport
	src net.IP
}

func newTransport(host string, port int, logger *log.Logger) (*transport, error) {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{host},
		BindPort:  port,
		Logger:    logger,
	})
	if err != nil {
		return nil, err
	}
	t := &transport{NetTransport: nt}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		t.src = ip
	}
	return t, nil
}

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.src != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.src}
	}
	return d.Dial("tcp", a.Addr)
}
