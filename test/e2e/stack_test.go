package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/promtest"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/internal/tracing/otlptest"
)

// Timing of the stack. Everything is shortened so that the scenario takes
// seconds: checks, scrapes and rule evaluations every second.
const (
	checkInterval      = time.Second
	scrapeInterval     = time.Second
	evaluationInterval = time.Second
	// moduleTimeout leaves room for one retry within the check interval:
	// the scheduler retries only when the retry can end before the next
	// planned check (first attempt + retryInterval + moduleTimeout).
	moduleTimeout = 800 * time.Millisecond
	retryInterval = 50 * time.Millisecond
	verifyTimeout = 2 * time.Second
	// groupWait replaces Alertmanager's group_wait (1m for tickets, 10s
	// for pages in deploy/alertmanager.yml).
	groupWait = 5 * time.Second
	// slowDelay is how long the slow target takes to answer; slowThreshold
	// is the exporters' --tracing.slow-threshold, well below it.
	slowDelay     = 500 * time.Millisecond
	slowThreshold = 300 * time.Millisecond
	// batchDelay is the exporters' OTEL_BSP_SCHEDULE_DELAY in milliseconds:
	// kept spans are exported within it.
	batchDelay = "200"
)

// stack is the whole system on loopback.
type stack struct {
	root   string // the repository
	dir    string // the test's temporary directory
	procs  *procs
	target *targetServer
	urls   targetURLs
	otlp   *otlptest.Receiver
	hook   *webhook
	prom   promtest.API

	addrs        map[string]string // compose service address (as deploy/ names it) → the test's
	exporters    map[string]string // location → base URL
	coordinator  string            // base URL of the first coordinator
	coordinators []string          // base URLs of every coordinator, the first included
	gates        []*scrapeGate     // with stackOptions.gateScrapes: in front of each coordinator
	alertmanager string            // base URL
	started      time.Time         // when Prometheus started: the start of every range query
}

// stackOptions are what a test changes in the stack; the zero value is the
// stack docker-compose.yml runs.
type stackOptions struct {
	// coordinators is how many coordinators run (0: one). Every exporter
	// reports to each, and Prometheus scrapes them all as targets of the
	// one vantage-coordinator job, as an HA pair is deployed.
	coordinators int
	// gateScrapes puts a scrapeGate in front of each coordinator for
	// Prometheus' scrapes, so that the test can make them fail.
	gateScrapes bool
	// groupInterval, when set, replaces every group_interval of
	// deploy/alertmanager.yml.
	groupInterval time.Duration
}

// startStack starts every program of the stack and waits until each is
// ready. Everything is stopped and removed when the test ends.
func startStack(t *testing.T, opts stackOptions) *stack {
	t.Helper()
	mustDebianTools(t)
	root := testbin.ModuleRoot(t)
	dir := t.TempDir()
	bins := testbin.Build(t, "./cmd/vantage-exporter", "./cmd/vantage-coordinator")
	exporterBin, coordinatorBin := bins[0], bins[1]

	s := &stack{root: root, dir: dir, procs: &procs{t: t}, exporters: map[string]string{}, addrs: map[string]string{}}
	s.target = startTargetServer(t, dir)
	s.urls = targetURLs{
		outage:      s.target.httpsBase + pathOutage,
		oneLocation: s.target.httpBase + pathOneLocation,
		blind:       s.target.httpBase + pathBlind,
		slow:        s.target.httpBase + pathSlow,
		demo:        s.target.httpBase + pathDemo,
		canary:      s.target.httpBase + pathHealthy,
		maintained:  s.target.httpBase + pathMaintained,
	}
	s.otlp = otlptest.NewHTTP(t)
	s.hook = startWebhook(t)

	// Every address is chosen first: the programs' configurations name
	// each other. The keys are the compose services' addresses that
	// deploy/prometheus.yml uses.
	for _, l := range locations {
		s.addrs["exporter-"+l.name+":9715"] = testbin.FreeAddr(t)
		s.exporters[l.name] = "http://" + s.addrs["exporter-"+l.name+":9715"]
	}
	s.addrs[coordinatorService], s.addrs["alertmanager:9093"], s.addrs["localhost:9090"] = testbin.FreeAddr(t), testbin.FreeAddr(t), testbin.FreeAddr(t)
	s.addrs["http://demotarget:8080/"] = s.urls.demo
	s.coordinators = []string{"http://" + s.addrs[coordinatorService]}
	for len(s.coordinators) < opts.coordinators {
		s.coordinators = append(s.coordinators, "http://"+testbin.FreeAddr(t))
	}
	s.coordinator, s.alertmanager = s.coordinators[0], "http://"+s.addrs["alertmanager:9093"]
	s.prom = promtest.API{Base: "http://" + s.addrs["localhost:9090"], Client: &http.Client{Timeout: 10 * time.Second}}
	// What Prometheus scrapes as the vantage-coordinator job.
	var scraped []string
	for _, c := range s.coordinators {
		if opts.gateScrapes {
			g := startScrapeGate(t, c)
			s.gates = append(s.gates, g)
			c = g.base
		}
		scraped = append(scraped, strings.TrimPrefix(c, "http://"))
	}

	ready := map[*process]string{} // process → its readiness URL
	ready[s.startAlertmanager(t, opts.groupInterval)] = s.alertmanager + "/-/ready"
	for i, c := range s.coordinators {
		ready[s.startCoordinator(t, coordinatorBin, i)] = c + "/-/ready"
	}
	for _, l := range locations {
		ready[s.startExporter(t, exporterBin, l)] = s.exporters[l.name] + "/-/ready"
	}
	ready[s.startPrometheus(t, scraped)] = s.prom.Base + "/-/ready"
	for _, p := range s.procs.list {
		s.procs.waitReady(t, p, ready[p])
	}
	return s
}

// startAlertmanager runs Debian's Alertmanager with clustering off.
func (s *stack) startAlertmanager(t *testing.T, groupInterval time.Duration) *process {
	dir := mustMkdir(t, filepath.Join(s.dir, "alertmanager"))
	writeFile(t, filepath.Join(dir, "alertmanager.yml"), alertmanagerConfig(t, s.root, s.hook.base, groupInterval))
	return s.procs.start("alertmanager", alertmanagerBinary, []string{
		"--config.file=" + filepath.Join(dir, "alertmanager.yml"),
		"--storage.path=" + mustMkdir(t, filepath.Join(dir, "data")),
		"--web.listen-address=" + s.addrs["alertmanager:9093"],
		"--cluster.listen-address=",
	}, nil)
}

// startCoordinator runs coordinator i (of s.coordinators), each with its
// own store, with the OTEL variables docker-compose.yml gives it.
func (s *stack) startCoordinator(t *testing.T, bin string, i int) *process {
	name, dir := "vantage-coordinator", filepath.Join(s.dir, "coordinator")
	if len(s.coordinators) > 1 {
		name, dir = fmt.Sprintf("%s %d", name, i), fmt.Sprintf("%s-%d", dir, i)
	}
	mustMkdir(t, dir)
	writeFile(t, filepath.Join(dir, "coordinator.yml"), coordinatorConfig(t, s.root, s.exporters))
	return s.procs.start(name, bin, []string{
		"--config.file=" + filepath.Join(dir, "coordinator.yml"),
		"--storage.path=" + mustMkdir(t, filepath.Join(dir, "data")),
		"--web.listen-address=" + strings.TrimPrefix(s.coordinators[i], "http://"),
	}, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.otlp.Endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_SERVICE_NAME=vantage-coordinator",
		"OTEL_BSP_SCHEDULE_DELAY=" + batchDelay,
	})
}

// startExporter runs one location's exporter with its own OTEL variables,
// as docker-compose.yml does, probing from the location's source address.
func (s *stack) startExporter(t *testing.T, bin string, l location) *process {
	path := filepath.Join(s.dir, "exporter-"+l.name+".yml")
	writeFile(t, path, exporterConfig(l, s.target.caFile, s.urls))
	args := []string{
		"--config.file=" + path,
		"--location=" + l.name,
		"--web.listen-address=" + s.addrs["exporter-"+l.name+":9715"],
		"--tracing.slow-threshold=" + slowThreshold.String(),
		// Only failed and slow checks: every trace received must be one.
		"--tracing.sample-ratio=0",
	}
	for _, c := range s.coordinators {
		args = append(args, "--coordinator.url="+c)
	}
	return s.procs.start("vantage-exporter "+l.name, bin, args, []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + s.otlp.Endpoint,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_SERVICE_NAME=vantage-exporter",
		"OTEL_RESOURCE_ATTRIBUTES=vantage.location=" + l.name,
		"OTEL_BSP_SCHEDULE_DELAY=" + batchDelay,
	})
}

// startPrometheus runs Debian's Prometheus with the flags of
// docker-compose.yml and a configuration derived from deploy/prometheus.yml,
// scraping the coordinators (host:port) as the vantage-coordinator job.
func (s *stack) startPrometheus(t *testing.T, coordinators []string) *process {
	dir := mustMkdir(t, filepath.Join(s.dir, "prometheus"))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), prometheusConfig(t, s.root, s.addrs, coordinators))
	s.started = time.Now()
	return s.procs.start("prometheus", prometheusBinary, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + mustMkdir(t, filepath.Join(dir, "data")),
		"--web.listen-address=" + s.addrs["localhost:9090"],
		"--enable-feature=exemplar-storage",
		"--web.enable-lifecycle",
	}, nil)
}

// waitScrapingAll waits until Prometheus scrapes every target of every job
// successfully (the exporters in OpenMetrics, with exemplars).
func (s *stack) waitScrapingAll(t *testing.T) {
	t.Helper()
	s.procs.waitFor(t, "every scrape target up", readyWithin, func() (bool, string) {
		ts, err := s.prom.Targets()
		if err != nil {
			return false, err.Error()
		}
		jobs := map[string]int{}
		var bad []string
		for _, at := range ts {
			jobs[at.Labels["job"]]++
			if at.Health != "up" {
				bad = append(bad, fmt.Sprintf("%s %s: %s %s", at.Labels["job"], at.ScrapeURL, at.Health, at.LastError))
			}
		}
		if jobs["vantage-exporter"] != len(locations) || jobs["vantage-coordinator"] != len(s.coordinators) {
			return false, fmt.Sprintf("jobs %v", jobs)
		}
		return len(bad) == 0, strings.Join(bad, "; ")
	})
}

// waitAllUp waits until every scheduled target succeeds from every location
// that checks it, as Prometheus sees it, every coordinator holds every
// location healthy (canaries passed: before that, failures would be
// reported as unknown), and the vantage-probe job's probes through the
// coordinator succeed.
func (s *stack) waitAllUp(t *testing.T) {
	t.Helper()
	want := 0
	for _, l := range locations {
		want += len(s.urls.scheduled())
		if l.name == blindLocation {
			want-- // no http_blind module there
		}
	}
	s.procs.waitFor(t, "every scheduled check succeeding in Prometheus and every location healthy", readyWithin, func() (bool, string) {
		up, _, err := s.prom.Value(`count(probe_success{job="vantage-exporter"} == 1)`)
		if err != nil {
			return false, err.Error()
		}
		// one series per coordinator and location
		healthy, _, err := s.prom.Value(`count(vantage_location_healthy{job="vantage-coordinator"} == 1)`)
		if err != nil {
			return false, err.Error()
		}
		// deploy/prometheus.yml's vantage-probe job: the consensus of the
		// locations through the coordinator's /probe.
		consensus, _, err := s.prom.Value(`probe_success{job="vantage-probe", location=""}`)
		if err != nil {
			return false, err.Error()
		}
		wantHealthy := len(locations) * len(s.coordinators)
		return int(up) == want && int(healthy) == wantHealthy && consensus == 1,
			fmt.Sprintf("%g of %d checks succeeding, %g of %d locations healthy at the coordinators, vantage-probe consensus %g", up, want, healthy, wantHealthy, consensus)
	})
}

// locationsOf returns the sorted location label values of ss.
func locationsOf(ss []promtest.Series) []string {
	var out []string
	for _, x := range ss {
		out = append(out, x.Metric["location"])
	}
	slices.Sort(out)
	return out
}
