package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/miekg/dns"
	"google.golang.org/grpc/health"

	"github.com/vantageprobe/vantage/config"
)

// guardModule loads one module from YAML (its keys at the first level of
// indentation) through the config loader, validation included.
func guardModule(tb testing.TB, module string) config.Module {
	tb.Helper()
	doc := "modules:\n  m:\n    " + strings.ReplaceAll(strings.TrimSpace(module), "\n", "\n    ") + "\n"
	c, err := config.Parse([]byte(doc), "guard_test.yml")
	if err != nil {
		tb.Fatalf("%v\n%s", err, doc)
	}
	return c.Modules["m"]
}

func mustGuard(tb testing.TB, module string) *destinationGuard {
	tb.Helper()
	g, err := newDestinationGuard(guardModule(tb, module).Destinations)
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// requireDenied checks that r failed with destination_denied and that its
// message names each of parts (the host or address and the rule).
func requireDestinationDenied(tb testing.TB, r *result.Result, parts ...string) {
	tb.Helper()
	requireReason(tb, r, result.ReasonDestinationDenied)
	for _, p := range parts {
		if !strings.Contains(r.Error, p) {
			tb.Errorf("error %q does not name %q", r.Error, p)
		}
	}
}

// guardDNS is an in-process DNS server the probers' resolver uses for the
// test. answer gives the A records of the nth (from 1) A query for a name
// (lower-case, without the final dot); none is NXDOMAIN.
type guardDNS struct {
	mu      sync.Mutex
	queries map[string]int // A and AAAA queries, by name
	aCount  map[string]int
}

func useGuardDNS(tb testing.TB, answer func(name string, n int) []string) *guardDNS {
	tb.Helper()
	g := &guardDNS{queries: map[string]int{}, aCount: map[string]int{}}
	useTestResolver(tb, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		g.mu.Lock()
		g.queries[name]++
		n := g.aCount[name]
		if q.Qtype == dns.TypeA {
			n++
			g.aCount[name] = n
		}
		g.mu.Unlock()
		ips := answer(name, max(n, 1))
		switch {
		case len(ips) == 0:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeA:
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
					A:   net.ParseIP(ip),
				})
			}
		}
		_ = w.WriteMsg(m)
	})
	return g
}

// asked returns how many queries (A or AAAA) name got.
func (g *guardDNS) asked(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.queries[name]
}

// aQueries returns how many A queries name got.
func (g *guardDNS) aQueries(name string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.aCount[name]
}

// newGuardHTTPServer starts an http server on ip (127.0.0.x) counting the
// requests it serves.
func newGuardHTTPServer(tb testing.TB, ip string, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	tb.Helper()
	var n atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	ln, err := net.Listen("tcp4", ip+":0")
	if err != nil {
		tb.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv, &n
}

func guardRedirect(location string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, location, http.StatusFound) }
}

func guardOK(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }

func TestGuardAddresses(t *testing.T) {
	private := mustGuard(t, `
prober: tcp
destinations:
  deny_private: true`)
	for addr, want := range map[string]string{
		"127.0.0.1":          "127.0.0.0/8 (loopback), which destinations.deny_private denies",
		"10.1.2.3":           "10.0.0.0/8 (private-use, RFC 1918)",
		"172.31.255.255":     "172.16.0.0/12 (private-use, RFC 1918)",
		"192.168.0.1":        "192.168.0.0/16 (private-use, RFC 1918)",
		"100.100.100.200":    "100.64.0.0/10 (shared address space, CGNAT)",
		"169.254.169.254":    "169.254.0.0/16 (link-local, cloud metadata)",
		"0.0.0.0":            `0.0.0.0/8 ("this network", unspecified)`,
		"224.0.0.251":        "224.0.0.0/4 (multicast)",
		"255.255.255.255":    "240.0.0.0/4 (reserved, broadcast)",
		"::":                 "::/128 (unspecified)",
		"::1":                "::1/128 (loopback)",
		"fd00:ec2::254":      "fc00::/7 (unique local, ULA)",
		"fe80::1%eth0":       "fe80::/10 (link-local)",
		"ff02::1":            "ff00::/8 (multicast)",
		"::ffff:10.0.0.1":    "address 10.0.0.1 is in 10.0.0.0/8",
		"64:ff9b::a9fe:a9fe": "address 64:ff9b::a9fe:a9fe (NAT64 of 169.254.169.254) is in 169.254.0.0/16",
	} {
		err := private.checkAddr(netip.MustParseAddr(addr))
		if !isDestinationDenied(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("deny_private: %s: %v, want an error naming %q", addr, err, want)
		}
	}
	for _, addr := range []string{"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2001:4860:4860::8888", "64:ff9b::808:808"} {
		if err := private.checkAddr(netip.MustParseAddr(addr)); err != nil {
			t.Errorf("deny_private: %s: %v, want allowed", addr, err)
		}
	}

	// Deny wins; an allow list admits only what it lists.
	g := mustGuard(t, `
prober: tcp
destinations:
  allowed_networks: [127.0.0.0/8, "::1"]
  denied_networks: [127.0.0.2/32]`)
	for addr, want := range map[string]string{
		"127.0.0.1":        "",
		"127.255.0.1":      "",
		"::1":              "",
		"::ffff:127.0.0.1": "",
		"127.0.0.2":        "destination denied: address 127.0.0.2 is in destinations.denied_networks 127.0.0.2/32",
		"10.0.0.1":         "destination denied: address 10.0.0.1 is in no destinations.allowed_networks network",
		"::2":              "destination denied: address ::2 is in no destinations.allowed_networks network",
	} {
		err := g.checkAddr(netip.MustParseAddr(addr))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want allowed", addr, err)
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("%s: %v, want %s", addr, err, want)
		}
	}
}

func TestGuardHosts(t *testing.T) {
	g := mustGuard(t, `
prober: http
destinations:
  allowed_hosts: ["*.example.com", example.org]
  denied_hosts: [admin.example.com, "*.corp.example.com"]`)
	for host, want := range map[string]string{
		"www.example.com":      "",
		"WWW.Example.COM.":     "",
		"example.org":          "",
		"ｗｗｗ.example.com":      "", // full-width letters are the same name
		"admin.example.com":    `destination denied: host "admin.example.com" matches destinations.denied_hosts "admin.example.com"`,
		"ADMIN.example.com.":   `destination denied: host "ADMIN.example.com." matches destinations.denied_hosts "admin.example.com"`,
		"db.corp.example.com":  `destination denied: host "db.corp.example.com" matches destinations.denied_hosts "*.corp.example.com"`,
		"example.com":          `destination denied: host "example.com" matches no destinations.allowed_hosts pattern`,
		"www.example.com.evil": `destination denied: host "www.example.com.evil" matches no destinations.allowed_hosts pattern`,
		"127.0.0.1":            `destination denied: host "127.0.0.1" is an IP address, and destinations.allowed_hosts admits host names only`,
		"::1":                  `destination denied: host "::1" is an IP address, and destinations.allowed_hosts admits host names only`,
		"bad host":             `destination denied: host "bad host" is not a host name the destinations.*_hosts patterns can be checked against`,
	} {
		err := g.checkHost(host)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v, want allowed", host, err)
		case want != "" && (err == nil || err.Error() != want):
			t.Errorf("%s: %v\nwant %s", host, err, want)
		}
	}

	// Without allowed_hosts, an IP address is left to the networks, which
	// checkTarget applies to it.
	g = mustGuard(t, `
prober: http
destinations:
  denied_hosts: [localhost]
  denied_networks: [169.254.169.254]`)
	if err := g.checkHost("169.254.169.254"); err != nil {
		t.Errorf("checkHost of an address without allowed_hosts: %v", err)
	}
	if err := g.checkTarget("169.254.169.254"); !isDestinationDenied(err) {
		t.Errorf("checkTarget(169.254.169.254) = %v, want denied by denied_networks", err)
	}
	if err := g.checkTarget("localhost"); !isDestinationDenied(err) {
		t.Errorf("checkTarget(localhost) = %v, want denied by denied_hosts", err)
	}
	if err := g.checkTarget("example.com"); err != nil {
		t.Errorf("checkTarget(example.com) = %v, want allowed", err)
	}
}

// Without the section there is no guard, and nothing of it runs.
func TestGuardAbsent(t *testing.T) {
	g, err := newDestinationGuard(nil)
	if g != nil || err != nil {
		t.Fatalf("newDestinationGuard(nil) = %v, %v; want nil, nil", g, err)
	}
	for _, check := range []error{g.checkHost("localhost"), g.checkTarget("127.0.0.1"), g.checkIP(net.IPv4(169, 254, 169, 254))} {
		if check != nil {
			t.Errorf("nil guard denied: %v", check)
		}
	}
	if d := dialer("127.0.0.1", nil); d.Control != nil || d.ControlContext != nil {
		t.Error("the dialer of a module without destinations has a Control hook")
	}
	c, err := newHTTPClient(httpTestModule(nil).HTTP, nil)
	if err != nil || c.guard != nil {
		t.Errorf("newHTTPClient without destinations: guard %v, %v", c.guard, err)
	}
	// Code-built destinations that never went through validation are
	// refused rather than half applied.
	if _, err := newDestinationGuard(&config.Destinations{DeniedNetworks: []config.Network{{}}}); err == nil {
		t.Error("an unparsed network was accepted")
	}
}

func TestReasonDestinationDeniedInVocabulary(t *testing.T) {
	if !slices.Contains(result.Reasons, result.ReasonDestinationDenied) || result.ReasonDestinationDenied != "destination_denied" {
		t.Errorf("result.Reasons lacks destination_denied: %v", result.Reasons)
	}
	err := &net.OpError{Op: "dial", Net: "tcp", Err: denied("address 10.0.0.1 is in x")}
	if got := connectReason(context.Background(), err); got != result.ReasonDestinationDenied {
		t.Errorf("connectReason of a denied dial = %q", got)
	}
}

// The dialer's Control sees the address each connection goes to: a denied
// one is never connected to, over TCP or UDP.
func TestGuardDialerControl(t *testing.T) {
	requireSecondLoopback(t)
	g := mustGuard(t, `
prober: tcp
destinations:
  denied_networks: [127.0.0.2]`)
	ln, err := net.Listen("tcp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	d := dialer("", g)
	if c, err := d.DialContext(ctx, "tcp4", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("dialled a denied address")
	} else if !isDestinationDenied(err) || !strings.Contains(err.Error(), "address 127.0.0.2 is in destinations.denied_networks 127.0.0.2") {
		t.Errorf("dial error = %v", err)
	}
	if c, err := d.DialContext(ctx, "udp4", "127.0.0.2:53"); err == nil {
		c.Close()
		t.Error("a UDP socket was connected to a denied address")
	} else if !isDestinationDenied(err) {
		t.Errorf("udp dial error = %v", err)
	}
	// An allowed address connects through the same dialer.
	ok, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	c, err := d.DialContext(ctx, "tcp4", ok.Addr().String())
	if err != nil {
		t.Fatalf("dialling an allowed address: %v", err)
	}
	c.Close()
	if n := accepted.Load(); n != 0 {
		t.Errorf("the denied listener accepted %d connections", n)
	}
}

func TestHTTPDestinationAllowedAndDenied(t *testing.T) {
	srv, hits := newGuardHTTPServer(t, "127.0.0.1", guardOK)
	for _, tc := range []struct {
		name, destinations string
		parts              []string // of the error; none: the probe succeeds
	}{
		{"allowed network", "allowed_networks: [127.0.0.1/32]", nil},
		{"denied network", "denied_networks: [127.0.0.0/8]", []string{"address 127.0.0.1", "destinations.denied_networks 127.0.0.0/8"}},
		{"not in the allowed networks", "allowed_networks: [192.0.2.0/24]", []string{"address 127.0.0.1", "no destinations.allowed_networks"}},
		{"deny wins", "allowed_networks: [127.0.0.0/8]\n  denied_networks: [127.0.0.1/32]", []string{"address 127.0.0.1", "denied_networks 127.0.0.1/32"}},
		{"deny_private", "deny_private: true", []string{"address 127.0.0.1", "127.0.0.0/8 (loopback), which destinations.deny_private denies"}},
		{"names only", `allowed_hosts: ["*"]`, []string{`host "127.0.0.1" is an IP address`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			m := guardModule(t, "prober: http\nhttp: {preferred_ip_protocol: ip4}\ndestinations:\n  "+tc.destinations)
			r := httpTestProbe(t, m, srv.URL, Params{}, 2*time.Second)
			if tc.parts == nil {
				requireReason(t, r, result.ReasonNone)
				return
			}
			requireDestinationDenied(t, r, tc.parts...)
			if n := hits.Load() - before; n != 0 {
				t.Errorf("the server got %d requests from a denied probe", n)
			}
			compareResultSeries(t, r, `
# HELP probe_failure_info Why the probe failed, from a fixed vocabulary of reasons
# TYPE probe_failure_info gauge
probe_failure_info{reason="destination_denied"} 1
# HELP probe_success Displays whether or not the probe was a success
# TYPE probe_success gauge
probe_success 0
`, "probe_failure_info", "probe_success")
		})
	}
}

// A name is checked against the host patterns before it is resolved: a
// denied name is never looked up.
func TestHTTPDestinationHostCheckedBeforeResolving(t *testing.T) {
	srv, hits := newGuardHTTPServer(t, "127.0.0.1", guardOK)
	names := useGuardDNS(t, func(string, int) []string { return []string{"127.0.0.1"} })
	port := serverPort(t, srv)
	m := guardModule(t, `
prober: http
http: {preferred_ip_protocol: ip4}
destinations:
  allowed_hosts: ["*.vantage.test"]
  denied_hosts: [admin.vantage.test]`)

	r := httpTestProbe(t, m, "http://web.vantage.test:"+port+"/", Params{}, 2*time.Second)
	requireReason(t, r, result.ReasonNone)

	for target, parts := range map[string][]string{
		"http://Admin.Vantage.Test:" + port + "/": {`host "Admin.Vantage.Test"`, `destinations.denied_hosts "admin.vantage.test"`},
		"http://other.test:" + port + "/":         {`host "other.test"`, "no destinations.allowed_hosts pattern"},
	} {
		r := httpTestProbe(t, m, target, Params{}, 2*time.Second)
		requireDestinationDenied(t, r, parts...)
	}
	if n := names.asked("admin.vantage.test") + names.asked("other.test"); n != 0 {
		t.Errorf("denied names were looked up %d times", n)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the server got %d requests, want 1 (the allowed probe's)", n)
	}
}

// A redirect from an allowed host to a denied one fails the probe before
// anything is sent to the denied host, whether the redirect names an
// address or a host name.
func TestHTTPDestinationRedirects(t *testing.T) {
	requireSecondLoopback(t)
	denied, deniedHits := newGuardHTTPServer(t, "127.0.0.2", guardOK)
	deniedPort := serverPort(t, denied)
	useGuardDNS(t, func(name string, _ int) []string {
		switch name {
		case "allowed.test":
			return []string{"127.0.0.1"}
		case "denied.test":
			return []string{"127.0.0.2"}
		}
		return nil
	})
	toAddress, _ := newGuardHTTPServer(t, "127.0.0.1", guardRedirect(denied.URL+"/private"))
	toName, _ := newGuardHTTPServer(t, "127.0.0.1", guardRedirect("http://denied.test:"+deniedPort+"/private"))

	for _, tc := range []struct {
		name, destinations, target string
		parts                      []string
	}{
		{
			"to an address", "denied_networks: [127.0.0.2/32]", toAddress.URL,
			[]string{"redirect to " + denied.URL + "/private", "address 127.0.0.2 is in destinations.denied_networks 127.0.0.2/32"},
		},
		{
			"to a name", "denied_hosts: [denied.test]", "http://allowed.test:" + serverPort(t, toName) + "/",
			[]string{"redirect to http://denied.test:" + deniedPort + "/private", `host "denied.test" matches destinations.denied_hosts "denied.test"`},
		},
		{
			"to a name that resolves to a denied address", "denied_networks: [127.0.0.2/32]", "http://allowed.test:" + serverPort(t, toName) + "/",
			[]string{"127.0.0.2", "destinations.denied_networks 127.0.0.2/32"},
		},
		{
			"to an address, names only", `allowed_hosts: ["*.test"]`, "http://allowed.test:" + serverPort(t, toAddress) + "/",
			[]string{`host "127.0.0.2" is an IP address, and destinations.allowed_hosts admits host names only`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := guardModule(t, "prober: http\nhttp: {preferred_ip_protocol: ip4}\ndestinations:\n  "+tc.destinations)
			r := httpTestProbe(t, m, tc.target, Params{}, 2*time.Second)
			requireDestinationDenied(t, r, tc.parts...)
			if r.HTTP.Redirects != 1 {
				t.Errorf("redirects = %d, want 1", r.HTTP.Redirects)
			}
		})
	}
	if n := deniedHits.Load(); n != 0 {
		t.Errorf("the denied server got %d requests", n)
	}

	// Without the section the same redirects reach the other server.
	for _, target := range []string{toAddress.URL, "http://allowed.test:" + serverPort(t, toName) + "/"} {
		r := httpTestProbe(t, httpTestModule(nil), target, Params{}, 2*time.Second)
		requireReason(t, r, result.ReasonNone)
	}
	if n := deniedHits.Load(); n != 2 {
		t.Errorf("without destinations the other server got %d requests, want 2", n)
	}
}

// DNS rebinding: the name resolves to an allowed address when the probe
// checks and resolves the target, then to a denied one when the redirect's
// connection is made. The host patterns allow the name; the check at
// connect time, on the address actually dialled, catches it.
func TestHTTPDestinationDNSRebinding(t *testing.T) {
	requireSecondLoopback(t)
	inside, insideHits := newGuardHTTPServer(t, "127.0.0.2", guardOK)
	port2 := serverPort(t, inside)
	names := useGuardDNS(t, func(name string, n int) []string {
		if name != "rebind.test" {
			return nil
		}
		// Each probe asks twice: for the target, then for the redirect.
		if n%2 == 1 {
			return []string{"127.0.0.1"}
		}
		return []string{"127.0.0.2"}
	})
	entry, _ := newGuardHTTPServer(t, "127.0.0.1", guardRedirect("http://rebind.test:"+port2+"/secret"))
	target := "http://rebind.test:" + serverPort(t, entry) + "/"

	m := guardModule(t, `
prober: http
http: {preferred_ip_protocol: ip4}
destinations:
  allowed_hosts: [rebind.test]
  denied_networks: [127.0.0.2/32]`)
	r := httpTestProbe(t, m, target, Params{}, 3*time.Second)
	requireDestinationDenied(t, r, "dial tcp 127.0.0.2:"+port2, "address 127.0.0.2 is in destinations.denied_networks 127.0.0.2/32")
	if r.Resolve == nil || r.Resolve.IP != "127.0.0.1" {
		t.Errorf("the target resolved to %+v, want 127.0.0.1 (the allowed answer)", r.Resolve)
	}
	if n := names.aQueries("rebind.test"); n != 2 {
		t.Errorf("rebind.test was resolved %d times, want the target's and the redirect's", n)
	}
	if n := insideHits.Load(); n != 0 {
		t.Fatalf("the rebound address got %d requests", n)
	}

	// The same setup without the section does reach the rebound address:
	// the denial above is the guard's.
	r = httpTestProbe(t, httpTestModule(nil), target, Params{}, 3*time.Second)
	requireReason(t, r, result.ReasonNone)
	if n := insideHits.Load(); n != 1 {
		t.Errorf("without destinations the rebound address got %d requests, want 1", n)
	}
}

// Of the addresses a name resolves to, the probe uses the first one the
// rules allow.
func TestDestinationPicksAnAllowedAddress(t *testing.T) {
	requireSecondLoopback(t)
	srv, hits := newGuardHTTPServer(t, "127.0.0.1", guardOK)
	useGuardDNS(t, func(name string, _ int) []string { return []string{"127.0.0.2", "127.0.0.1"} })
	m := guardModule(t, `
prober: http
http: {preferred_ip_protocol: ip4, ip_protocol_fallback: false}
destinations:
  denied_networks: [127.0.0.2]`)
	r := httpTestProbe(t, m, "http://two.test:"+serverPort(t, srv)+"/", Params{}, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if r.Resolve.IP != "127.0.0.1" || hits.Load() != 1 {
		t.Errorf("probed %s (%d requests), want 127.0.0.1", r.Resolve.IP, hits.Load())
	}

	// When none is allowed, the message names the first.
	m = guardModule(t, `
prober: tcp
tcp: {preferred_ip_protocol: ip4}
destinations:
  denied_networks: [127.0.0.0/8]`)
	r = runTestProbe(t, m, "two.test:80", 2*time.Second)
	requireDestinationDenied(t, r, "resolving two.test: destination denied: address 127.0.0.2 is in destinations.denied_networks 127.0.0.0/8")
	if r.Resolve.IP != "127.0.0.2" {
		t.Errorf("resolve ip = %q, want the denied 127.0.0.2 recorded", r.Resolve.IP)
	}
}

// Through a proxy, vantage connects to the proxy only: the proxy is not
// checked, the target's host and every redirect's are.
func TestHTTPDestinationViaProxy(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	proxy := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		if r.URL.Host == "metadata-redirect.example" {
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
			return
		}
		fmt.Fprint(w, "via proxy")
	}))
	m := guardModule(t, `
prober: http
http:
  preferred_ip_protocol: ip4
  proxy_url: `+proxy.URL+`
  skip_resolve_phase_with_proxy: true
destinations:
  deny_private: true
  denied_hosts: ["*.internal"]`)

	r := httpTestProbe(t, m, "http://public.example/", Params{}, 2*time.Second)
	requireReason(t, r, result.ReasonNone)

	for target, parts := range map[string][]string{
		"http://db.internal/":               {`host "db.internal" matches destinations.denied_hosts "*.internal"`},
		"http://10.0.0.1/":                  {"address 10.0.0.1 is in 10.0.0.0/8 (private-use, RFC 1918)"},
		"http://metadata-redirect.example/": {"redirect to http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is in 169.254.0.0/16 (link-local, cloud metadata)"},
	} {
		r := httpTestProbe(t, m, target, Params{}, 2*time.Second)
		requireDestinationDenied(t, r, parts...)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"http://public.example/", "http://metadata-redirect.example/"}; !slices.Equal(seen, want) {
		t.Errorf("the proxy saw %q, want %q", seen, want)
	}
}

func TestTCPDestination(t *testing.T) {
	addr := newTCPTestServer(t, func(net.Conn) {})
	_, port, _ := net.SplitHostPort(addr)
	names := useGuardDNS(t, func(string, int) []string { return []string{"127.0.0.1"} })

	r := runTestProbe(t, guardModule(t, "prober: tcp\ndestinations:\n  allowed_networks: [127.0.0.1]"), addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)

	r = runTestProbe(t, guardModule(t, "prober: tcp\ndestinations:\n  denied_networks: [127.0.0.1]"), addr, 2*time.Second)
	requireDestinationDenied(t, r, "address 127.0.0.1 is in destinations.denied_networks 127.0.0.1")

	r = runTestProbe(t, guardModule(t, "prober: tcp\ndestinations:\n  denied_hosts: [\"*.test\"]"), "blocked.test:"+port, 2*time.Second)
	requireDestinationDenied(t, r, `host "blocked.test" matches destinations.denied_hosts "*.test"`)
	if n := names.asked("blocked.test"); n != 0 {
		t.Errorf("a denied name was looked up %d times", n)
	}
}

func TestDNSDestination(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			srv := newDNSTestServer(t, transport, nil, zoneHandler(t))
			module := "prober: dns\ndns: {query_name: example.com, preferred_ip_protocol: ip4, transport_protocol: " + transport + "}\ndestinations:\n  "

			r := runTestProbe(t, guardModule(t, module+"denied_networks: [127.0.0.0/8]"), srv.addr, 2*time.Second)
			requireDestinationDenied(t, r, "address 127.0.0.1 is in destinations.denied_networks 127.0.0.0/8")
			if q, _ := srv.lastQuery(); q != nil {
				t.Fatal("a denied probe sent its query")
			}

			r = runTestProbe(t, guardModule(t, module+"allowed_networks: [127.0.0.0/8]"), srv.addr, 2*time.Second)
			requireReason(t, r, result.ReasonNone)
		})
	}
}

// The icmp prober checks the address before it opens a socket, so a denied
// echo request is never sent.
func TestICMPDestination(t *testing.T) {
	for target, parts := range map[string][]string{
		"127.0.0.1": {"address 127.0.0.1 is in 127.0.0.0/8 (loopback), which destinations.deny_private denies"},
		"::1":       {"address ::1 is in ::1/128 (loopback)"},
	} {
		m := guardModule(t, "prober: icmp\ndestinations:\n  deny_private: true")
		r := runTestProbe(t, m, target, 2*time.Second)
		requireDestinationDenied(t, r, parts...)
		if r.ICMP.Socket != "" {
			t.Errorf("%s: a %s socket was opened for a denied target", target, r.ICMP.Socket)
		}
	}
}

func TestGRPCDestination(t *testing.T) {
	srv := newGRPCTestServer(t, nil, withHealth(health.NewServer()))
	m := guardModule(t, "prober: grpc\ngrpc: {preferred_ip_protocol: ip4}\ndestinations:\n  denied_networks: [127.0.0.0/8]")
	r := runTestProbe(t, m, srv.addr, 2*time.Second)
	requireDestinationDenied(t, r, "address 127.0.0.1 is in destinations.denied_networks 127.0.0.0/8")
	if n := srv.accepted.Load(); n != 0 {
		t.Errorf("the server accepted %d connections from a denied probe", n)
	}

	m = guardModule(t, "prober: grpc\ngrpc: {preferred_ip_protocol: ip4}\ndestinations:\n  allowed_networks: [127.0.0.1]")
	r = runTestProbe(t, m, srv.addr, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
}
