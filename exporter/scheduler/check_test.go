package scheduler

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/prober/result"
)

// Attempts begun with Start that end later on another goroutine hold no
// worker while they wait, count as in flight until they end, free their
// slot and are retried as attempts made with Check are.
func TestStartAttemptsEndOffTheWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 2 * time.Second
		var mu sync.Mutex
		attempts := map[string]int{}
		start := func(ctx context.Context, tg *Target, resume func(func()), done func(*result.Result)) {
			mu.Lock()
			attempts[tg.Target]++
			n := attempts[tg.Target]
			mu.Unlock()
			go func() {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
				}
				resume(func() {
					// "flaky" fails once then succeeds; "down" always fails.
					done(&result.Result{Success: tg.Target == "flaky" && n == 2, Reason: result.ReasonTimeout})
				})
			}()
		}
		rec := &recorder{}
		s, _, stop := startScheduler(t, Options{
			Settings: Settings{MaxInFlight: 10, Retries: 1, RetryInterval: time.Second},
			Start:    start, OnOutcome: rec.add,
		}, target("flaky", time.Minute), target("down", time.Minute))
		time.Sleep(time.Minute - time.Second)
		synctest.Wait()
		if n := testutil.ToFloat64(s.checks); n != 4 {
			t.Errorf("attempts started: %v, want 4 (two per target)", n)
		}
		if n := s.inFlight.Load(); n != 0 {
			t.Errorf("in flight after every attempt ended: %d", n)
		}
		stop()

		flaky := rec.forTarget("flaky")
		if len(flaky) != 1 || !flaky[0].Result.Success || flaky[0].Attempts != 2 {
			t.Fatalf("flaky: outcomes %+v, want one success after 2 attempts", flaky)
		}
		down := rec.forTarget("down")
		if len(down) != 1 || down[0].Result.Success || down[0].Attempts != 2 {
			t.Fatalf("down: outcomes %+v, want one failure after 2 attempts", down)
		}
	})
}

// While Start's attempts wait, they count in flight and hold their slots,
// but no worker runs for them.
func TestStartAttemptsWaitWithoutWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var started atomic.Int32
		start := func(ctx context.Context, tg *Target, resume func(func()), done func(*result.Result)) {
			started.Add(1)
			go func() {
				select {
				case <-release:
				case <-ctx.Done():
				}
				resume(func() { done(&result.Result{Success: true}) })
			}()
		}
		var targets []Target
		for _, n := range []string{"a", "b", "c", "d", "e"} {
			tg := target(n, 2*time.Hour)
			tg.Timeout = 3 * time.Hour
			targets = append(targets, tg)
		}
		s, _, stop := startScheduler(t, Options{Settings: Settings{MaxInFlight: 10}, Start: start}, targets...)
		for i := 0; i < 7200 && started.Load() < 5; i++ {
			time.Sleep(time.Second)
		}
		synctest.Wait()
		if n := s.inFlight.Load(); n != 5 {
			t.Errorf("in flight while waiting: %d, want 5", n)
		}
		if n := len(s.sem.Load().slots); n != 5 {
			t.Errorf("slots taken while waiting: %d, want 5", n)
		}
		if idle := s.workers.idle.Load(); int64(idle) != s.liveWorkers.Load() {
			t.Errorf("workers: %d live, %d idle: a waiting attempt holds a worker", s.liveWorkers.Load(), idle)
		}
		close(release)
		synctest.Wait()
		if n := s.inFlight.Load(); n != 0 {
			t.Errorf("in flight after the answers: %d", n)
		}
		stop()
	})
}
