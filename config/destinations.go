package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vantageprobe/vantage/internal/yamldoc"

	"golang.org/x/net/idna"
)

// Destinations restricts where a module's probes may go: a guard against
// server-side request forgery for exporters that take targets from
// untrusted clients. vantage only; without the section a module probes any
// target, as blackbox_exporter does.
//
// Every rule must pass, and deny wins: a host matching a denied pattern is
// denied even when it matches an allowed one, and likewise for addresses and
// networks. An allow list that is set admits only what it lists.
type Destinations struct {
	// DenyPrivate denies PrivateNetworks.
	DenyPrivate     bool          `yaml:"deny_private,omitempty"`
	AllowedNetworks []Network     `yaml:"allowed_networks,omitempty"`
	DeniedNetworks  []Network     `yaml:"denied_networks,omitempty"`
	AllowedHosts    []HostPattern `yaml:"allowed_hosts,omitempty"`
	DeniedHosts     []HostPattern `yaml:"denied_hosts,omitempty"`
}

// PrivateNetwork is one of the ranges deny_private denies.
type PrivateNetwork struct {
	Prefix netip.Prefix
	Name   string // what the range is, for messages
}

// PrivateNetworks are the ranges deny_private denies: every address that is
// not a public unicast Internet destination, cloud metadata endpoints
// (169.254.169.254, fd00:ec2::254, 100.100.100.200) included.
var PrivateNetworks = []PrivateNetwork{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network", unspecified`},
	{netip.MustParsePrefix("10.0.0.0/8"), "private-use, RFC 1918"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space, CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local, cloud metadata"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private-use, RFC 1918"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private-use, RFC 1918"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved, broadcast"},
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fc00::/7"), "unique local, ULA"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Network is an IP network in CIDR notation, or a single address, kept with
// its source text so the loaded config can be shown as written. It is
// parsed during validation.
type Network struct {
	Prefix   netip.Prefix
	original string
}

// NewNetwork parses s: "10.0.0.0/8", "fd00::/8", or one address such as
// "169.254.169.254" (a /32 or /128).
func NewNetwork(s string) (Network, error) {
	n := Network{original: s}
	return n, n.parse()
}

// String returns the network as written.
func (n Network) String() string { return n.original }

// UnmarshalYAML keeps the source text; validation parses it, so the error
// can name the field and line.
func (n *Network) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	*n = Network{original: s}
	return nil
}

// MarshalYAML shows the network as written.
func (n Network) MarshalYAML() (any, error) { return n.original, nil }

func (n *Network) parse() error {
	s := n.original
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("%q is not an IP network (write 10.0.0.0/8, fd00::/8, or a single address)", s)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return fmt.Errorf("%q is not an IP network (write 10.0.0.0/8, fd00::/8, or a single address)", s)
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		// Addresses are checked in their IPv4 form, so this would never match.
		v4 := netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0)).Masked()
		return fmt.Errorf("%q is an IPv4-mapped IPv6 network; addresses are checked in their IPv4 form, so write %s", s, v4)
	}
	if m := p.Masked(); m != p {
		return fmt.Errorf("%q has address bits set beyond its /%d prefix; write %s", s, p.Bits(), m)
	}
	n.Prefix = p
	return nil
}

// within reports whether every address of n is in outer.
func within(n, outer netip.Prefix) bool {
	return outer.Bits() <= n.Bits() && outer.Contains(n.Addr())
}

// HostPattern matches host names, case-insensitively: "example.com" that
// name only, "*.example.com" any name below example.com (a.example.com,
// a.b.example.com, but not example.com), "*" any name. It is kept with its
// source text and parsed during validation.
type HostPattern struct {
	original string
	name     string // normalized (NormalizeHost); "" for "*"
	wildcard bool
}

// NewHostPattern parses s.
func NewHostPattern(s string) (HostPattern, error) {
	p := HostPattern{original: s}
	return p, p.parse()
}

// String returns the pattern as written.
func (p HostPattern) String() string { return p.original }

// UnmarshalYAML keeps the source text; validation parses it.
func (p *HostPattern) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	*p = HostPattern{original: s}
	return nil
}

// MarshalYAML shows the pattern as written.
func (p HostPattern) MarshalYAML() (any, error) { return p.original, nil }

// Valid reports whether the pattern was parsed (by validation or
// NewHostPattern).
func (p HostPattern) Valid() bool { return p.name != "" || p.wildcard }

// Match reports whether the pattern matches host, a name in the form
// NormalizeHost returns.
func (p HostPattern) Match(host string) bool {
	switch {
	case host == "":
		return false
	case !p.wildcard:
		return host == p.name
	case p.name == "":
		return true
	}
	return len(host) > len(p.name) && strings.HasSuffix(host, p.name) && host[len(host)-len(p.name)-1] == '.'
}

// covers reports whether p matches every name q matches.
func (p HostPattern) covers(q HostPattern) bool {
	switch {
	case !p.wildcard:
		return !q.wildcard && q.name == p.name
	case p.name == "":
		return true
	case q.name == "":
		return false
	}
	return q.name == p.name && q.wildcard || p.Match(q.name)
}

func (p *HostPattern) parse() error {
	s := p.original
	rest := s
	switch {
	case s == "*":
		p.name, p.wildcard = "", true
		return nil
	case strings.HasPrefix(s, "*."):
		rest, p.wildcard = s[2:], true
	}
	if strings.Contains(rest, "*") {
		return fmt.Errorf(`host pattern %q: "*" may only be the whole first label, as in "*.example.com"`, s)
	}
	if _, err := netip.ParseAddr(strings.Trim(rest, "[]")); err == nil {
		return fmt.Errorf("host pattern %q is an IP address; list addresses under allowed_networks or denied_networks", s)
	}
	name, ok := NormalizeHost(rest)
	if !ok {
		return fmt.Errorf(`host pattern %q is not a host name (dot-separated labels of letters, digits, "-" and "_", optionally after "*.")`, s)
	}
	p.name = name
	return nil
}

// NormalizeHost returns host in the form host patterns match: lower-case
// ASCII (an internationalized name in its IDNA form), without a final dot.
// It reports false when host is not a syntactically valid host name.
func NormalizeHost(host string) (string, bool) {
	host = strings.TrimSuffix(host, ".")
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			a, err := idna.Lookup.ToASCII(host)
			if err != nil {
				return "", false
			}
			host = a
			break
		}
	}
	host = strings.ToLower(host)
	if host == "" || len(host) > 253 {
		return "", false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return "", false
			}
		}
	}
	return host, true
}

// errNoRule is the error of a destinations section that restricts nothing.
var errNoRule = errors.New("no rule is set; set deny_private or list allowed or denied networks or hosts, or remove the section")

func (d *Destinations) validate(path []any) error {
	if !d.DenyPrivate && len(d.AllowedNetworks)+len(d.DeniedNetworks)+len(d.AllowedHosts)+len(d.DeniedHosts) == 0 {
		return &yamldoc.FieldError{Path: path, Err: errNoRule}
	}
	for key, nets := range orderedPairs("allowed_networks", d.AllowedNetworks, "denied_networks", d.DeniedNetworks) {
		for i := range nets {
			if err := nets[i].parse(); err != nil {
				return &yamldoc.FieldError{Path: yamldoc.At(path, key, i), Err: err}
			}
		}
	}
	for key, pats := range orderedPairs("allowed_hosts", d.AllowedHosts, "denied_hosts", d.DeniedHosts) {
		for i := range pats {
			if err := pats[i].parse(); err != nil {
				return &yamldoc.FieldError{Path: yamldoc.At(path, key, i), Err: err}
			}
		}
	}
	return d.validateContradictions(path)
}

// validateContradictions rejects an allowed network or host pattern that a
// denied one covers entirely: deny wins, so it would allow nothing.
func (d *Destinations) validateContradictions(path []any) error {
	for i, a := range d.AllowedNetworks {
		for j, dn := range d.DeniedNetworks {
			if within(a.Prefix, dn.Prefix) {
				return yamldoc.Fail(yamldoc.At(path, "allowed_networks", i),
					"allowed network %s lies within denied_networks[%d] %s; deny wins, so it would allow nothing",
					a.original, j, dn.original)
			}
		}
		if !d.DenyPrivate {
			continue
		}
		for _, pn := range PrivateNetworks {
			if within(a.Prefix, pn.Prefix) {
				return yamldoc.Fail(yamldoc.At(path, "allowed_networks", i),
					"allowed network %s lies within %s (%s), which deny_private denies; deny wins, so it would allow nothing (list the networks to deny under denied_networks instead of deny_private)",
					a.original, pn.Prefix, pn.Name)
			}
		}
	}
	for i, a := range d.AllowedHosts {
		for j, dp := range d.DeniedHosts {
			if dp.covers(a) {
				return yamldoc.Fail(yamldoc.At(path, "allowed_hosts", i),
					"allowed host pattern %q is covered by denied_hosts[%d] %q; deny wins, so it would allow nothing",
					a.original, j, dp.original)
			}
		}
	}
	return nil
}
