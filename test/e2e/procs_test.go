package e2e

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// Debian's binaries, and the packages that install them.
var debianTools = []struct{ path, pkg string }{
	{prometheusBinary, "prometheus"},
	{alertmanagerBinary, "prometheus-alertmanager"},
}

const (
	prometheusBinary   = "/usr/bin/prometheus"
	alertmanagerBinary = "/usr/bin/prometheus-alertmanager"
)

const (
	// readyWithin bounds the start of one program.
	readyWithin = 30 * time.Second
	// stopWithin is how long a program gets to exit after SIGTERM.
	stopWithin = 10 * time.Second
	// logTail is how many lines of a program's output are shown on failure.
	logTail = 60
)

// mustDebianTools fails the test when Debian's Prometheus or Alertmanager
// is missing: the end-to-end test is about running with them.
func mustDebianTools(t *testing.T) {
	t.Helper()
	for _, tool := range debianTools {
		if _, err := os.Stat(tool.path); err != nil {
			t.Fatalf("%s is missing (%v): the end-to-end test runs Debian's build; install the Debian package %s (apt-get install %s)",
				tool.path, err, tool.pkg, tool.pkg)
		}
	}
}

// process is one program of the stack running as a child process.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *testbin.Output

	mu       sync.Mutex
	ready    bool // it answered its readiness check
	stopping bool
	exited   chan struct{} // closed when the process has exited
	err      error         // its exit status, once exited
}

// procs are the stack's processes, in start order.
type procs struct {
	t    *testing.T
	list []*process
}

// start runs bin with args and env (added to the test's environment minus
// any OTEL_* variable), and stops it when the test ends: SIGTERM, then
// SIGKILL after stopWithin. When the test failed, the tail of its output
// is logged. vantage programs must exit 0 on SIGTERM.
func (ps *procs) start(name, bin string, args, env []string) *process {
	t := ps.t
	t.Helper()
	p := &process{name: name, out: &testbin.Output{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.Env = append(environWithoutOTEL(), env...)
	// Killed with the test binary even if it dies without cleaning up.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s (%s): %v", name, bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.exited)
	}()
	ps.list = append(ps.list, p)
	t.Cleanup(func() {
		early := p.exitedEarly()
		err, clean := p.stop()
		p.mu.Lock()
		ready := p.ready
		p.mu.Unlock()
		switch {
		case early:
			// Reported by checkAlive.
		case !clean:
			t.Errorf("%s did not exit within %s of SIGTERM; killed", name, stopWithin)
		case err != nil && ready && strings.HasPrefix(name, "vantage"):
			t.Errorf("%s exited with %v on SIGTERM, want 0", name, err)
		}
		if t.Failed() {
			t.Logf("output of %s (%s):\n%s", name, strings.Join(p.cmd.Args, " "), p.out.Tail(logTail))
		}
	})
	return p
}

func environWithoutOTEL() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and waits; it reports the exit status and whether the
// process exited on its own within stopWithin.
func (p *process) stop() (error, bool) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	select {
	case <-p.exited:
		return p.exitErr(), true
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitErr(), true
	case <-time.After(stopWithin):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return p.exitErr(), false
	}
}

func (p *process) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// exitedEarly reports whether the process exited while it should run.
func (p *process) exitedEarly() bool {
	select {
	case <-p.exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return !p.stopping
	default:
		return false
	}
}

// checkAlive fails the test at once, with the program's output, when a
// process of the stack has exited.
func (ps *procs) checkAlive(t testing.TB) {
	t.Helper()
	for _, p := range ps.list {
		if p.exitedEarly() {
			t.Fatalf("%s exited early (%v); its output:\n%s", p.name, p.exitErr(), p.out.Tail(logTail))
		}
	}
}

// waitFor polls cond until it holds, at most limit; every poll also checks
// that no process of the stack has exited. cond returns whether it holds
// and, when not, what it saw (for the failure message). It returns how
// long the wait took.
func (ps *procs) waitFor(t testing.TB, what string, limit time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ps.checkAlive(t)
		ok, saw := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("timed out after %s waiting for %s; last seen: %s", limit, what, saw)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReady waits until GET url of p answers 200.
func (ps *procs) waitReady(t testing.TB, p *process, url string) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	ps.waitFor(t, p.name+" ready at "+url, readyWithin, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	p.mu.Lock()
	p.ready = true
	p.mu.Unlock()
}

func mustListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		t.Fatal(err)
	}
	return path
}
