//go:build linux

package prober

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// fullBacklogAddr returns a loopback address whose listener never accepts
// and whose accept queue is full, so Linux drops further SYNs and a connect
// to it hangs until the caller's deadline.
func fullBacklogAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the accept queue; once it is full a dial blocks.
	for range 8 {
		c, err := net.DialTimeout("tcp4", addr, 100*time.Millisecond)
		if err != nil {
			return addr
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("the accept queue never filled; cannot provoke a connect timeout here")
	return ""
}

func TestHTTPConnectTimeout(t *testing.T) {
	addr := fullBacklogAddr(t)
	const deadline = 300 * time.Millisecond
	start := time.Now()
	r := httpTestProbe(t, httpTestModule(nil), "http://"+addr+"/", Params{}, deadline)
	requireReason(t, r, result.ReasonConnectTimeout)
	if elapsed := time.Since(start); elapsed > deadline+time.Second {
		t.Errorf("probe took %v with a %v deadline", elapsed, deadline)
	}
	if c := r.PhaseDuration("connect"); c < deadline/2 {
		t.Errorf("connect phase %v; the probe waited in connect until its deadline", c)
	}
}
