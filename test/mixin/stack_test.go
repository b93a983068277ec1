package mixin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	yaml "go.yaml.in/yaml/v3"
	"golang.org/x/net/icmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/vantageprobe/vantage/internal/promtest"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// Timing of the stack: checks, scrapes and rule evaluations every second,
// so that every series exists within seconds.
const (
	checkInterval = time.Second
	// bulkInterval is the interval of the bulk targets: each is checked
	// once within it, which is all the series need.
	bulkInterval   = 5 * time.Second
	scrapeInterval = time.Second
	moduleTimeout  = 800 * time.Millisecond
)

// location is one exporter: its name and the source address its HTTP
// checks come from.
type location struct{ name, source string }

var locations = []location{{"ams", "127.0.0.2"}, {"fra", "127.0.0.3"}, {"sfo", "127.0.0.4"}}

const (
	// fraSource is the source address the targets fail for that fail in
	// one location only.
	fraSource = "127.0.0.3"
	// blindLocation has no module for the blind target, which fails for
	// fra: the coordinator cannot confirm it and holds it unknown.
	blindLocation = "sfo"
	// clusterLocation runs its exporter as a one-member cluster, as a
	// location of several exporters is deployed.
	clusterLocation = "ams"
	dnsName         = "vantage.test."
)

// targets are the servers the exporters check, all in the test process.
type targets struct {
	http, https string // base URLs of the HTTP and the HTTPS server
	tcp         string // host:port the tcp module connects to
	dns         string // host:port of the DNS server (UDP)
	grpc        string // host:port of the gRPC health server
	icmp        string // the host pinged; empty when this process may not ping
	flaps       atomic.Int64
	outage      atomic.Bool // the down target fails
}

// URLs of the scenario.
func (tg *targets) down() string       { return tg.https + "/down" } // fails everywhere: confirmed down
func (tg *targets) oneLoc() string     { return tg.http + "/one-location" }
func (tg *targets) blind() string      { return tg.http + "/blind" }
func (tg *targets) flapping() string   { return tg.http + "/flap" }
func (tg *targets) maintained() string { return tg.http + "/maintained" }
func (tg *targets) bulk(i int) string  { return fmt.Sprintf("%s/bulk/%d", tg.http, i) }

func startTargets(t *testing.T) *targets {
	t.Helper()
	tg := &targets{}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter) { http.Error(w, "failing on purpose", http.StatusServiceUnavailable) }
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		if tg.outage.Load() {
			fail(w)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	fromFra := func(r *http.Request) bool { return strings.HasPrefix(r.RemoteAddr, fraSource+":") }
	for _, p := range []string{"/one-location", "/blind"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			if fromFra(r) {
				fail(w)
				return
			}
			fmt.Fprintln(w, "ok")
		})
	}
	// Fails every other check from fra: the locations' verdict changes
	// at every check, which is flapping.
	mux.HandleFunc("/flap", func(w http.ResponseWriter, r *http.Request) {
		if fromFra(r) && tg.flaps.Add(1)%2 == 0 {
			fail(w)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	plain := httptest.NewServer(mux)
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(mux)
	t.Cleanup(secure.Close)
	tg.http, tg.https = plain.URL, secure.URL
	tg.tcp = plain.Listener.Addr().String()
	tg.dns = startDNS(t)
	tg.grpc = startGRPC(t)
	if err := canPing(); err != nil {
		t.Logf("no ICMP target: this process may not open an ICMP socket (%v); the ICMP phase panel is not checked", err)
	} else {
		tg.icmp = "127.0.0.1"
	}
	return tg
}

// canPing reports whether an ICMP echo socket can be opened, raw (root)
// or unprivileged (net.ipv4.ping_group_range), as the exporter does.
func canPing() error {
	c, err := icmp.ListenPacket("ip4:icmp", "127.0.0.1")
	if err != nil {
		var err2 error
		if c, err2 = icmp.ListenPacket("udp4", "127.0.0.1"); err2 != nil {
			return errors.Join(err, err2)
		}
	}
	return c.Close()
}

// startDNS serves A records for dnsName over UDP.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The socket is bound: queries wait in it until the server reads.
	srv := &dns.Server{PacketConn: pc,
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			if len(q.Question) == 1 && q.Question[0].Name == dnsName && q.Question[0].Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: dnsName, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
			} else {
				m.Rcode = dns.RcodeNameError
			}
			_ = w.WriteMsg(m)
		})}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ActivateAndServe() })
	t.Cleanup(func() {
		_ = srv.Shutdown()
		_ = pc.Close() // ends the server even if it had not started reading
		wg.Wait()
	})
	return pc.LocalAddr().String()
}

// startGRPC serves the gRPC health service, SERVING.
func startGRPC(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer()) // "" is SERVING
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(l) })
	t.Cleanup(func() {
		srv.Stop()
		wg.Wait()
	})
	return l.Addr().String()
}

// exporterConfig is one location's configuration: bulk HTTP targets (the
// scale), the scenario's HTTP(S) targets and a target of every other
// prober.
func exporterConfig(l location, tg *targets, bulk int) string {
	var b strings.Builder
	httpModule := fmt.Sprintf(`    prober: http
    timeout: %s
    http:
      preferred_ip_protocol: ip4
      source_ip_address: %s
      tls_config: {insecure_skip_verify: true}
`, moduleTimeout, l.source)
	fmt.Fprintf(&b, "modules:\n  http_2xx:\n%s", httpModule)
	// The bulk targets' checks may take their whole interval: a check
	// slowed by a busy machine is not a failure the scenario needs.
	fmt.Fprintf(&b, "  http_bulk:\n%s", strings.Replace(httpModule, moduleTimeout.String(), (bulkInterval-time.Second).String(), 1))
	if l.name != blindLocation {
		fmt.Fprintf(&b, "  http_blind:\n%s", httpModule)
	}
	fmt.Fprintf(&b, `  tcp_connect:
    prober: tcp
    timeout: %[1]s
    tcp: {preferred_ip_protocol: ip4}
  dns_a:
    prober: dns
    timeout: %[1]s
    dns: {preferred_ip_protocol: ip4, transport_protocol: udp, query_name: %[2]s, query_type: A}
  icmp:
    prober: icmp
    timeout: %[1]s
    icmp: {preferred_ip_protocol: ip4}
  grpc_health:
    prober: grpc
    timeout: %[1]s
    grpc: {preferred_ip_protocol: ip4}
scheduler:
  max_in_flight: 500
  retries: 0
  interval: %[3]s
canary:
  module: http_2xx
  target: %[4]s/-/healthy
  interval: %[3]s
`, moduleTimeout, dnsName, checkInterval, tg.http)
	if l.name == clusterLocation {
		b.WriteString("cluster: {expected_members: 1}\n")
	}
	b.WriteString("targets:\n  - module: http_bulk\n    interval: " + bulkInterval.String() + "\n    targets:\n")
	for i := range bulk {
		fmt.Fprintf(&b, "      - %s\n", tg.bulk(i))
	}
	fmt.Fprintf(&b, `  - module: http_2xx
    targets: [%s, %s, %s]
    labels: {team: mixin}
  - module: http_2xx
    targets: [%s]
    labels: {team: mixin, failure_threshold: "3"}
  - {module: tcp_connect, targets: [%q]}
  - {module: dns_a, targets: [%q]}
  - {module: grpc_health, targets: [%q]}
`, tg.down(), tg.flapping(), tg.maintained(), tg.oneLoc(), tg.tcp, tg.dns, tg.grpc)
	if tg.icmp != "" {
		fmt.Fprintf(&b, "  - {module: icmp, targets: [%q]}\n", tg.icmp)
	}
	if l.name != blindLocation {
		fmt.Fprintf(&b, "  - module: http_blind\n    targets: [%s]\n    labels: {team: mixin}\n", tg.blind())
	}
	return b.String()
}

// checksPerLocation is how many probe_success series each location has
// once every target was checked.
func (tg *targets) checksPerLocation(l location, bulk int) int {
	n := bulk + 4 + 3 // scenario HTTP(S) targets, tcp, dns, grpc
	if tg.icmp != "" {
		n++
	}
	if l.name != blindLocation {
		n++
	}
	return n
}

// coordinatorConfig names the locations at the test's exporters, with
// short timers.
func coordinatorConfig(exporters map[string]string) string {
	var b strings.Builder
	b.WriteString("locations:\n")
	for _, l := range locations {
		fmt.Fprintf(&b, "  - {name: %s, url: %q}\n", l.name, exporters[l.name])
	}
	fmt.Fprintf(&b, `confirmation:
  min_failing_locations: 2
  verify_timeout: 2s
  recovery_successes: 2
  reverify_interval: %[1]s
  recovery_hold: 2s
health_check_interval: %[1]s
`, checkInterval)
	return b.String()
}

// Where README.md's scrape example says the programs listen.
const (
	readmeExporter    = "localhost:9715"
	readmeCoordinator = "localhost:9716"
)

// prometheusConfig is README.md's scrape example as it is written, with
// only the addresses rewritten to the test's programs (the one exporter
// address becomes one per location), the intervals shortened, and the
// rules of rules/ loaded.
func prometheusConfig(t *testing.T, root string, exporters []string, coordinator string) string {
	t.Helper()
	readme := promtest.ReadmeScrapeConfig(t, root)
	var doc map[string]any
	if err := yaml.Unmarshal(readme, &doc); err != nil {
		t.Fatalf("README.md's scrape example: %v", err)
	}
	jobs, _ := doc["scrape_configs"].([]any)
	found := map[string]bool{}
	for _, j := range jobs {
		job, _ := j.(map[string]any)
		statics, _ := job["static_configs"].([]any)
		for _, s := range statics {
			sc, _ := s.(map[string]any)
			list, _ := sc["targets"].([]any)
			var out []any
			for _, a := range list {
				switch a {
				case readmeExporter:
					for _, e := range exporters {
						out = append(out, e)
					}
				case readmeCoordinator:
					out = append(out, coordinator)
				default:
					t.Fatalf("README.md's scrape example scrapes %v; the test knows the exporter at %s and the coordinator at %s", a, readmeExporter, readmeCoordinator)
				}
				found[a.(string)] = true
			}
			sc["targets"] = out
		}
	}
	if !found[readmeExporter] || !found[readmeCoordinator] {
		t.Fatalf("README.md's scrape example does not scrape both %s and %s:\n%s", readmeExporter, readmeCoordinator, readme)
	}
	doc["global"] = map[string]any{"scrape_interval": scrapeInterval.String(), "evaluation_interval": scrapeInterval.String()}
	doc["rule_files"] = []any{filepath.Join(root, "rules", "*.yml")}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// stack is the programs on loopback.
type stack struct {
	root        string
	targets     *targets
	bulk        int
	prom        promtest.API
	procs       []*testbin.Process
	coordinator string    // base URL
	started     time.Time // when Prometheus started
}

// startStack starts the coordinator, one exporter per location with bulk
// bulk targets each, and Debian's Prometheus with README.md's scrape
// example and extra flags.
func startStack(t *testing.T, bulk int, promFlags ...string) *stack {
	t.Helper()
	if _, err := os.Stat(prometheusBinary); err != nil {
		t.Fatalf("%s is missing (%v): this test runs Debian's Prometheus; install the Debian package prometheus (make deps)", prometheusBinary, err)
	}
	s := &stack{root: testbin.ModuleRoot(t), bulk: bulk}
	built := time.Now()
	bins := testbin.Build(t, "./cmd/vantage-exporter", "./cmd/vantage-coordinator")
	t.Logf("vantage-exporter and vantage-coordinator built in %s", time.Since(built).Round(100*time.Millisecond))
	dir := t.TempDir()
	s.targets = startTargets(t)

	exporters := map[string]string{}
	var scraped []string
	for _, l := range locations {
		addr := testbin.FreeAddr(t)
		exporters[l.name] = "http://" + addr
		scraped = append(scraped, addr)
	}
	coordAddr, promAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	s.coordinator = "http://" + coordAddr
	s.prom = promtest.API{Base: "http://" + promAddr, Client: &http.Client{Timeout: 20 * time.Second}}

	path := filepath.Join(dir, "coordinator.yml")
	testbin.WriteFile(t, path, coordinatorConfig(exporters))
	s.start(t, "vantage-coordinator", s.coordinator+"/-/ready", bins[1],
		"--config.file="+path, "--storage.path="+filepath.Join(dir, "coordinator-data"), "--web.listen-address="+coordAddr)
	for _, l := range locations {
		path := filepath.Join(dir, "exporter-"+l.name+".yml")
		testbin.WriteFile(t, path, exporterConfig(l, s.targets, bulk))
		args := []string{"--config.file=" + path, "--location=" + l.name,
			"--web.listen-address=" + strings.TrimPrefix(exporters[l.name], "http://"), "--coordinator.url=" + s.coordinator}
		if l.name == clusterLocation {
			args = append(args, "--cluster.listen-address="+testbin.FreeAddr(t))
		}
		s.start(t, "vantage-exporter "+l.name, exporters[l.name]+"/-/ready", bins[0], args...)
	}
	path = filepath.Join(dir, "prometheus.yml")
	testbin.WriteFile(t, path, prometheusConfig(t, s.root, scraped, coordAddr))
	s.started = time.Now()
	s.start(t, "prometheus", s.prom.Base+"/-/ready", prometheusBinary, append([]string{
		"--config.file=" + path, "--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"), "--web.listen-address=" + promAddr,
	}, promFlags...)...)
	return s
}

const prometheusBinary = "/usr/bin/prometheus"

func (s *stack) start(t *testing.T, name, readyURL, bin string, args ...string) {
	t.Helper()
	s.procs = append(s.procs, testbin.StartReady(t, name, exec.Command(bin, args...), readyURL))
}

// waitFor waits for cond with testbin.WaitFor, failing at once with a
// program's output when one has exited.
func (s *stack) waitFor(t *testing.T, what string, limit time.Duration, cond func() error) {
	t.Helper()
	testbin.WaitFor(t, what, limit, func() error {
		for _, p := range s.procs {
			if p.Exited() {
				t.Fatalf("%s exited (%v); its output:\n%s", p.Name, p.Err(), p.Out.Tail(testbin.LogTail))
			}
		}
		return cond()
	})
}

// post sends a JSON or form request to the coordinator's API and wants
// 201 Created.
func (s *stack) post(t *testing.T, path string, body any) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	var resp *http.Response
	var err error
	switch b := body.(type) {
	case url.Values:
		resp, err = client.PostForm(s.coordinator+path, b)
	default:
		data, jerr := json.Marshal(b)
		if jerr != nil {
			t.Fatal(jerr)
		}
		resp, err = client.Post(s.coordinator+path, "application/json", bytes.NewReader(data))
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %s, want 201 Created", path, resp.Status)
	}
}

// startScenario starts the outage of the down target, opens a
// maintenance window for the maintained target and sends heartbeats of
// every severity that stop at once (raised in 2s).
func (s *stack) startScenario(t *testing.T) {
	t.Helper()
	s.targets.outage.Store(true)
	s.post(t, "/api/v1/maintenances", map[string]any{"matchers": []string{fmt.Sprintf("target=%q", s.targets.maintained())}, "duration": "1h", "comment": "mixin test"})
	for id, labels := range map[string][]string{
		"ticket-heartbeat": {"team=mixin"},
		"page-heartbeat":   {"team=mixin", "severity=critical"},
		"info-heartbeat":   {"team=mixin", "severity=info"},
	} {
		s.post(t, "/api/v1/events", url.Values{"id": {id}, "raise": {"+2s"}, "label": labels})
	}
}

// waitScraped waits until Prometheus scrapes every target up.
func (s *stack) waitScraped(t *testing.T) {
	t.Helper()
	s.waitFor(t, "every scrape target up", 20*time.Second, func() error {
		ts, err := s.prom.Targets()
		if err != nil {
			return err
		}
		for _, at := range ts {
			if at.Health != "up" {
				return fmt.Errorf("scrape of %s (job %s): %s %s", at.ScrapeURL, at.Labels["job"], at.Health, at.LastError)
			}
		}
		if len(ts) != len(locations)+1 {
			return fmt.Errorf("%d scrape targets, want %d exporters and a coordinator", len(ts), len(locations))
		}
		return nil
	})
}

// waitChecked waits until Prometheus holds a probe_success series of every
// check of every location, and the coordinator has confirmed the down
// target and holds the blind one unknown.
func (s *stack) waitChecked(t *testing.T) {
	t.Helper()
	want := 0
	for _, l := range locations {
		want += s.targets.checksPerLocation(l, s.bulk)
	}
	s.waitFor(t, "every check's series in Prometheus, the down target confirmed, the blind one unknown", 45*time.Second, func() error {
		checks, _, err := s.prom.Value(`count(probe_success{job="vantage-exporter"})`)
		if err != nil {
			return err
		}
		down, _, err := s.prom.Value(fmt.Sprintf(`max(vantage_target_confirmed_down{target=%q})`, s.targets.down()))
		if err != nil {
			return err
		}
		unknown, _, err := s.prom.Value(fmt.Sprintf(`max(vantage_target_state{target=%q, state="unknown"})`, s.targets.blind()))
		if err != nil {
			return err
		}
		if int(checks) != want || down != 1 || unknown != 1 {
			return fmt.Errorf("%g of %d checks' probe_success, down target confirmed %g, blind target unknown %g", checks, want, down, unknown)
		}
		return nil
	})
}
