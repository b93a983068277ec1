package scheduler

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// The workers are counted while they run or wait; those beyond
// maxIdleWorkers end once their check is done, the rest wait for the next
// check, and all end when done is closed.
func TestWorkersCounted(t *testing.T) {
	done := make(chan struct{})
	var live atomic.Int64
	w := newWorkers(done, &live)
	liveIs := func(want int64) func() error {
		return func() error {
			if got := live.Load(); got != want {
				return fmt.Errorf("%d workers live, want %d", got, want)
			}
			return nil
		}
	}

	n := maxIdleWorkers + 10
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	for range n {
		w.run(func() { started.Done(); <-release })
	}
	started.Wait()
	if got := live.Load(); got != int64(n) {
		t.Errorf("%d checks running on %d live workers, want %d", n, got, n)
	}
	close(release)
	testbin.WaitFor(t, "the workers beyond the idle bound to end", 5*time.Second, liveIs(maxIdleWorkers))

	ran := make(chan struct{})
	w.run(func() { close(ran) })
	<-ran
	testbin.WaitFor(t, "the idle workers to stay", 5*time.Second, liveIs(maxIdleWorkers))

	close(done)
	w.wait()
	if got := live.Load(); got != 0 {
		t.Errorf("%d workers live after done, want 0", got)
	}
}
