package soak

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
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

	"github.com/vantageprobe/vantage/internal/testbin"
)

// process is a vantage-exporter or vantage-coordinator the test started.
type process struct {
	*testbin.Process
	base string // http://host:port
}

// logLines is how many lines of a process's log a finding quotes.
const logLines = 20

// startProcess starts bin with args and waits until /-/ready answers.
func startProcess(t *testing.T, name, bin, addr string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--web.listen-address=" + addr}, args...)...)
	// GOTRACEBACK=all: a SIGQUIT (sent only to collect evidence of a
	// leak) dumps every goroutine.
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	base := "http://" + addr
	return &process{Process: testbin.StartReady(t, name, cmd, base+"/-/ready"), base: base}
}

// logLevels counts the log lines of the process by level (logfmt level=).
func (p *process) logLevels() (map[string]int, []string) {
	counts := map[string]int{}
	var errs []string
	for line := range strings.Lines(p.Out.String()) {
		_, rest, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "level=")
		if !ok {
			continue
		}
		level, _, _ := strings.Cut(rest, " ")
		counts[level]++
		if level == "ERROR" && len(errs) < 10 {
			errs = append(errs, strings.TrimSuffix(line, "\n"))
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
	before := len(p.Out.String())
	_ = p.Signal(syscall.SIGQUIT)
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		p.Kill()
	}
	dump := []byte(p.Out.String()[before:])
	path = filepath.Join(dir, p.Name+"-goroutines.txt")
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
			pid, name = p.Pid(), p.Name
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
			name, key = p.Name, p.Name
		}
		parts = append(parts, fmt.Sprintf("%s %.2f", name, (b.procs[key]-a.procs[key])/secs))
	}
	busy := 0.0
	if b.total > a.total {
		busy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return fmt.Sprintf("cores used: %s; machine %.0f%% busy", strings.Join(parts, ", "), 100*busy)
}
