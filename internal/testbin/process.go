package testbin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// ReadyTimeout bounds the start of a program: StartReady's wait for its
	// readiness URL, Serve's wait for its listeners.
	ReadyTimeout = 30 * time.Second
	// StopGrace is how long a program gets to end, after SIGTERM or after
	// its context is cancelled, when the test ends.
	StopGrace = 10 * time.Second
	// LogTail is how many lines of a process's output a failure shows.
	LogTail = 60
)

// ErrKilled is the error of Stop when the process had to be killed.
var ErrKilled = errors.New("killed")

// Process is a program the test runs as a child process.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	// Out collects what the process writes to stdout and stderr (unless
	// the caller set cmd.Stdout or cmd.Stderr).
	Out *Output

	group  bool            // it leads its own process group
	done   chan struct{}   // closed when it has exited
	err    error           // Wait's result, once done is closed
	exited context.Context // cancelled, with the exit as cause, when done is closed
	cancel context.CancelCauseFunc
}

// Start starts cmd, named name in messages, and stops it when the test
// ends (Stop with StopGrace), logging the tail of its output if the test
// failed. Unless the caller set cmd.SysProcAttr, the process leads its own
// process group (Kill ends its children too) and gets SIGKILL should the
// test process die without stopping it. A process that cannot start fails
// tb at once.
func Start(tb testing.TB, name string, cmd *exec.Cmd) *Process {
	tb.Helper()
	p := &Process{Name: name, Cmd: cmd, Out: &Output{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.Out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.Out
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	p.group = cmd.SysProcAttr.Setpgid
	if cmd.WaitDelay == 0 {
		// Wait returns even if a child of the process keeps its output open.
		cmd.WaitDelay = time.Second
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s (%s): %v", name, strings.Join(cmd.Args, " "), err)
	}
	p.exited, p.cancel = context.WithCancelCause(context.Background())
	go func() {
		err := cmd.Wait()
		p.err = err
		close(p.done)
		p.cancel(fmt.Errorf("%s exited (%s)", name, p.describeExit()))
	}()
	tb.Cleanup(func() {
		if !p.Exited() {
			_ = p.Stop(StopGrace)
		}
		if tb.Failed() {
			tb.Logf("output of %s (%s):\n%s", name, strings.Join(cmd.Args, " "), p.Out.Tail(LogTail))
		}
	})
	return p
}

// StartReady starts cmd like Start and waits until GET readyURL answers
// 200, for at most ReadyTimeout; it fails tb with the process's output
// when the process exits first or the time runs out.
func StartReady(tb testing.TB, name string, cmd *exec.Cmd, readyURL string) *Process {
	tb.Helper()
	p := Start(tb, name, cmd)
	if err := p.WaitReady(readyURL, ReadyTimeout); err != nil {
		tb.Fatal(err)
	}
	return p
}

// WaitReady polls GET url until it answers 200. It returns an error, with
// the tail of the process's output, when the process exits first or url
// does not answer 200 within timeout.
func (p *Process) WaitReady(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	_, err := poll(p.exited, timeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready at %s: %w; its output ends:\n%s", p.Name, url, err, p.Out.Tail(LogTail))
	}
	return nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit (exec.Cmd.Wait's error: nil for status 0),
// once it has exited; nil before.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// ExitCode is the process's exit status, or -1 while it runs or when a
// signal ended it.
func (p *Process) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.Cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits for the exit, at most grace; then it kills
// the process. It returns nil when the process exited with status 0 on
// SIGTERM, and otherwise an error saying how it ended (wrapping ErrKilled
// when it had to be killed).
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return fmt.Errorf("%s had exited before it was stopped (%s)", p.Name, p.describeExit())
	}
	_ = p.Signal(syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s exited on SIGTERM with %s", p.Name, p.describeExit())
		}
		return nil
	case <-timer.C:
		p.Kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM: %w", p.Name, grace, ErrKilled)
	}
}

// Kill sends SIGKILL (to the process group, when the process leads one)
// and waits until the process has exited.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	if p.group {
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	} else {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
}

// describeExit says how the process ended, e.g. "exit status 1" or
// "signal: killed"; once done is closed.
func (p *Process) describeExit() string {
	if p.Cmd.ProcessState == nil {
		return fmt.Sprint(p.err)
	}
	return p.Cmd.ProcessState.String()
}
