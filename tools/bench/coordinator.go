package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/prober/result"
)

// Phase g: vantage-coordinator (its own process) with three locations,
// 100,000 known targets, then 100,000 open and confirmed incidents.
//
// The locations are HTTP servers in the benchmark process answering the
// exporters' API as vantage-exporter does (status, batches of checks):
// the coordinator's side of the wire is the real one, and the benchmark
// spends no CPU probing. Every check they are asked answers failure
// (connection refused), as the reports say.

// coordOptions are phase g's flags.
type coordOptions struct {
	targets    int
	batch      int
	runs       int
	pkg        string
	profileDir string
}

func coordFlags(fs *flag.FlagSet, o *coordOptions) {
	fs.IntVar(&o.targets, "coord-targets", 100000, "targets in g, known in each of 3 locations, then failing in all")
	fs.IntVar(&o.batch, "coord-batch", 1000, "reports per batch posted in g (the coordinator accepts up to 1000)")
	fs.IntVar(&o.runs, "coord-runs", 3, "timed scrapes of each kind (plain, gzip) at each stage of g")
	fs.StringVar(&o.pkg, "coordinator-pkg", "./cmd/vantage-coordinator", "package to build as vantage-coordinator")
	fs.StringVar(&o.profileDir, "coord-profile", "", "directory to write the coordinator's heap profile and a CPU profile of one plain and one gzip scrape at the incidents stage of g (empty: none)")
}

var coordLocations = []string{"ams", "fra", "sfo"}

// coordStage is what was measured once the coordinator held one stage's
// state.
type coordStage struct {
	Name         string
	Plain, Gzip  []fullScrape
	Series       int64 // lines of the plain text that are samples
	HeapBytes    int64 // live heap after a GC
	RSS, HWM     int64
	Load         string
	CPUPerScrape float64 // coordinator CPU seconds per scrape, both kinds
}

type coordResult struct {
	Targets          int
	Startup          time.Duration
	Empty            coordStage
	Known            coordStage
	Incidents        coordStage
	KnownPosted      time.Duration // the three snapshots
	FailPosted       time.Duration // every failing report of the three locations
	Confirmed        time.Duration // from the first failing report to every target down
	Down             int64
	ChecksAsked      int64
	PostCPU, ConfCPU float64
	HWMBeforeScrapes int64
	ProfileDir       string
}

func phaseCoordinator(ctx context.Context, env *env) (coordResult, error) {
	o := env.opts.coord
	r := coordResult{Targets: o.targets}
	bin := filepath.Join(env.dir, "vantage-coordinator")
	progress("g: building vantage-coordinator from %s", o.pkg)
	cmd := exec.CommandContext(ctx, env.opts.goTool, "build", "-trimpath", "-o", bin, o.pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("go build %s: %w\n%s", o.pkg, err, out)
	}
	locs, err := startLocations()
	if err != nil {
		return r, err
	}
	defer locs.close()
	cfg := filepath.Join(env.dir, "coordinator.yml")
	var conf strings.Builder
	conf.WriteString("locations:\n")
	for i, name := range coordLocations {
		fmt.Fprintf(&conf, "  - name: %s\n    url: http://%s\n", name, locs.addrs[i])
	}
	conf.WriteString("confirmation:\n  min_failing_locations: 2\nhealth_check_interval: 15s\n")
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		return r, err
	}
	addr, err := freeAddr()
	if err != nil {
		return r, err
	}
	start := time.Now()
	c, err := startChild(env.dir, "vantage-coordinator", nil, bin, "--config.file="+cfg, "--web.listen-address="+addr,
		"--storage.path="+filepath.Join(env.dir, "coordinator-data"), "--web.enable-pprof", "--log.level=warn")
	if err != nil {
		return r, err
	}
	defer c.stop()
	base := "http://" + addr
	if err := waitHTTP(ctx, c, base+"/-/ready", 60*time.Second); err != nil {
		return r, err
	}
	r.Startup = time.Since(start)
	if r.Empty, err = measureCoordinator(ctx, c, base, "empty", 1, ""); err != nil {
		return r, err
	}

	progress("g: %d targets known (up) in %s", o.targets, strings.Join(coordLocations, ", "))
	p0, _ := readProc(c.pid())
	t0 := time.Now()
	if err := forLocations(func(i int) error { return postSnapshot(ctx, base, coordLocations[i], o.targets) }); err != nil {
		return r, err
	}
	r.KnownPosted = time.Since(t0)
	if r.Known, err = measureCoordinator(ctx, c, base, "known", o.runs, ""); err != nil {
		return r, err
	}

	progress("g: %d targets failing in all 3 locations (batches of %d reports)", o.targets, o.batch)
	t0 = time.Now()
	if err := forLocations(func(i int) error {
		return postFailing(ctx, base, coordLocations[i], o.targets, o.batch)
	}); err != nil {
		return r, err
	}
	r.FailPosted = time.Since(t0)
	p1, _ := readProc(c.pid())
	r.PostCPU = p1.cpuSeconds() - p0.cpuSeconds()
	// Every target is down once confirmed: min_failing_locations of the
	// three failed it. Wait for that, reading /metrics as Prometheus would.
	for {
		s, err := countDown(ctx, base)
		if err != nil {
			return r, err
		}
		r.Down = s
		if s >= int64(o.targets) || time.Since(t0) > 5*time.Minute {
			break
		}
		if err := sleep(ctx, 2*time.Second); err != nil {
			return r, err
		}
	}
	r.Confirmed = time.Since(t0)
	p2, _ := readProc(c.pid())
	r.ConfCPU = p2.cpuSeconds() - p0.cpuSeconds()
	r.HWMBeforeScrapes = p2.HWMBytes
	r.ChecksAsked = locs.checks.Load()
	if r.Incidents, err = measureCoordinator(ctx, c, base, "incidents", o.runs, o.profileDir); err != nil {
		return r, err
	}
	r.ProfileDir = o.profileDir
	return r, nil
}

// forLocations runs f for each location at once, as their exporters
// would send.
func forLocations(f func(i int) error) error {
	errs := make([]error, len(coordLocations))
	var wg sync.WaitGroup
	for i := range coordLocations {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func coordTarget(i int) string { return fmt.Sprintf("https://svc-%06d.example.test/healthz", i) }

// postSnapshot sends a location's snapshot listing every target up.
func postSnapshot(ctx context.Context, base, location string, n int) error {
	snap := &api.Snapshot{Time: time.Now(), Up: n, UpTargets: make([]api.TargetKey, n)}
	var d api.Digest
	for i := range n {
		snap.UpTargets[i] = api.TargetKey{Target: coordTarget(i), Module: "http_2xx"}
		d.Add(snap.UpTargets[i])
	}
	snap.UpDigest = d.String()
	return postBatch(ctx, base, &api.Batch{Location: location, SentAt: time.Now(), Run: location + "-run", Reports: []api.Report{}, Snapshot: snap})
}

// postFailing sends a failing report of every target, in batches.
func postFailing(ctx context.Context, base, location string, n, per int) error {
	seq := uint64(0)
	for from := 0; from < n; from += per {
		now := time.Now()
		b := &api.Batch{Location: location, SentAt: now, Run: location + "-run"}
		for i := from; i < min(n, from+per); i++ {
			seq++
			b.Reports = append(b.Reports, api.Report{Seq: seq, Target: coordTarget(i), Module: "http_2xx", State: api.StateFailing,
				Time: now, FirstFailure: now.Add(-10 * time.Second), Attempts: 3, Result: refused(coordTarget(i), now),
				Labels: map[string]string{"team": fmt.Sprintf("team-%d", i%20)}})
		}
		if err := postBatch(ctx, base, b); err != nil {
			return err
		}
	}
	return nil
}

// refused is the result of an HTTP check whose connection was refused.
func refused(target string, at time.Time) *result.Result {
	r := result.New("http", at, false)
	r.InitPhases("resolve", "connect", "tls", "processing", "transfer")
	r.SetPhase("resolve", 180*time.Microsecond)
	r.SetPhase("connect", 95*time.Microsecond)
	r.Fail(result.ReasonConnectRefused, "Get %q: dial tcp 127.0.0.1:443: connect: connection refused", target)
	r.Duration = 400 * time.Microsecond
	r.Timeout = 5 * time.Second
	return r
}

func postBatch(ctx context.Context, base string, b *api.Batch) error {
	body, err := json.Marshal(b)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+api.ReportsPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient(120 * time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s from %s: %s: %s", api.ReportsPath, b.Location, resp.Status, out)
	}
	return nil
}

// countDown scrapes /metrics and counts the targets in state down.
func countDown(ctx context.Context, base string) (int64, error) {
	s, err := scrapeCoordinator(ctx, base, false)
	return s.Rows, err
}

// scrapeCoordinator times a complete GET /metrics of the coordinator. A
// plain scrape counts the targets in state down (Rows) and the samples
// (Success).
func scrapeCoordinator(ctx context.Context, base string, gzip bool) (fullScrape, error) {
	s, body, err := fetchMetrics(ctx, base, gzip)
	if err != nil || gzip {
		return s, err
	}
	const down = `vantage_target_state{`
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		s.Success++
		if strings.HasPrefix(line, down) && strings.Contains(line, `state="down"`) && strings.HasSuffix(line, " 1") {
			s.Rows++
		}
	}
	return s, nil
}

// measureCoordinator takes runs plain and gzip scrapes, the live heap,
// RSS and the load, and with profileDir the heap profile and a CPU
// profile of one more plain and one more gzip scrape.
func measureCoordinator(ctx context.Context, c *child, base, name string, runs int, profileDir string) (coordStage, error) {
	st := coordStage{Name: name}
	p0, err := readProc(c.pid())
	if err != nil {
		return st, err
	}
	for range runs {
		for _, gz := range []bool{false, true} {
			s, err := scrapeCoordinator(ctx, base, gz)
			if err != nil {
				return st, err
			}
			if gz {
				st.Gzip = append(st.Gzip, s)
			} else {
				st.Plain = append(st.Plain, s)
				st.Series = int64(s.Success)
			}
		}
	}
	p1, err := readProc(c.pid())
	if err != nil {
		return st, err
	}
	st.CPUPerScrape = (p1.cpuSeconds() - p0.cpuSeconds()) / float64(2*runs)
	st.RSS, st.HWM = p1.RSSBytes, p1.HWMBytes
	st.Load = loadAverage()
	if st.HeapBytes, err = liveHeap(ctx, base); err != nil {
		return st, err
	}
	if profileDir != "" {
		if err := profileScrape(ctx, base, profileDir, name); err != nil {
			return st, err
		}
	}
	return st, nil
}

// liveHeap is the coordinator's heap in use after a GC (HeapAlloc of the
// heap profile's debug output, which collects first with gc=1).
func liveHeap(ctx context.Context, base string) (int64, error) {
	body, err := get(ctx, base+"/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "# HeapAlloc = "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no HeapAlloc in the heap profile")
}

// profileScrape writes the heap profile and the CPU profile of a plain
// scrape taken while it records.
func profileScrape(ctx context.Context, base, dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	heap, err := get(ctx, base+"/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "coordinator-"+name+".heap.pb.gz"), heap, 0o644); err != nil {
		return err
	}
	var cpu []byte
	var cpuErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		cpu, cpuErr = get(ctx, base+"/debug/pprof/profile?seconds=3")
	}()
	_ = sleep(ctx, 200*time.Millisecond)
	_, _ = scrapeCoordinator(ctx, base, false)
	_, _ = scrapeCoordinator(ctx, base, true)
	<-done
	if cpuErr != nil {
		return cpuErr
	}
	return os.WriteFile(filepath.Join(dir, "coordinator-"+name+".scrape.cpu.pb.gz"), cpu, 0o644)
}

func get(ctx context.Context, url string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := plainClient(60 * time.Second).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, err
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// locationServers answer the exporters' API for the three locations.
type locationServers struct {
	addrs   []string
	servers []*http.Server
	checks  atomic.Int64
}

func startLocations() (*locationServers, error) {
	ls := &locationServers{}
	for _, name := range coordLocations {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ls.close()
			return nil, err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET "+api.StatusPath, func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, api.Status{Location: name, Run: name + "-run"})
		})
		mux.HandleFunc("POST "+api.CheckBatchPath, func(w http.ResponseWriter, r *http.Request) {
			var req api.CheckBatchRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			now := time.Now()
			ans := api.CheckBatchResponse{Location: name, Results: make([]api.CheckResponse, len(req.Checks))}
			for i, c := range req.Checks {
				ans.Results[i] = api.CheckResponse{Location: name, Target: c.Target, Module: c.Module, Result: refused(c.Target, now), Attempts: 1}
			}
			ls.checks.Add(int64(len(req.Checks)))
			writeJSON(w, ans)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(l) }()
		ls.addrs = append(ls.addrs, l.Addr().String())
		ls.servers = append(ls.servers, srv)
	}
	return ls, nil
}

func (ls *locationServers) close() {
	for _, s := range ls.servers {
		_ = s.Close()
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (r *report) printCoordinator(w io.Writer) {
	c := r.coord
	if c == nil {
		return
	}
	fmt.Fprintf(w, "Coordinator (g): vantage-coordinator, locations %s (in-bench servers of the check API, every check failing), min_failing_locations 2; started in %s\n",
		strings.Join(coordLocations, ", "), ms(c.Startup))
	fmt.Fprintf(w, "  known: %d targets up in 3 locations (one snapshot each, posted at once) in %s\n", c.Targets, ms(c.KnownPosted))
	fmt.Fprintf(w, "  incidents: %d failing reports from each location posted in %s (coordinator CPU %.1f s); %d of %d targets down after %s (CPU %.1f s, %d checks asked of the locations)\n",
		c.Targets, ms(c.FailPosted), c.PostCPU, c.Down, c.Targets, c.Confirmed.Round(time.Millisecond), c.ConfCPU, c.ChecksAsked)
	fmt.Fprintln(w, "           stage    samples    plain median (min-max)         size    gzip median (min-max)        size  CPU/scrape  live heap   RSS after  peak RSS  load")
	for _, s := range []coordStage{c.Empty, c.Known, c.Incidents} {
		pLo, pMed, pHi := durations(s.Plain)
		gLo, gMed, gHi := durations(s.Gzip)
		fmt.Fprintf(w, "  %14s %10d %9s (%s-%s) %12s %9s (%s-%s) %11s %9.2fs %10s %11s %9s  %s\n",
			s.Name, s.Series, ms(pMed), ms(pLo), ms(pHi), mib(s.Plain[0].Bytes), ms(gMed), ms(gLo), ms(gHi), mib(s.Gzip[0].Bytes),
			s.CPUPerScrape, mib(s.HeapBytes), mib(s.RSS), mib(s.HWM), s.Load)
	}
	if c.Targets > 0 {
		fmt.Fprintf(w, "  live heap per known target (3 locations): %.0f bytes; per open confirmed incident (3 failing reports, its evidence and intervals): %.0f bytes\n",
			float64(c.Known.HeapBytes-c.Empty.HeapBytes)/float64(c.Targets), float64(c.Incidents.HeapBytes-c.Known.HeapBytes)/float64(c.Targets))
	}
	if c.ProfileDir != "" {
		fmt.Fprintf(w, "  profiles in %s\n", c.ProfileDir)
	}
	fmt.Fprintln(w)
}

// coordGoals are phase g's goals: scrapes under a second at both stages,
// and peak RSS with every incident open.
func (r *report) coordGoals() []goal {
	c := r.coord
	n := r.env.opts.coord.targets
	scrape := goal{name: fmt.Sprintf("coordinator GET /metrics with %d known targets × 3 locations < 1 s (median, plain and gzip)", n)}
	mem := goal{name: fmt.Sprintf("coordinator peak RSS ≤ 512 MiB with %d open incidents", n)}
	if c == nil {
		scrape.skip, mem.skip = true, true
		return []goal{scrape, mem}
	}
	scrape.pass = true
	var parts []string
	for _, s := range []coordStage{c.Known, c.Incidents} {
		_, pMed, _ := durations(s.Plain)
		_, gMed, _ := durations(s.Gzip)
		scrape.pass = scrape.pass && pMed < time.Second && gMed < time.Second
		parts = append(parts, fmt.Sprintf("%s: plain %s (%s), gzip %s", s.Name, ms(pMed), mib(s.Plain[0].Bytes), ms(gMed)))
	}
	scrape.detail = strings.Join(parts, "; ")
	mem.pass = c.Down == int64(n) && c.Incidents.HWM <= 512<<20
	mem.detail = fmt.Sprintf("peak RSS %s (%s before the scrapes), %d of %d targets down, live heap %s",
		mib(c.Incidents.HWM), mib(c.HWMBeforeScrapes), c.Down, n, mib(c.Incidents.HeapBytes))
	return []goal{scrape, mem}
}
