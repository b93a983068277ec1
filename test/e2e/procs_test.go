package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
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
	*testbin.Process
	ready bool // it answered its readiness check
}

// procs are the stack's processes, in start order.
type procs struct {
	t    *testing.T
	list []*process
}

// start runs bin with args and env (added to the test's environment minus
// any OTEL_* variable). When the test ends it is stopped, SIGTERM then
// SIGKILL after stopWithin: vantage programs must exit 0 then.
func (ps *procs) start(name, bin string, args, env []string) *process {
	t := ps.t
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(environWithoutOTEL(), env...)
	p := &process{Process: testbin.Start(t, name, cmd)}
	ps.list = append(ps.list, p)
	t.Cleanup(func() {
		if p.Exited() {
			return // reported by checkAlive
		}
		err := p.Stop(stopWithin)
		switch {
		case errors.Is(err, testbin.ErrKilled):
			t.Error(err)
		case err != nil && p.ready && strings.HasPrefix(name, "vantage"):
			t.Errorf("%v, want 0", err)
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

// checkAlive fails the test at once, with the program's output, when a
// process of the stack has exited.
func (ps *procs) checkAlive(t testing.TB) {
	t.Helper()
	for _, p := range ps.list {
		if p.Exited() {
			t.Fatalf("%s exited early (%v); its output:\n%s", p.Name, p.Err(), p.Out.Tail(testbin.LogTail))
		}
	}
}

// waitFor waits until cond holds, at most limit, with testbin.WaitFor;
// every poll also checks that no process of the stack has exited. cond
// returns whether it holds and, when not, what it saw. It returns how long
// the wait took.
func (ps *procs) waitFor(t testing.TB, what string, limit time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	return testbin.WaitFor(t, what, limit, func() error {
		ps.checkAlive(t)
		if ok, saw := cond(); !ok {
			return errors.New(saw)
		}
		return nil
	})
}

// waitReady waits until GET url of p answers 200.
func (ps *procs) waitReady(t testing.TB, p *process, url string) {
	t.Helper()
	if err := p.WaitReady(url, readyWithin); err != nil {
		t.Fatal(err)
	}
	p.ready = true
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
