package scheduler

import (
	"sync"
	"sync/atomic"
	"time"
)

// Idle workers kept, and how long one waits for a check before it ends.
const (
	maxIdleWorkers    = 256
	workerIdleTimeout = 5 * time.Second
)

// workers run checks on goroutines that outlive one check: a goroutine that
// finished a check waits a while for the next one instead of ending. A new
// goroutine per check started from the minimum stack and grew it on every
// check (stack growth and goroutine start and exit were a fifth of the
// exporter's CPU per tcp, dns or icmp check); a reused one keeps its stack
// until the garbage collector shrinks it. At most maxIdleWorkers wait, each
// for workerIdleTimeout, and all of them end when done is closed.
type workers struct {
	work chan func() // unbuffered: a send succeeds only when a worker waits
	idle atomic.Int32
	live *atomic.Int64 // workers running or waiting: vantage_scheduler_workers
	done <-chan struct{}
	wg   sync.WaitGroup
}

func newWorkers(done <-chan struct{}, live *atomic.Int64) *workers {
	return &workers{work: make(chan func()), done: done, live: live}
}

// run runs f on a waiting worker, or on a new one when none waits.
func (w *workers) run(f func()) {
	select {
	case w.work <- f:
		return
	default:
	}
	w.wg.Add(1)
	w.live.Add(1)
	go w.loop(f)
}

func (w *workers) loop(f func()) {
	defer w.wg.Done()
	defer w.live.Add(-1)
	var timer *time.Timer
	for {
		f()
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		if timer == nil {
			timer = time.NewTimer(workerIdleTimeout)
		} else {
			timer.Reset(workerIdleTimeout)
		}
		select {
		case f = <-w.work:
			w.idle.Add(-1)
			timer.Stop()
		case <-timer.C:
			w.idle.Add(-1)
			return
		case <-w.done:
			w.idle.Add(-1)
			timer.Stop()
			return
		}
	}
}

// wait waits for every worker to end; done must be closed first.
func (w *workers) wait() { w.wg.Wait() }
