package prober

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
)

// Helpers shared by the hostile_*_test.go files: probes of targets that
// misbehave on purpose, each of which must end by its deadline, with the
// right reason, in bounded memory and without leaving a goroutine or a file
// descriptor behind.

// The deadlines of hostile probes: hostileDeadline when the target stalls
// and the probe must wait for the deadline; hostileQuickDeadline when the
// failure shows at once and the probe must not wait (requireTiming).
const (
	hostileDeadline      = 300 * time.Millisecond
	hostileQuickDeadline = 2 * time.Second
)

// deadlineFor returns the deadline of a probe of a target that stalls or
// not.
func deadlineFor(stalls bool) time.Duration {
	if stalls {
		return hostileDeadline
	}
	return hostileQuickDeadline
}

// hostileMargin is how long after its deadline a probe may still return:
// the time to notice the deadline and unwind, with the race detector on a
// loaded machine.
const hostileMargin = 300 * time.Millisecond

// hostileHeapFloor bounds the heap a probe holds when what it keeps does
// not grow with what the target sends: its garbage alone may reach the
// collector's minimum heap goal (4 MiB) before a collection.
const hostileHeapFloor = 8 << 20

// checkNoLeaks records the goroutines and open file descriptors now and, when
// the test ends, fails it unless both come back to at most that within a
// short settle time. Call it first in a test: cleanups run last-in first-out,
// so the check then runs after the test's servers have been closed.
func checkNoLeaks(tb testing.TB) {
	tb.Helper()
	// Start what the runtime starts lazily on the first network use (the
	// netpoller's descriptors), so it is not counted as a leak.
	if ln, err := net.Listen("tcp4", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs()
	tb.Cleanup(func() {
		var g, f int
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			g, f = runtime.NumGoroutine(), openFDs()
			if (g <= goroutines && f <= fds) || time.Now().After(deadline) {
				break
			}
		}
		tb.Logf("leaks: goroutines %d -> %d, fds %d -> %d", goroutines, g, fds, f)
		if g > goroutines {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			tb.Errorf("%d goroutines after the test, %d before:\n%s", g, goroutines, buf)
		}
		if f > fds {
			tb.Errorf("%d open file descriptors after the test, %d before", f, fds)
		}
	})
}

// openFDs counts the process's open file descriptors; -1 where /proc is
// not available, which makes the comparison vacuous.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// hostileOutcome is one probe of a hostile target and what it cost.
type hostileOutcome struct {
	r        *result.Result
	deadline time.Duration
	elapsed  time.Duration
	// alloc is the bytes allocated while the probe ran (TotalAlloc delta),
	// by the prober and by the in-process server: the churn. peak is the
	// highest HeapInuse seen while it ran, above the level before it,
	// sampled every few milliseconds: the memory it held.
	alloc uint64
	peak  uint64
}

// probeHostile probes target with m, whose module timeout is set to
// deadline (the caller's context allows ten times as long, so the module's
// own deadline is what ends the probe), and measures the probe.
func probeHostile(tb testing.TB, m config.Module, target string, deadline time.Duration) hostileOutcome {
	tb.Helper()
	m.Timeout = deadline
	mod, err := Prepare("hostile", m)
	if err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*deadline)
	defer cancel()
	// Logging is off: the figures are the prober's, not the debug log's.
	p := Params{Logger: slog.New(slog.DiscardHandler)}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	peak := make(chan uint64)
	go func() { peak <- sampleHeapInuse(done) }()
	start := time.Now()
	r := mod.Probe(ctx, target, p)
	elapsed := time.Since(start)
	close(done)
	maxInuse := <-peak
	runtime.ReadMemStats(&after)
	o := hostileOutcome{
		r:        r,
		deadline: deadline,
		elapsed:  elapsed,
		alloc:    after.TotalAlloc - before.TotalAlloc,
	}
	if maxInuse > before.HeapInuse {
		o.peak = maxInuse - before.HeapInuse
	}
	tb.Logf("outcome: reason=%q elapsed=%v deadline=%v peak heap=%s alloc=%s error=%q",
		r.Reason, elapsed.Round(time.Millisecond), deadline, kib(o.peak), kib(o.alloc), r.Error)
	return o
}

// sampleHeapInuse returns the highest HeapInuse it saw until done closed.
func sampleHeapInuse(done <-chan struct{}) uint64 {
	var maxInuse uint64
	var ms runtime.MemStats
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		runtime.ReadMemStats(&ms)
		maxInuse = max(maxInuse, ms.HeapInuse)
		select {
		case <-done:
			return maxInuse
		case <-t.C:
		}
	}
}

// requireBounded fails unless the probe failed with want, returned by its
// deadline plus hostileMargin, and held at most maxHeap bytes of heap.
func (o hostileOutcome) requireBounded(tb testing.TB, want result.Reason, maxHeap uint64) {
	tb.Helper()
	requireReason(tb, o.r, want)
	if o.elapsed > o.deadline+hostileMargin {
		tb.Errorf("probe took %v with a %v deadline", o.elapsed, o.deadline)
	}
	if o.peak > maxHeap {
		tb.Errorf("probe held %s of heap, want at most %s", kib(o.peak), kib(maxHeap))
	}
	if s := seriesOfResult(o.r); s["probe_success"] != 0 || s[`probe_failure_info{reason="`+string(want)+`"}`] != 1 {
		tb.Errorf("series do not show the failure %q: %v", want, s)
	}
}

// requireTiming fails unless a probe of a target that stalls waited for
// its deadline (the target is given the whole time, not abandoned early),
// and a probe of one that does not ended within half of it.
func (o hostileOutcome) requireTiming(tb testing.TB, stalls bool) {
	tb.Helper()
	switch {
	case stalls && o.elapsed < o.deadline*9/10:
		tb.Errorf("probe returned after %v, before its %v deadline", o.elapsed, o.deadline)
	case !stalls && o.elapsed > o.deadline/2:
		tb.Errorf("probe took %v; nothing here waits for the %v deadline", o.elapsed, o.deadline)
	}
}

func kib(n uint64) string { return fmt.Sprintf("%dKiB", n>>10) }

// hostileServer is a raw TCP server on 127.0.0.1:0 whose handler does what
// a misbehaving target does. Bytes the handler writes are counted. Once the
// handler returns the server keeps reading the connection until the peer
// closes it, so a test can check the prober closed every connection it
// opened (waitClosed). At the end of the test the server stops its
// handlers (the stop channel), closes every connection and waits for them.
type hostileServer struct {
	addr    string
	stop    chan struct{}
	written atomic.Int64 // bytes written by the handlers
	open    atomic.Int32 // connections neither side has closed yet
	wg      sync.WaitGroup

	mu       sync.Mutex
	conns    []net.Conn
	accepted int
}

func newHostileServer(tb testing.TB, handle func(c net.Conn, stop <-chan struct{})) *hostileServer {
	tb.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &hostileServer{addr: ln.Addr().String(), stop: make(chan struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.accepted++
			s.mu.Unlock()
			s.open.Add(1)
			s.wg.Go(func() {
				defer s.open.Add(-1)
				hc := &hostileConn{Conn: c, written: &s.written}
				handle(hc, s.stop)
				if !hc.closed.Load() {
					// Until the prober closes its side (or the test ends).
					var buf [512]byte
					for {
						if _, err := c.Read(buf[:]); err != nil {
							break
						}
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		close(s.stop)
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// waitClosed fails unless every connection the server accepted is closed,
// by the prober or by the handler, shortly after the probe returned, so
// the prober leaves no socket open to a target that keeps talking.
func (s *hostileServer) waitClosed(tb testing.TB) {
	tb.Helper()
	for deadline := time.Now().Add(2 * time.Second); s.open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := s.open.Load(); n > 0 {
		tb.Errorf("%d of the prober's connections still open after the probe", n)
	}
}

func (s *hostileServer) acceptedConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// hostileConn counts what its handler writes and whether it closed it.
type hostileConn struct {
	net.Conn
	written *atomic.Int64
	closed  atomic.Bool
}

func (c *hostileConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *hostileConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// trickle writes prefix, then unit every interval, until a write fails
// (the prober went away) or stop is closed.
func trickle(c net.Conn, stop <-chan struct{}, prefix, unit string, every time.Duration) {
	if _, err := c.Write([]byte(prefix)); err != nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := c.Write([]byte(unit)); err != nil {
			return
		}
	}
}

// flood writes prefix, then chunk as fast as the prober reads, until a
// write fails or stop is closed.
func flood(c net.Conn, stop <-chan struct{}, prefix string, chunk []byte) {
	if _, err := c.Write([]byte(prefix)); err != nil {
		return
	}
	for {
		select {
		case <-stop:
			return
		default:
		}
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// stallTLS is a handler that accepts TCP and never answers the
// ClientHello.
func stallTLS(net.Conn, <-chan struct{}) {}

// serveTLSHandshake is a handler that runs the server side of a TLS
// handshake with cfg; the probes here give up during it.
func serveTLSHandshake(cfg *tls.Config) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, stop <-chan struct{}) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err == nil {
			// Not expected: hold the session open until the prober closes.
			var buf [512]byte
			for {
				if _, err := tc.Read(buf[:]); err != nil {
					return
				}
			}
		}
	}
}
