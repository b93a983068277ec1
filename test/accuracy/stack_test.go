// Package accuracy holds scenarios that measure how right the coordinator
// stays under stress: many targets failing at once, degraded locations,
// flapping targets. Each runs a real stack on loopback: three exporter
// processes and a coordinator process (each program's goroutines, memory
// and open files its own, read from its /metrics), and the targets in the
// test process.
package accuracy

import (
	"bufio"
	"encoding/json"
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
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// locationNames are the stack's locations; each probes from its own
// loopback source address (127.0.0.2, .3, .4).
var locationNames = []string{"ams", "fra", "sfo"}

// stackConfig shapes a stack.
type stackConfig struct {
	// exporterYAML is each exporter's configuration; %[1]s is replaced by
	// its source address.
	exporterYAML string
	// confirmationYAML is the coordinator's confirmation section (a YAML
	// flow mapping).
	confirmationYAML string
}

// stack is a coordinator process and three exporter processes reporting
// to it.
type stack struct {
	tb          testing.TB
	dir         string
	coordinator string // base URL
	proc        *testbin.Process
	exporters   []*testbin.Process
	exporterURL []string // base URLs, by location (locationNames)
}

func newStack(tb testing.TB, c stackConfig) *stack {
	tb.Helper()
	bins := testbin.Build(tb, "./cmd/vantage-coordinator", "./cmd/vantage-exporter")
	s := &stack{tb: tb, dir: tb.TempDir()}
	coordAddr := testbin.FreeAddr(tb)
	s.coordinator = "http://" + coordAddr
	addrs := make([]string, len(locationNames))
	var locs strings.Builder
	for i, name := range locationNames {
		addrs[i] = testbin.FreeAddr(tb)
		fmt.Fprintf(&locs, "  - {name: %s, url: \"http://%s\"}\n", name, addrs[i])
	}
	coordConfig := filepath.Join(s.dir, "coordinator.yml")
	s.write(coordConfig, "locations:\n"+locs.String()+"confirmation: "+c.confirmationYAML+"\n")
	cmd := exec.Command(bins[0], "--config.file="+coordConfig, "--storage.path="+filepath.Join(s.dir, "data"),
		"--web.listen-address="+coordAddr, "--log.level=warn",
		"--web.enable-pprof") // for the goroutine count
	s.proc = testbin.StartReady(tb, "vantage-coordinator", cmd, s.coordinator+"/-/ready")
	for i, name := range locationNames {
		path := filepath.Join(s.dir, "exporter-"+name+".yml")
		s.write(path, fmt.Sprintf(c.exporterYAML, fmt.Sprintf("127.0.0.%d", i+2)))
		cmd := exec.Command(bins[1], "--config.file="+path, "--location="+name, "--web.listen-address="+addrs[i],
			"--coordinator.url="+s.coordinator, "--log.level=warn")
		s.exporters = append(s.exporters, testbin.StartReady(tb, "vantage-exporter "+name, cmd, "http://"+addrs[i]+"/-/ready"))
		s.exporterURL = append(s.exporterURL, "http://"+addrs[i])
	}
	return s
}

func (s *stack) write(path, content string) {
	s.tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		s.tb.Fatal(err)
	}
}

// coordinatorMetrics is one scrape of the coordinator's /metrics.
type coordinatorMetrics []string

func (s *stack) coordinatorMetrics() (coordinatorMetrics, error) {
	resp, err := http.Get(s.coordinator + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var lines coordinatorMetrics
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines, sc.Err()
}

// sum adds up the values of the series named name whose labels contain
// each of labels (e.g. `result="unknown"`).
func (m coordinatorMetrics) sum(name string, labels ...string) float64 {
	var total float64
	for _, line := range m {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); ok && err == nil {
			total += v
		}
	}
	return total
}

// degraded returns, by location, the reasons each exporter gives for not
// vouching for its own results (GET /api/v1/status), or "unreachable".
func (s *stack) degraded() map[string][]string {
	out := map[string][]string{}
	for i, name := range locationNames {
		var st api.Status
		if err := getJSON(s.exporterURL[i]+api.StatusPath, &st); err != nil {
			out[name] = []string{"unreachable"}
		} else if len(st.Degraded) > 0 {
			out[name] = st.Degraded
		}
	}
	return out
}

// targetsIn lists the targets the coordinator holds in state.
func (s *stack) targetsIn(state confirm.State) (map[string]bool, error) {
	var views []confirm.TargetView
	if err := getJSON(s.coordinator+"/api/v1/targets?state="+string(state), &views); err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(views))
	for _, v := range views {
		out[v.Target] = true
	}
	return out, nil
}

// describeNotDown counts the targets by state and shows the evidence of
// a few that are not down, those in left first.
func (s *stack) describeNotDown(left map[string]bool) string {
	var views []confirm.TargetView
	if err := getJSON(s.coordinator+"/api/v1/targets", &views); err != nil {
		return err.Error()
	}
	states := map[confirm.State]int{}
	var b strings.Builder
	shown := 0
	for pass := range 2 {
		for _, v := range views {
			if pass == 0 {
				states[v.State]++
			}
			if v.State == confirm.StateDown || shown >= 3 || (pass == 0) != left[v.Target] {
				continue
			}
			shown++
			fmt.Fprintf(&b, "\n  %s %s since %s:", v.Target, v.State, v.Since.Format(time.TimeOnly))
			for _, e := range v.Locations {
				fmt.Fprintf(&b, " [%s %s %s at %s: %s]", e.Location, e.Source, e.Result, e.Time.Format(time.TimeOnly), e.Error)
			}
		}
	}
	return fmt.Sprintf("states %v%s", states, b.String())
}

// openIncidents lists the coordinator's open incidents.
func (s *stack) openIncidents() ([]confirm.Incident, error) {
	var incs []confirm.Incident
	err := getJSON(s.coordinator+"/api/v1/incidents?state=open", &incs)
	return incs, err
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// peaks samples the coordinator's goroutines every interval until
// stopped, keeping the highest count; its peak resident memory is the
// kernel's high-water mark (VmHWM). Neither reads /metrics, whose
// rendering of every target's series would be most of the coordinator's
// work.
type peaks struct {
	goroutines atomic.Int64
	// rss is the peak of its resident memory; rssAnon and rssFile, of its
	// anonymous memory (heap, stacks) and of its file pages (the incident
	// log's memory map, the binary) resident.
	rss, rssAnon, rssFile atomic.Int64
	stop                  chan struct{}
	wg                    sync.WaitGroup
}

func (s *stack) samplePeaks(interval time.Duration) *peaks {
	p := &peaks{stop: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if n, err := s.goroutines(); err == nil {
				storeMax(&p.goroutines, n)
			}
			if st, err := s.procStatus("VmRSS", "RssAnon", "RssFile"); err == nil {
				storeMax(&p.rss, st["VmRSS"])
				storeMax(&p.rssAnon, st["RssAnon"])
				storeMax(&p.rssFile, st["RssFile"])
			}
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	})
	return p
}

func (p *peaks) end() {
	close(p.stop)
	p.wg.Wait()
}

// goroutines counts the coordinator's goroutines, from the first line of
// its goroutine profile ("goroutine profile: total N").
func (s *stack) goroutines() (int64, error) {
	resp, err := http.Get(s.coordinator + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	n, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("unexpected goroutine profile: %q", line)
	}
	return strconv.ParseInt(n, 10, 64)
}

// procStatus reads the named fields of the coordinator process's
// /proc/<pid>/status (sizes in kB), in bytes.
func (s *stack) procStatus(fields ...string) (map[string]int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.proc.Pid()))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(data)) {
		for _, f := range fields {
			if v, ok := strings.CutPrefix(line, f+":"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s in /proc/%d/status: %w", f, s.proc.Pid(), err)
				}
				out[f] = kb << 10
			}
		}
	}
	if len(out) != len(fields) {
		return nil, fmt.Errorf("/proc/%d/status lacks some of %v", s.proc.Pid(), fields)
	}
	return out, nil
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// blackHole is a set of HTTP targets on a few loopback listeners that
// answer 200 until swallow is called; from then on no connection is
// accepted any more (the kernel's backlog fills, then SYNs go unanswered)
// and no request is answered: every check of them times out.
type blackHole struct {
	listeners []*holeListener
	servers   []*http.Server
	hits      []atomic.Int64 // per target
	perPort   int
}

func newBlackHole(tb testing.TB, targets, perPort int) *blackHole {
	b := &blackHole{hits: make([]atomic.Int64, targets), perPort: perPort}
	for range (targets + perPort - 1) / perPort {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		hl := &holeListener{Listener: l, swallowed: make(chan struct{})}
		srv := &http.Server{Handler: http.HandlerFunc(b.serve), ReadHeaderTimeout: 10 * time.Second}
		srv.SetKeepAlivesEnabled(false)
		go func() { _ = srv.Serve(hl) }()
		b.listeners = append(b.listeners, hl)
		b.servers = append(b.servers, srv)
	}
	tb.Cleanup(func() {
		for _, srv := range b.servers {
			_ = srv.Close()
		}
		for _, hl := range b.listeners {
			hl.release()
		}
	})
	return b
}

func (b *blackHole) serve(w http.ResponseWriter, r *http.Request) {
	if i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/t/")); err == nil && i >= 0 && i < len(b.hits) {
		b.hits[i].Add(1)
	}
}

// url is target i's URL.
func (b *blackHole) url(i int) string {
	return fmt.Sprintf("http://%s/t/%d", b.listeners[i/b.perPort].Addr(), i)
}

// checkedAtLeast reports whether every target was requested n times.
func (b *blackHole) checkedAtLeast(n int64) (int, bool) {
	short := 0
	for i := range b.hits {
		if b.hits[i].Load() < n {
			short++
		}
	}
	return short, short == 0
}

// swallow starts the outage.
func (b *blackHole) swallow() {
	for _, hl := range b.listeners {
		hl.once.Do(func() { close(hl.swallowed) })
	}
}

// holeListener stops accepting once swallowed; a connection its Accept
// took just then is held open, unanswered.
type holeListener struct {
	net.Listener
	swallowed chan struct{}
	once      sync.Once
	mu        sync.Mutex
	held      []net.Conn
	closed    chan struct{}
}

func (l *holeListener) Accept() (net.Conn, error) {
	for {
		select {
		case <-l.swallowed:
			<-l.closedCh()
			return nil, net.ErrClosed
		default:
		}
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case <-l.swallowed:
			l.mu.Lock()
			l.held = append(l.held, c)
			l.mu.Unlock()
			continue
		default:
			return c, nil
		}
	}
}

func (l *holeListener) closedCh() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed == nil {
		l.closed = make(chan struct{})
	}
	return l.closed
}

func (l *holeListener) Close() error {
	ch := l.closedCh()
	l.mu.Lock()
	select {
	case <-ch:
	default:
		close(ch)
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// release closes the connections held open.
func (l *holeListener) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.held {
		_ = c.Close()
	}
	l.held = nil
}
