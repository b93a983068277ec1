// Package testbin holds the helpers of tests that run vantage's programs,
// as child processes or in the test process, once: Build, FreeAddr,
// WaitFor, Start and StartReady (a child process, its output, its stop),
// and Serve (a program's Run in the test process).
//
// Every wait here is bounded in time, and a wait for a program also ends
// as soon as the program exits: a helper must not hang when the thing
// under test fails.
package testbin

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Build compiles the packages (e.g. "./cmd/vantage-exporter") of this
// module into a temporary directory with the go command running the test,
// and returns the binaries' paths in the same order.
func Build(tb testing.TB, pkgs ...string) []string {
	tb.Helper()
	dir := tb.TempDir()
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)
	cmd := exec.Command("go", args...)
	cmd.Dir = ModuleRoot(tb)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := make([]string, len(pkgs))
	for i, p := range pkgs {
		bins[i] = filepath.Join(dir, filepath.Base(p))
	}
	return bins
}

// ModuleRoot returns the directory of this module's go.mod.
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		tb.Fatalf("finding the module root with go env GOMOD: %v (%q)", err, gomod)
	}
	return filepath.Dir(gomod)
}

// FreeAddr returns a 127.0.0.1 address with a port nothing listens on,
// for a program whose address must be known before it starts. The port is
// drawn at random below the kernel's ephemeral range (32768 and up on
// Linux), so neither another test's ":0" listener nor the local end of an
// outgoing connection takes it before the program binds it. Another
// process could still take it in between; a program then fails to start
// and says so. For a target whose connections must be refused, use
// RefusedAddr, which holds its port.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePortLow+rand.IntN(freePortHigh-freePortLow)))
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			continue // taken
		}
		if err := l.Close(); err != nil {
			tb.Fatal(err)
		}
		return addr
	}
	tb.Fatalf("no free port between %d and %d after 200 tries", freePortLow, freePortHigh)
	return ""
}

// WriteFile writes content to path (mode 0600), failing tb on error: a
// test's configuration files.
func WriteFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// The ports FreeAddr draws from.
const (
	freePortLow  = 10000
	freePortHigh = 32768
)

// Output collects a process's (or a logger's) output, safe for concurrent
// writers.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Tail returns the last n lines written.
func (o *Output) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(o.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[… %d earlier lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
