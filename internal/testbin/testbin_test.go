package testbin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the child process of the tests below: with
// TESTBIN_HELPER set it behaves as that mode says instead of testing.
func TestMain(m *testing.M) {
	if mode := os.Getenv("TESTBIN_HELPER"); mode != "" {
		helper(mode)
		return
	}
	os.Exit(m.Run())
}

func helper(mode string) {
	switch mode {
	case "exit": // fails at once, saying why
		fmt.Fprintln(os.Stderr, "boom: no configuration")
		os.Exit(3)
	case "silent": // runs and never answers
		select {}
	case "serve", "ignore-term": // answers on TESTBIN_ADDR; exits 0 on SIGTERM, or ignores it
		term := make(chan os.Signal, 1)
		if mode == "serve" {
			signal.Notify(term, syscall.SIGTERM)
		} else {
			signal.Ignore(syscall.SIGTERM)
		}
		l, err := net.Listen("tcp4", os.Getenv("TESTBIN_ADDR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("listening on", l.Addr())
		go func() { _ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
		<-term
		os.Exit(0)
	}
	os.Exit(2)
}

// helperCmd runs the test binary in mode, listening on addr.
func helperCmd(mode, addr string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TESTBIN_HELPER="+mode, "TESTBIN_ADDR="+addr)
	return cmd
}

// fakeTB records what a helper reports; Fatal ends the helper's goroutine
// as testing.T's does.
type fakeTB struct {
	testing.TB // the real test, for what fakeTB does not record
	mu         sync.Mutex
	fatal      string
	errors     []string
	cleanups   []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func (f *fakeTB) Error(args ...any) { f.Errorf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeTB) Failed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal != "" || len(f.errors) > 0
}

func (f *fakeTB) Logf(string, ...any) {}

func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// runFake runs body with a fakeTB on its own goroutine, as a test, then
// its cleanups; the whole must end within limit.
func runFake(t *testing.T, limit time.Duration, body func(tb testing.TB)) (*fakeTB, time.Duration) {
	t.Helper()
	f := &fakeTB{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			for i := len(f.cleanups) - 1; i >= 0; i-- {
				f.cleanups[i]()
			}
		}()
		body(f)
	}()
	select {
	case <-done:
	case <-time.After(limit):
		t.Fatalf("the helper still runs after %s: it hangs", limit)
	}
	return f, time.Since(start)
}

func TestStartReadyFailsFastWithTheOutputOfAProcessThatExits(t *testing.T) {
	f, took := runFake(t, ReadyTimeout/2, func(tb testing.TB) {
		StartReady(tb, "failing", helperCmd("exit", ""), "http://"+FreeAddr(t)+"/-/ready")
		tb.Errorf("StartReady returned")
	})
	for _, want := range []string{"failing not ready", "failing exited (exit status 3)", "boom: no configuration"} {
		if !strings.Contains(f.fatal, want) {
			t.Errorf("fatal message %q does not contain %q", f.fatal, want)
		}
	}
	if took > 5*time.Second {
		t.Errorf("StartReady took %s to notice the exit", took)
	}
	if len(f.errors) > 0 {
		t.Errorf("errors: %q", f.errors)
	}
}

func TestWaitReadyTimesOut(t *testing.T) {
	p := Start(t, "silent", helperCmd("silent", ""))
	start := time.Now()
	err := p.WaitReady("http://"+FreeAddr(t)+"/-/ready", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("WaitReady of a process that never answers = %v, want a timeout with the last error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("WaitReady with a 300ms timeout took %s", took)
	}
	if p.Exited() {
		t.Error("WaitReady ended the process")
	}
}

func TestStartReadyThenStop(t *testing.T) {
	addr := FreeAddr(t)
	p := StartReady(t, "server", helperCmd("serve", addr), "http://"+addr+"/")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("StartReady returned but the server does not answer: %v", err)
	}
	resp.Body.Close()
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop = %v, want nil for an exit 0 on SIGTERM", err)
	}
	if !p.Exited() || p.ExitCode() != 0 || p.Err() != nil {
		t.Errorf("after Stop: exited %t, exit code %d, error %v; want exited, 0, nil", p.Exited(), p.ExitCode(), p.Err())
	}
	if out := p.Out.String(); !strings.Contains(out, "listening on "+addr) {
		t.Errorf("output %q lacks what the process printed", out)
	}
	if err := p.Stop(time.Second); err == nil {
		t.Error("Stop of a stopped process = nil, want an error saying it had exited")
	}
}

func TestStopKillsAProcessThatIgnoresSIGTERM(t *testing.T) {
	addr := FreeAddr(t)
	p := StartReady(t, "stubborn", helperCmd("ignore-term", addr), "http://"+addr+"/")
	start := time.Now()
	err := p.Stop(200 * time.Millisecond)
	if !errors.Is(err, ErrKilled) {
		t.Errorf("Stop = %v, want ErrKilled", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Stop with a 200ms grace took %s", took)
	}
	if !p.Exited() || p.ExitCode() != -1 {
		t.Errorf("after the kill: exited %t, exit code %d; want exited, -1", p.Exited(), p.ExitCode())
	}
}

func TestStartFailsWhenTheBinaryIsMissing(t *testing.T) {
	f, _ := runFake(t, 5*time.Second, func(tb testing.TB) {
		Start(tb, "missing", exec.Command("/nonexistent/vantage"))
	})
	if !strings.Contains(f.fatal, "starting missing") {
		t.Errorf("fatal message %q, want one about starting missing", f.fatal)
	}
}

func TestWaitFor(t *testing.T) {
	calls := 0
	WaitFor(t, "the third call", time.Second, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}

	f, took := runFake(t, 5*time.Second, func(tb testing.TB) {
		WaitFor(tb, "what never comes", 200*time.Millisecond, func() error { return errors.New("saw 41, want 42") })
		tb.Errorf("WaitFor returned")
	})
	if want := "waiting for what never comes: timed out after 200ms; last: saw 41, want 42"; f.fatal != want {
		t.Errorf("fatal message %q, want %q", f.fatal, want)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("WaitFor with a 200ms timeout took %s", took)
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	if c, err := net.DialTimeout("tcp4", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s", addr)
	}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("%s is not bindable: %v", addr, err)
	}
	l.Close()
	if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
		t.Errorf("FreeAddr = %s, want 127.0.0.1", addr)
	}
}

// listening is a Run function that listens on loopback until ctx ends.
func listening(ctx context.Context, started func([]net.Addr)) error {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	started([]net.Addr{l.Addr()})
	<-ctx.Done()
	return nil
}

func TestServe(t *testing.T) {
	s := Serve(t, "listening", listening)
	if c, err := net.DialTimeout("tcp4", strings.TrimPrefix(s.URL, "http://"), time.Second); err != nil {
		t.Errorf("Serve returned %s, which refuses: %v", s.URL, err)
	} else {
		c.Close()
	}
	if err := s.Stop(); err != nil {
		t.Errorf("Stop = %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

func TestServeFailsFastWhenRunReturns(t *testing.T) {
	f, took := runFake(t, 5*time.Second, func(tb testing.TB) {
		Serve(tb, "broken", func(context.Context, func([]net.Addr)) error { return errors.New("bad config") })
		tb.Errorf("Serve returned")
	})
	if f.fatal != "broken did not start: bad config" || len(f.errors) > 0 {
		t.Errorf("fatal %q, errors %q; want only \"broken did not start: bad config\"", f.fatal, f.errors)
	}
	if took > time.Second {
		t.Errorf("Serve took %s to notice run's return", took)
	}
}

func TestServeBoundsStartAndStop(t *testing.T) {
	f, took := runFake(t, 5*time.Second, func(tb testing.TB) {
		serve(tb, "mute", func(ctx context.Context, _ func([]net.Addr)) error { <-ctx.Done(); return nil }, 200*time.Millisecond, time.Second)
	})
	if f.fatal != "mute did not start within 200ms" || len(f.errors) > 0 {
		t.Errorf("fatal %q, errors %q; want only \"mute did not start within 200ms\"", f.fatal, f.errors)
	}
	if took > 2*time.Second {
		t.Errorf("a server that never starts held Serve for %s", took)
	}

	release := make(chan struct{})
	defer close(release)
	f, took = runFake(t, 5*time.Second, func(tb testing.TB) {
		serve(tb, "deaf", func(_ context.Context, started func([]net.Addr)) error {
			started(nil)
			<-release // ignores its context
			return nil
		}, time.Second, 200*time.Millisecond)
	})
	if len(f.errors) != 1 || f.errors[0] != "deaf did not stop within 200ms" {
		t.Errorf("errors %q, want the one of a server that does not stop", f.errors)
	}
	if took > 2*time.Second {
		t.Errorf("a server that does not stop held the cleanup for %s", took)
	}
}

func TestRefusedAddrRefuses(t *testing.T) {
	addr := RefusedAddr(t)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("a connection to %s was accepted", addr)
	}
	if l, err := net.Listen("tcp4", addr); err == nil {
		l.Close()
		t.Fatalf("another listener could take %s", addr)
	}
}
