package exporter

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// dnsNamespaceEnv marks the run of TestDNSSDSRV inside its namespaces.
const dnsNamespaceEnv = "VANTAGE_TEST_DNS_SD_NAMESPACE"

// TestDNSSDSRV runs dns_sd_configs against an in-process DNS server.
// Prometheus's DNS discovery has no server or port setting: it asks the
// servers of /etc/resolv.conf on port 53. So the test runs itself again
// in a user, mount and network namespace of its own, where a private
// /etc/resolv.conf names 127.0.0.1 and the server listens on
// 127.0.0.1:53 of that namespace's loopback. The machine's resolver and
// network are untouched.
func TestDNSSDSRV(t *testing.T) {
	if os.Getenv(dnsNamespaceEnv) == "1" {
		dnsSDInNamespace(t)
		return
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestDNSSDSRV$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), dnsNamespaceEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Skipf("cannot create user, mount and network namespaces here: %v", err)
	}
	if err != nil {
		t.Fatalf("the test in its namespaces failed: %v\n%s", err, out)
	}
	t.Logf("in its namespaces:\n%s", out)
}

// dnsSDInNamespace is TestDNSSDSRV inside its namespaces.
func dnsSDInNamespace(t *testing.T) {
	mustLoopbackUp(t)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	mustWriteFile(t, resolv, "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting a private /etc/resolv.conf: %v", err)
	}

	// Two web servers behind an SRV name, each with an A record.
	web1, web2 := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})), httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer web1.Close()
	defer web2.Close()
	port := func(s *httptest.Server) uint16 {
		p, _ := strconv.Atoi(s.URL[len("http://127.0.0.1:"):])
		return uint16(p)
	}
	srv := &srvZone{records: map[string]uint16{"web1.vantage.test.": port(web1), "web2.vantage.test.": port(web2)}}
	mustServeDNS(t, srv)

	ts := mustStart(t, `
modules:
  http_2xx:
    prober: http
    timeout: 1s
targets:
  - name: web
    module: http_2xx
    interval: 1s
    dns_sd_configs:
      - names: [_http._tcp.vantage.test]
        refresh_interval: 1s
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
        replacement: http://$1/
      - source_labels: [__meta_dns_srv_record_target]
        target_label: host
`, fastDiscovery)
	url1 := "http://web1.vantage.test:" + strconv.Itoa(int(port(web1))) + "/"
	url2 := "http://web2.vantage.test:" + strconv.Itoa(int(port(web2))) + "/"
	waitSeries(t, ts.url, "host", "the SRV records' targets", url1+" host=web1.vantage.test.", url2+" host=web2.vantage.test.")
	// The checks resolve the names through the same server, and succeed.
	if v := metricValue(t, ts.url, "probe_success", "target", url1); v != 1 {
		t.Errorf("probe_success of %s = %v, want 1", url1, v)
	}

	srv.remove("web2.vantage.test.")
	waitSeries(t, ts.url, "host", "the remaining SRV record's target", url1+" host=web1.vantage.test.")
	if v := metricValue(t, ts.url, "vantage_exporter_discovery_last_update_successful", "group", "web"); v != 1 {
		t.Errorf("vantage_exporter_discovery_last_update_successful = %v, want 1", v)
	}
}

// mustLoopbackUp brings up the loopback interface of a new network
// namespace.
func mustLoopbackUp(t *testing.T) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("bringing up lo: %v", err)
	}
}

// srvZone answers _http._tcp.vantage.test SRV with its records, and A
// queries for their targets with 127.0.0.1.
type srvZone struct {
	mu      sync.Mutex
	records map[string]uint16 // target name → port
}

func (z *srvZone) remove(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	delete(z.records, name)
}

func (z *srvZone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	q := req.Question[0]
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: 1}
	}
	switch {
	case q.Qtype == dns.TypeSRV && q.Name == "_http._tcp.vantage.test.":
		for name, port := range z.records {
			m.Answer = append(m.Answer, &dns.SRV{Hdr: hdr(dns.TypeSRV), Priority: 1, Weight: 1, Port: port, Target: name})
		}
	case q.Qtype == dns.TypeA && z.records[q.Name] != 0:
		m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: net.IPv4(127, 0, 0, 1)})
	case z.records[q.Name] != 0:
		// The name exists, without records of this type (AAAA).
	default:
		m.Rcode = dns.RcodeNameError
	}
	_ = w.WriteMsg(m)
}

// mustServeDNS serves z on 127.0.0.1:53, UDP and TCP, until the test ends.
func mustServeDNS(t *testing.T, z *srvZone) {
	t.Helper()
	for _, network := range []string{"udp", "tcp"} {
		started := make(chan struct{})
		s := &dns.Server{Addr: "127.0.0.1:53", Net: network, Handler: z, NotifyStartedFunc: func() { close(started) }}
		errc := make(chan error, 1)
		go func() { errc <- s.ListenAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatalf("serving DNS over %s on 127.0.0.1:53: %v", network, err)
		case <-time.After(5 * time.Second):
			t.Fatalf("the DNS server over %s did not start", network)
		}
		t.Cleanup(func() { _ = s.Shutdown() })
	}
}
