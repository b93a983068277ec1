package soak

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// process is a vantage-exporter or vantage-coordinator the test started.
type process struct {
	name string
	base string // http://host:port
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's result, once done is closed
}

// startProcess starts bin with args in its own process group, logging to
// <dir>/<name>.log, and waits until /-/ready answers. The child gets
// SIGKILL should the test process die without stopping it.
func startProcess(t *testing.T, dir, name, bin, addr string, args ...string) *process {
	t.Helper()
	p := &process{name: name, base: "http://" + addr, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	lf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(bin, append([]string{"--web.listen-address=" + addr}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	// GOTRACEBACK=all: a SIGQUIT (sent only to collect evidence of a
	// leak) dumps every goroutine.
	p.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(p.base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if p.exited() {
			t.Fatalf("%s exited before it was ready (%v); its log ends:\n%s", name, p.err, p.logTail(2000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s after 30s; its log ends:\n%s", name, p.base, p.logTail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace; it returns how the process
// ended, or an error when it had to be killed.
func (p *process) stop(grace time.Duration) (time.Duration, error) {
	if p.exited() {
		return 0, fmt.Errorf("%s had already exited: %v", p.name, p.err)
	}
	start := time.Now()
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(start), p.err
	case <-time.After(grace):
		p.kill()
		return time.Since(start), fmt.Errorf("%s did not stop within %s of SIGTERM; killed", p.name, grace)
	}
}

// kill ends the process group at once (cleanup after a failure).
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	<-p.done
}

// logTail returns the last n bytes of the process's log.
func (p *process) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}

// logLevels counts the log lines of the process by level (logfmt level=).
func (p *process) logLevels() (map[string]int, []string) {
	f, err := os.Open(p.log)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	counts := map[string]int{}
	var errs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		_, rest, ok := strings.Cut(line, "level=")
		if !ok {
			continue
		}
		level, _, _ := strings.Cut(rest, " ")
		counts[level]++
		if level == "ERROR" && len(errs) < 10 {
			errs = append(errs, line)
		}
	}
	return counts, errs
}

// procStatus reads VmRSS and VmHWM (peak RSS) of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, _ := strconv.ParseInt(f[0], 10, 64)
		switch name {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// connsTo counts the established TCP connections of pid to each of
// addrs (host:port, IPv4), from /proc: the sockets among pid's file
// descriptors whose remote end is that address.
func connsTo(pid int, addrs []string) ([]int, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	want := map[string]int{}
	for i, a := range addrs {
		hex, err := procNetAddr(a)
		if err != nil {
			return nil, err
		}
		want[hex] = i
	}
	table, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, err
	}
	out := make([]int, len(addrs))
	for line := range strings.SplitSeq(string(table), "\n") {
		f := strings.Fields(line)
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
		if len(f) < 10 || f[3] != "01" || !inodes[f[9]] {
			continue
		}
		if i, ok := want[f[2]]; ok {
			out[i]++
		}
	}
	return out, nil
}

// procNetAddr renders an IPv4 host:port as /proc/net/tcp does.
func procNetAddr(addr string) (string, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return "", fmt.Errorf("%q is no IPv4 address and port", addr)
	}
	ip := ap.Addr().As4()
	return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ap.Port()), nil
}

// goroutineDump makes the process dump its goroutines (SIGQUIT, which
// also ends it), saves the dump to dir and returns a summary: goroutine
// counts by the function they were created by and the frame they wait in.
func (p *process) goroutineDump(dir string) (path, summary string) {
	before, _ := os.ReadFile(p.log)
	_ = syscall.Kill(p.pid(), syscall.SIGQUIT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
	after, _ := os.ReadFile(p.log)
	dump := after[min(len(before), len(after)):]
	path = filepath.Join(dir, p.name+"-goroutines.txt")
	_ = os.WriteFile(path, dump, 0o644)
	return path, summarizeDump(dump)
}

var goroutineHeader = regexp.MustCompile(`^goroutine \d+ [^\[]*\[([^,\]]+)`)

// summarizeDump groups the goroutines of a traceback by state, top frame
// and creator, largest groups first.
func summarizeDump(dump []byte) string {
	type group struct {
		key string
		n   int
	}
	counts := map[string]int{}
	total := 0
	for block := range bytes.SplitSeq(dump, []byte("\n\n")) {
		lines := strings.Split(strings.TrimSpace(string(block)), "\n")
		m := goroutineHeader.FindStringSubmatch(lines[0])
		if m == nil {
			continue
		}
		total++
		var frames []string
		creator := ""
		for _, l := range lines[1:] {
			switch {
			case strings.HasPrefix(l, "\t"):
			case strings.HasPrefix(l, "created by "):
				creator, _, _ = strings.Cut(strings.TrimPrefix(l, "created by "), " in goroutine")
			default:
				// pkg.(*T).method.func1(args): drop the arguments only.
				fn := l
				if i := strings.LastIndex(l, "("); i > 0 && strings.HasSuffix(l, ")") {
					fn = l[:i]
				}
				frames = append(frames, fn)
			}
		}
		top := ""
		for _, fn := range frames {
			if !isWaitFrame(fn) {
				top = fn
				break
			}
		}
		if top == "" && len(frames) > 0 {
			top = frames[0]
		}
		counts[fmt.Sprintf("[%s] %s ← %s", m[1], top, creator)]++
	}
	groups := make([]group, 0, len(counts))
	for k, n := range counts {
		groups = append(groups, group{k, n})
	}
	slices.SortFunc(groups, func(a, b group) int { return cmp.Or(b.n-a.n, strings.Compare(a.key, b.key)) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d goroutines; largest groups (count [state] frame ← created by):\n", total)
	for _, g := range groups[:min(len(groups), 20)] {
		fmt.Fprintf(&b, "  %5d %s\n", g.n, g.key)
	}
	return b.String()
}

// isWaitFrame tells the frames a goroutine waits in (the runtime's,
// sync's, syscall's, a read's or write's) from the code that made it wait.
func isWaitFrame(fn string) bool {
	for _, p := range []string{"runtime.", "internal/", "sync.", "syscall.", "time.Sleep", "net.", "bufio.", "io.", "crypto/tls."} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return false
}

// waitCtx sleeps d unless ctx ends first.
func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cpuSeconds is the CPU time (user and system) pid has used, from
// /proc/<pid>/stat; utime and stime are in USER_HZ, 100 a second on
// every Linux architecture Go supports.
func cpuSeconds(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, stat)
	}
	// f[0] is field 3 (state): utime is field 14, stime 15.
	utime, _ := strconv.ParseInt(f[14-3], 10, 64)
	stime, _ := strconv.ParseInt(f[15-3], 10, 64)
	return float64(utime+stime) / 100, nil
}

// machineBusy returns the busy and total CPU ticks of the machine (the
// "cpu" line of /proc/stat; idle and iowait are not busy).
func machineBusy() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, v := range strings.Fields(line)[1:] {
		if i >= 8 { // guest and guest_nice are counted in user and nice
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// cpuMark is the CPU time of every process at one moment.
type cpuMark struct {
	at          time.Time
	procs       map[string]float64 // by process name; "test" is this process (target server, driver)
	busy, total int64
}

func markCPU(procs []*process) cpuMark {
	m := cpuMark{at: time.Now(), procs: map[string]float64{}}
	for _, p := range append(procs, nil) {
		pid, name := os.Getpid(), "test"
		if p != nil {
			pid, name = p.pid(), p.name
		}
		if s, err := cpuSeconds(pid); err == nil {
			m.procs[name] = s
		}
	}
	m.busy, m.total = machineBusy()
	return m
}

// describeCPU says how many cores each process used between a and b, and
// how busy the whole machine was.
func describeCPU(procs []*process, a, b cpuMark) string {
	secs := b.at.Sub(a.at).Seconds()
	var parts []string
	for _, p := range append(procs, nil) {
		name := "test process (target server, measurements)"
		key := "test"
		if p != nil {
			name, key = p.name, p.name
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", name, (b.procs[key]-a.procs[key])/secs))
	}
	busy := 0.0
	if b.total > a.total {
		busy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return fmt.Sprintf("cores used: %s; machine %.0f%% busy", strings.Join(parts, ", "), 100*busy)
}
