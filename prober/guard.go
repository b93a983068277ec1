package prober

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vantageprobe/vantage/config"
)

// destinationGuard enforces a module's destinations section: host patterns
// on the target's host before it is resolved and on every redirect's host,
// networks on the resolved address and, through net.Dialer.Control, on
// every address actually dialled, so neither a redirect nor DNS rebinding
// (a name that resolves to an allowed address for the check, then to
// another one for the connection) gets past it.
//
// A nil *destinationGuard, the guard of a module without the section,
// allows everything; its methods cost a nil check.
type destinationGuard struct {
	denied       []guardNetwork // denied_networks, then deny_private's
	allowed      []netip.Prefix // empty: any address not denied
	deniedHosts  []config.HostPattern
	allowedHosts []config.HostPattern // empty: any host not denied
}

// guardNetwork is a denied network with the rule it comes from, for messages.
type guardNetwork struct {
	prefix netip.Prefix
	rule   string
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach the
// IPv4 address in their last 32 bits, which is checked too.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// newDestinationGuard prepares d once per module; nil for no section.
func newDestinationGuard(d *config.Destinations) (*destinationGuard, error) {
	if d == nil {
		return nil, nil
	}
	g := &destinationGuard{}
	for i, n := range d.DeniedNetworks {
		if !n.Prefix.IsValid() {
			return nil, fmt.Errorf("destinations.denied_networks[%d]: %q was not parsed", i, n)
		}
		g.denied = append(g.denied, guardNetwork{n.Prefix, "destinations.denied_networks " + n.String()})
	}
	if d.DenyPrivate {
		for _, pn := range config.PrivateNetworks {
			g.denied = append(g.denied, guardNetwork{pn.Prefix, fmt.Sprintf("%s (%s), which destinations.deny_private denies", pn.Prefix, pn.Name)})
		}
	}
	for i, n := range d.AllowedNetworks {
		if !n.Prefix.IsValid() {
			return nil, fmt.Errorf("destinations.allowed_networks[%d]: %q was not parsed", i, n)
		}
		g.allowed = append(g.allowed, n.Prefix)
	}
	for _, pats := range [][]config.HostPattern{d.DeniedHosts, d.AllowedHosts} {
		for _, p := range pats {
			if !p.Valid() {
				return nil, fmt.Errorf("destinations: host pattern %q was not parsed", p)
			}
		}
	}
	g.deniedHosts, g.allowedHosts = d.DeniedHosts, d.AllowedHosts
	return g, nil
}

// destinationDeniedError says which destination a rule forbids.
type destinationDeniedError struct {
	msg string
}

func (e *destinationDeniedError) Error() string { return "destination denied: " + e.msg }

func denied(format string, args ...any) error {
	return &destinationDeniedError{msg: fmt.Sprintf(format, args...)}
}

// isDestinationDenied reports whether err, however wrapped, is a guard's.
func isDestinationDenied(err error) bool {
	var de *destinationDeniedError
	return errors.As(err, &de)
}

// checkHost checks a target's or redirect's host against the host patterns.
// An IP address has no name: it is denied when allowed_hosts is set, and
// otherwise left to checkAddr.
func (g *destinationGuard) checkHost(host string) error {
	if g == nil || len(g.deniedHosts)+len(g.allowedHosts) == 0 {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		if len(g.allowedHosts) > 0 {
			return denied("host %q is an IP address, and destinations.allowed_hosts admits host names only", host)
		}
		return nil
	}
	name, ok := config.NormalizeHost(host)
	if !ok {
		return denied("host %q is not a host name the destinations.*_hosts patterns can be checked against", host)
	}
	for _, p := range g.deniedHosts {
		if p.Match(name) {
			return denied("host %q matches destinations.denied_hosts %q", host, p)
		}
	}
	if len(g.allowedHosts) == 0 {
		return nil
	}
	for _, p := range g.allowedHosts {
		if p.Match(name) {
			return nil
		}
	}
	return denied("host %q matches no destinations.allowed_hosts pattern", host)
}

// checkTarget checks a host that is dialled without the guard's dialer (a
// redirect or target sent through a proxy): its patterns and, for an IP
// address, its networks.
func (g *destinationGuard) checkTarget(host string) error {
	if g == nil {
		return nil
	}
	if err := g.checkHost(host); err != nil {
		return err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return g.checkAddr(a)
	}
	return nil
}

// checkAddr checks an address against the networks. IPv4-mapped IPv6
// addresses are checked as IPv4, and an address of the NAT64 prefix also
// by the IPv4 address it embeds.
func (g *destinationGuard) checkAddr(a netip.Addr) error {
	if g == nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	for _, d := range g.denied {
		if d.prefix.Contains(a) {
			return denied("address %s is in %s", a, d.rule)
		}
	}
	if nat64.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte(b[12:]))
		for _, d := range g.denied {
			if d.prefix.Contains(v4) {
				return denied("address %s (NAT64 of %s) is in %s", a, v4, d.rule)
			}
		}
	}
	if len(g.allowed) == 0 {
		return nil
	}
	for _, p := range g.allowed {
		if p.Contains(a) {
			return nil
		}
	}
	return denied("address %s is in no destinations.allowed_networks network", a)
}

// checkIP is checkAddr for a net.IP.
func (g *destinationGuard) checkIP(ip net.IP) error {
	if g == nil {
		return nil
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return denied("address %q cannot be checked", ip)
	}
	return g.checkAddr(a)
}

// control is a net.Dialer.Control: it sees the address each connection
// attempt goes to, after any name resolution the dialer made.
func (g *destinationGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return denied("%s address %q cannot be checked", network, address)
	}
	return g.checkAddr(ap.Addr())
}
