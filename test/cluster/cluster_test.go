// Package cluster tests a location of three exporters that share 3,000
// targets over gossip: real processes on loopback, in a network
// namespace of the test's own, with a coordinator.
package cluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

const (
	targets  = 3000
	interval = 2 * time.Second
)

// checks are the check times the target process recorded, per target.
type checks [][]time.Time

// fetchChecks reads the target process's record.
func fetchChecks(t *testing.T, base string) checks {
	t.Helper()
	var raw [][]int64
	getJSON(t, base+"/times", &raw)
	out := make(checks, len(raw))
	for i, ts := range raw {
		for _, n := range ts {
			out[i] = append(out[i], time.Unix(0, n))
		}
	}
	return out
}

// gaps returns, for the checks of the targets in which (all when nil)
// between from and to: the longest time a target went unchecked (from
// its last check at or before from), how many pairs of checks of one
// target came less than a quarter interval apart (checked twice in one
// slot: two members checking it; a check that started late is followed
// by the next on time, further apart), and how many checks there were.
func (c checks) gaps(which map[int]bool, from, to time.Time) (longest time.Duration, twice, total int) {
	for n := range c {
		if which != nil && !which[n] {
			continue
		}
		var prev time.Time
		for _, at := range c[n] {
			if at.After(to) {
				break
			}
			if !at.After(from) {
				prev = at
				continue
			}
			total++
			if !prev.IsZero() {
				longest = max(longest, at.Sub(prev))
				if at.Sub(prev) < interval/4 {
					twice++
				}
			}
			prev = at
		}
		if prev.IsZero() || to.Sub(prev) > longest {
			longest = max(longest, to.Sub(prev))
		}
	}
	return longest, twice, total
}

// firstAfter is target n's first check after at (zero when none).
func (c checks) firstAfter(n int, at time.Time) time.Time {
	for _, ts := range c[n] {
		if ts.After(at) {
			return ts
		}
	}
	return time.Time{}
}

type member struct {
	name, web, gossip string
	args              []string
	proc              *testbin.Process
}

func (m *member) url() string { return "http://" + m.web }

func (m *member) start(t *testing.T, bin string) {
	t.Helper()
	m.proc = testbin.StartReady(t, "vantage-exporter "+m.name, exec.Command(bin, m.args...), m.url()+"/-/ready")
}

// metrics returns the samples of base's /metrics whose series starts
// with prefix. The exporter writes its own series before the table of
// scheduled results (probe_*): unless prefix asks for those, the read
// stops there, so polling stays cheap for the exporters and the test.
func metrics(t *testing.T, base, prefix string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", base, err)
	}
	defer resp.Body.Close()
	table := strings.HasPrefix(prefix, "probe_")
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !table && strings.HasPrefix(line, "# HELP probe_") {
			break
		}
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	v, ok := metrics(t, base, series)[series]
	if !ok {
		return -1
	}
	return v
}

var targetLabel = regexp.MustCompile(`target="[^"]*/t/(\d+)"`)

// owned returns the targets a member exposes on its /metrics.
func owned(t *testing.T, m *member) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for series := range metrics(t, m.url(), "probe_success{") {
		if sm := targetLabel.FindStringSubmatch(series); sm != nil {
			n, _ := strconv.Atoi(sm[1])
			out[n] = true
		}
	}
	return out
}

// stack is the location under test: three exporters of ams sharing the
// targets of the checkcounter process, and a coordinator that lists them.
type stack struct {
	t           *testing.T
	exporterBin string
	targetURL   string
	coordURL    string
	members     []*member
}

// TestCluster runs three exporters of location ams as one cluster with
// 3,000 targets at 2s, and a coordinator that reaches ams through any
// member: ownership, a SIGKILLed member, its return, and a partition.
// Throughout, no target may fail: no report, no incident.
func TestCluster(t *testing.T) {
	s := newStack(t)
	s.ownedOnceAndCheckedOnce()
	s.killedMemberTakenOver()
	s.returnedMemberRebalanced()
	s.partitionedMemberKeepsChecking()
	s.noFailureSeen()
}

func newStack(t *testing.T) *stack {
	bins := testbin.Build(t, "./cmd/vantage-exporter", "./cmd/vantage-coordinator", "./test/cluster/checkcounter")
	dir := t.TempDir()
	targetAddr := testbin.FreeAddr(t)
	s := &stack{t: t, exporterBin: bins[0], targetURL: "http://" + targetAddr}
	testbin.StartReady(t, "checkcounter", exec.Command(bins[2], "-listen="+targetAddr, "-targets="+strconv.Itoa(targets)), s.targetURL+"/-/ready")

	var list strings.Builder
	for i := range targets {
		fmt.Fprintf(&list, "      - %s/t/%d\n", s.targetURL, i)
	}
	conf := filepath.Join(dir, "exporter.yml")
	write(t, conf, "modules:\n  http_2xx:\n    prober: http\n    timeout: 1800ms\n"+
		"scheduler: {interval: 2s, retries: 0}\ncluster: {replicas: 1, expected_members: 3}\n"+
		"targets:\n  - module: http_2xx\n    targets:\n"+list.String())

	s.members = make([]*member, 3)
	var urls []string
	for i := range s.members {
		s.members[i] = &member{name: fmt.Sprintf("m%d", i+1), web: testbin.FreeAddr(t), gossip: fmt.Sprintf("127.0.0.%d:7946", i+2)}
		urls = append(urls, s.members[i].url())
	}
	coordAddr := testbin.FreeAddr(t)
	coordConf := filepath.Join(dir, "coordinator.yml")
	write(t, coordConf, fmt.Sprintf("locations:\n  - name: ams\n    urls: [%s]\nconfirmation: {min_failing_locations: 1, verify_timeout: 2s}\nhealth_check_interval: 1s\n", strings.Join(urls, ", ")))
	testbin.StartReady(t, "vantage-coordinator", exec.Command(bins[1], "--config.file="+coordConf,
		"--storage.path="+filepath.Join(dir, "data"), "--web.listen-address="+coordAddr, "--log.level=warn"), "http://"+coordAddr+"/-/ready")
	s.coordURL = "http://" + coordAddr
	for _, m := range s.members {
		m.args = []string{"--config.file=" + conf, "--location=ams", "--web.listen-address=" + m.web, "--log.level=warn",
			"--coordinator.url=" + s.coordURL, "--cluster.listen-address=" + m.gossip,
			"--cluster.peer=" + s.members[0].gossip, "--cluster.peer=" + s.members[1].gossip, "--cluster.reconnect-interval=2s"}
		m.start(t, s.exporterBin)
	}
	return s
}

func (s *stack) checks() checks { return fetchChecks(s.t, s.targetURL) }

// owned returns the sum and each of the members' vantage_cluster_owned_targets.
func (s *stack) owned(ms ...*member) (sum float64, each []float64) {
	for _, m := range ms {
		v := metric(s.t, m.url(), "vantage_cluster_owned_targets")
		sum += v
		each = append(each, v)
	}
	return sum, each
}

// seeMembers is a condition: each of ms sees n live members.
func (s *stack) seeMembers(n float64, ms ...*member) func() error {
	return func() error {
		for _, m := range ms {
			if got := metric(s.t, m.url(), "vantage_cluster_members"); got != n {
				return fmt.Errorf("%s sees %v members, want %v", m.name, got, n)
			}
		}
		return nil
	}
}

// ownedOnce is a condition: the owned targets of ms sum to all targets.
func (s *stack) ownedOnce(ms ...*member) func() error {
	return func() error {
		if sum, each := s.owned(ms...); sum != targets {
			return fmt.Errorf("owned targets %v sum to %v, want %d", each, sum, targets)
		}
		return nil
	}
}

// ownedOnceAndCheckedOnce: every target owned by exactly one member, on
// that member's /metrics only, and checked once per interval; the
// coordinator lists the three members.
func (s *stack) ownedOnceAndCheckedOnce() {
	t := s.t
	testbin.WaitFor(t, "three members", 20*time.Second, s.seeMembers(3, s.members...))
	testbin.WaitFor(t, "every target owned once", 10*time.Second, s.ownedOnce(s.members...))
	testbin.WaitFor(t, "the coordinator lists ams's members", 10*time.Second, s.membersListed)
	time.Sleep(interval)
	from := time.Now()
	time.Sleep(2 * interval)
	seen := map[int]int{}
	for _, m := range s.members {
		for n := range owned(t, m) {
			seen[n]++
		}
	}
	to := time.Now()
	longest, twice, total := s.checks().gaps(nil, from, to)
	perInterval := float64(total) / targets / (float64(to.Sub(from)) / float64(interval))
	t.Logf("steady: %.3f checks per target per interval, longest gap %s, checked twice in one slot %d", perInterval, longest, twice)
	if twice != 0 || perInterval < 0.95 || perInterval > 1.05 || longest >= 2*interval {
		t.Errorf("steady state: %.3f checks per target per interval, %d double checks, longest gap %s; want 1, none, and no slot missed (< %s)", perInterval, twice, longest, 2*interval)
	}
	if len(seen) != targets {
		t.Errorf("the members' /metrics show %d targets, want %d", len(seen), targets)
	}
	for n, k := range seen {
		if k != 1 {
			t.Fatalf("target %d is on %d members' /metrics, want 1", n, k)
		}
	}
}

// membersListed: /api/v1/locations has ams, healthy, with its three
// members, each named by its gossip address and seeing three.
func (s *stack) membersListed() error {
	var locs []struct {
		Name    string `json:"name"`
		Healthy bool   `json:"healthy"`
		Members []struct {
			URL     string   `json:"url"`
			Name    string   `json:"name"`
			Healthy bool     `json:"healthy"`
			Members []string `json:"members"`
		} `json:"members"`
	}
	getJSON(s.t, s.coordURL+"/api/v1/locations", &locs)
	if len(locs) != 1 || !locs[0].Healthy || len(locs[0].Members) != 3 {
		return fmt.Errorf("locations: %+v", locs)
	}
	for i, m := range locs[0].Members {
		if m.URL != s.members[i].url() || m.Name != s.members[i].gossip || !m.Healthy || len(m.Members) != 3 {
			return fmt.Errorf("member %d: %+v", i, m)
		}
	}
	return nil
}

// killedMemberTakenOver: SIGKILL m3; m1 and m2 check each of its targets
// again within one interval of detecting the failure. Counted from the
// target's last check, that is at most interval + failure detection time
// (the target's owner died up to an interval after that check).
func (s *stack) killedMemberTakenOver() {
	t, m3, rest := s.t, s.members[2], s.members[:2]
	lost := owned(t, m3)
	m3.proc.Kill()
	killed := time.Now()
	detected := testbin.WaitFor(t, "m3's failure detected", 30*time.Second, s.seeMembers(2, rest...))
	testbin.WaitFor(t, "m3's targets taken over", 10*time.Second, s.ownedOnce(rest...))
	time.Sleep(interval + 500*time.Millisecond)
	c := s.checks()
	longest, _, _ := c.gaps(lost, killed.Add(-interval), time.Now())
	t.Logf("SIGKILL: failure detected after %s; m3's %d targets went unchecked at most %s (interval %s)", detected.Round(time.Millisecond), len(lost), longest.Round(time.Millisecond), interval)
	due := killed.Add(detected + interval + interval/4)
	late := 0
	for n := range lost {
		if next := c.firstAfter(n, killed); next.IsZero() || next.After(due) {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d of m3's %d targets were not checked again within an interval (+%s slack) of the failure's detection", late, len(lost), interval/4)
	}
}

// returnedMemberRebalanced: m3 back, the load spreads again within ±15%
// after one interval.
func (s *stack) returnedMemberRebalanced() {
	t := s.t
	s.members[2].start(t, s.exporterBin)
	testbin.WaitFor(t, "m3 back", 20*time.Second, s.seeMembers(3, s.members...))
	time.Sleep(interval)
	testbin.WaitFor(t, "every target owned once again", 10*time.Second, s.ownedOnce(s.members...))
	_, each := s.owned(s.members...)
	t.Logf("after m3 returned: owned %v", each)
	for i, v := range each {
		if v < targets/3*0.85 || v > targets/3*1.15 {
			t.Errorf("%s owns %v targets, want %d ± 15%%", s.members[i].name, v, targets/3)
		}
	}
}

// partitionedMemberKeepsChecking: m3 cut off; both sides check every
// target (the overlap counted), the coordinator sees one healthy
// location throughout, and the cluster re-forms once healed.
func (s *stack) partitionedMemberKeepsChecking() {
	t, m3, rest := s.t, s.members[2], s.members[:2]
	stopSampling := sampleLocation(t, s.coordURL)
	partition(t, "127.0.0.4")
	parted := time.Now()
	testbin.WaitFor(t, "m3 alone", 30*time.Second, s.seeMembers(1, m3))
	testbin.WaitFor(t, "m1 and m2 without m3", 30*time.Second, s.seeMembers(2, rest...))
	testbin.WaitFor(t, "m3 checks every target", 10*time.Second, s.ownedOnce(m3))
	testbin.WaitFor(t, "m1 and m2 check every target", 10*time.Second, s.ownedOnce(rest...))
	time.Sleep(interval)
	from := time.Now()
	time.Sleep(2 * interval)
	longest, twice, _ := s.checks().gaps(nil, from, time.Now())
	t.Logf("partition (since %s): longest gap %s, double checks in %s: %d (the overlap of both sides)", time.Since(parted).Round(time.Second), longest.Round(time.Millisecond), 2*interval, twice)
	if longest >= 2*interval {
		t.Errorf("during the partition a target went unchecked %s: a slot was missed", longest)
	}
	if twice < targets {
		t.Errorf("during the partition %d double checks in two intervals, want both sides checking every target (≥ %d)", twice, targets)
	}
	heal(t)
	testbin.WaitFor(t, "the partition healed", 30*time.Second, s.seeMembers(3, s.members...))
	testbin.WaitFor(t, "every target owned once after healing", 10*time.Second, s.ownedOnce(s.members...))
	if flaps := stopSampling(); flaps != "" {
		t.Errorf("the coordinator's view of ams changed during the partition: %s", flaps)
	}
}

// noFailureSeen: no target confirmed down, no incident (no false alarm),
// no failure report: the handovers made none.
func (s *stack) noFailureSeen() {
	t := s.t
	var incs []json.RawMessage
	getJSON(t, s.coordURL+"/api/v1/incidents?state=all", &incs)
	if len(incs) != 0 {
		t.Errorf("the coordinator has %d incidents, want none; the first: %s", len(incs), incs[0])
	}
	for series, n := range metrics(t, s.coordURL, "vantage_coordinator_reports_received_total{") {
		if n > 0 && !strings.Contains(series, `state="recovered"`) {
			t.Errorf("the coordinator received %s = %v, want no failure reports", series, n)
		}
	}
}

// sampleLocation polls the coordinator's view of the locations every
// 200ms until the returned function is called; that returns what
// changed: ams not healthy, or not exactly one location.
func sampleLocation(t *testing.T, coordURL string) func() string {
	done := make(chan struct{})
	result := make(chan string, 1)
	go func() {
		var bad []string
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				result <- strings.Join(bad, "; ")
				return
			case <-tick.C:
			}
			var locs []struct {
				Name    string `json:"name"`
				Healthy bool   `json:"healthy"`
			}
			resp, err := http.Get(coordURL + "/api/v1/locations")
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			err = json.NewDecoder(resp.Body).Decode(&locs)
			resp.Body.Close()
			if err != nil || len(locs) != 1 || !locs[0].Healthy {
				bad = append(bad, fmt.Sprintf("%s: %+v %v", time.Now().Format("15:04:05.000"), locs, err))
			}
		}
	}()
	return func() string { close(done); return <-result }
}

// get returns the body of a GET of url.
func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal(get(t, url), v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
