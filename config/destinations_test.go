package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLoadValidDestinations(t *testing.T) {
	c := mustLoad(t, "testdata/valid-destinations.yml")

	d := mustModule(t, c, "http_public").Destinations
	if d == nil {
		t.Fatal("http_public: destinations not decoded")
	}
	equal(t, "deny_private", d.DenyPrivate, true)
	var nets []netip.Prefix
	for _, n := range d.DeniedNetworks {
		nets = append(nets, n.Prefix)
	}
	equal(t, "denied_networks", nets, []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("198.51.100.7/32"), // a single address
	})
	equal(t, "denied_networks[2] as written", d.DeniedNetworks[2].String(), "198.51.100.7")
	equal(t, "allowed_networks", len(d.AllowedNetworks), 0)
	equal(t, "denied_hosts", len(d.DeniedHosts), 3)
	for _, h := range d.DeniedHosts {
		if !h.Valid() {
			t.Errorf("denied host pattern %q was not parsed", h)
		}
	}

	d = mustModule(t, c, "tcp_own").Destinations
	equal(t, "tcp_own deny_private", d.DenyPrivate, false)
	equal(t, "tcp_own allowed_networks[1]", d.AllowedNetworks[1].Prefix, netip.MustParsePrefix("2001:db8:1::/48"))
	// "*.Example.COM." is matched case-insensitively, without the final dot.
	for host, want := range map[string]bool{"www.example.com": true, "a.b.example.com": true, "example.com": false, "example.org": false} {
		equal(t, "allowed_hosts[0] matches "+host, d.AllowedHosts[0].Match(host), want)
	}
	equal(t, "allowed_hosts[0] as written", d.AllowedHosts[0].String(), "*.Example.COM.")

	if d := mustModule(t, c, "http_no_section").Destinations; d != nil {
		t.Errorf("a module without the section has destinations %+v, want nil", d)
	}
}

func TestNewNetwork(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":      "10.0.0.0/8",
		"169.254.169.254": "169.254.169.254/32",
		"::1":             "::1/128",
		"fd00::/8":        "fd00::/8",
		"0.0.0.0/0":       "0.0.0.0/0",
	} {
		n, err := NewNetwork(in)
		if err != nil {
			t.Errorf("NewNetwork(%q): %v", in, err)
			continue
		}
		equal(t, "NewNetwork("+in+")", n.Prefix.String(), want)
	}
	for _, in := range []string{"", "10.0.0.0/33", "10.0.0/8", "fe80::1%eth0", "example.com", "10.0.0.1/8", "::ffff:127.0.0.1"} {
		if _, err := NewNetwork(in); err == nil {
			t.Errorf("NewNetwork(%q) succeeded, want an error", in)
		}
	}
}

func TestHostPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, host string
		want          bool
	}{
		{"example.com", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com.", "example.com", true},
		{"example.com", "www.example.com", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", "www.example.com.evil.test", false},
		{"*", "localhost", true},
		{"*", "", false},
		{"localhost", "localhost", true},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", true},
		{"bücher.example", "xn--bcher-kva.example", true},
		{"_acme.example.com", "_acme.example.com", true},
	} {
		p, err := NewHostPattern(tc.pattern)
		if err != nil {
			t.Errorf("NewHostPattern(%q): %v", tc.pattern, err)
			continue
		}
		if got := p.Match(tc.host); got != tc.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tc.pattern, tc.host, got, tc.want)
		}
	}
	for _, in := range []string{"", ".", "*.", "**.example.com", "a*.example.com", "example.*", "a..b", "a b", "[::1]", "10.0.0.1", "*.10.0.0.1", strings.Repeat("a", 64) + ".com"} {
		if _, err := NewHostPattern(in); err == nil {
			t.Errorf("NewHostPattern(%q) succeeded, want an error", in)
		}
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"WWW.Example.com.": "www.example.com",
		"Bücher.example":   "xn--bcher-kva.example",
		"ＥＸＡＭＰＬＥ.com":      "example.com", // full-width letters fold to ASCII
	} {
		got, ok := NormalizeHost(in)
		if !ok || got != want {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "a..b", "a b", "a/b", "a%2eb"} {
		if got, ok := NormalizeHost(in); ok {
			t.Errorf("NormalizeHost(%q) = %q, want failure", in, got)
		}
	}
}

// TestDestinationsContradictions covers the contradictions of documents in
// flow style, beyond the one file per rule of TestLoadInvalid.
func TestDestinationsContradictions(t *testing.T) {
	const prefix = "modules: {m: {prober: tcp, destinations: "
	for doc, want := range map[string]string{
		`{deny_private: true, allowed_networks: ["fd12:3456::/32"]}}}`:            `modules.m.destinations.allowed_networks[0]: allowed network fd12:3456::/32 lies within fc00::/7 (unique local, ULA), which deny_private denies; deny wins, so it would allow nothing (list the networks to deny under denied_networks instead of deny_private)`,
		`{deny_private: true, allowed_networks: [127.0.0.1]}}}`:                   `modules.m.destinations.allowed_networks[0]: allowed network 127.0.0.1 lies within 127.0.0.0/8 (loopback), which deny_private denies; deny wins, so it would allow nothing (list the networks to deny under denied_networks instead of deny_private)`,
		`{allowed_networks: [10.0.0.0/8], denied_networks: [10.0.0.0/8]}}}`:       `modules.m.destinations.allowed_networks[0]: allowed network 10.0.0.0/8 lies within denied_networks[0] 10.0.0.0/8; deny wins, so it would allow nothing`,
		`{allowed_hosts: [a.example.com], denied_hosts: ["*"]}}}`:                 `modules.m.destinations.allowed_hosts[0]: allowed host pattern "a.example.com" is covered by denied_hosts[0] "*"; deny wins, so it would allow nothing`,
		`{allowed_hosts: ["*.a.example.com"], denied_hosts: ["*.example.com"]}}}`: `modules.m.destinations.allowed_hosts[0]: allowed host pattern "*.a.example.com" is covered by denied_hosts[0] "*.example.com"; deny wins, so it would allow nothing`,
		`{allowed_hosts: ["*.Example.com"], denied_hosts: ["*.example.com."]}}}`:  `modules.m.destinations.allowed_hosts[0]: allowed host pattern "*.Example.com" is covered by denied_hosts[0] "*.example.com."; deny wins, so it would allow nothing`,
		`{}}}`: `modules.m.destinations: no rule is set; set deny_private or list allowed or denied networks or hosts, or remove the section`,
	} {
		_, err := Parse([]byte(prefix+doc), "t.yml")
		if err == nil {
			t.Errorf("%s: loaded without error", doc)
			continue
		}
		if got := err.Error(); got != "t.yml:1: "+want {
			t.Errorf("%s:\n got: %s\nwant: t.yml:1: %s", doc, got, want)
		}
	}

	// Overlaps that still allow something are fine.
	for _, doc := range []string{
		`{deny_private: true, allowed_networks: [0.0.0.0/0, "::/0"]}}}`,
		`{allowed_networks: [10.0.0.0/8], denied_networks: [10.1.0.0/16]}}}`,
		`{allowed_hosts: [example.com], denied_hosts: ["*.example.com"]}}}`,
		`{allowed_hosts: ["*.example.com"], denied_hosts: [example.com, "*.corp.example.com"]}}}`,
		`{allowed_hosts: ["*"], denied_hosts: ["*.internal"]}}}`,
	} {
		if _, err := Parse([]byte(prefix+doc), "t.yml"); err != nil {
			t.Errorf("%s: %v", doc, err)
		}
	}
}

func TestMarshalKeepsDestinationsAsWritten(t *testing.T) {
	c := mustLoad(t, "testdata/valid-destinations.yml")
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"deny_private: true", "- 198.51.100.7", "- '*.Example.COM.'", "- 2001:db8::/32"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("marshalled config lacks %q:\n%s", s, out)
		}
	}
	again, err := Parse(out, "marshalled.yml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	d := again.Modules["tcp_own"].Destinations
	if d == nil || len(d.AllowedHosts) != 2 || !d.AllowedHosts[0].Match("www.example.com") {
		t.Errorf("after a round trip tcp_own destinations = %+v", d)
	}
	if again.Modules["http_no_section"].Destinations != nil {
		t.Error("a round trip added a destinations section")
	}
}
