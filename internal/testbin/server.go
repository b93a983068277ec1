package testbin

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// Server is a program run in the test process: its Run function, in a
// goroutine.
type Server struct {
	// URL is http:// and the first address the program listens on.
	URL string
	// Addrs are the addresses the program listens on.
	Addrs []net.Addr

	name        string
	cancel      context.CancelFunc
	done        chan struct{} // closed when run has returned
	err         error         // run's result, once done is closed
	stopTimeout time.Duration
	stopOnce    sync.Once
}

// Serve calls run in a goroutine and waits until run calls started with
// the addresses it listens on (pass started as the program's
// Options.Started). It fails tb at once when run returns first, and when
// it has not started within ReadyTimeout. The program runs until Stop or
// the end of the test, whose cleanup reports an error of Stop.
//
//	srv := testbin.Serve(t, "exporter", func(ctx context.Context, started func([]net.Addr)) error {
//		opts.Started = started
//		return exporter.Run(ctx, opts)
//	})
func Serve(tb testing.TB, name string, run func(ctx context.Context, started func([]net.Addr)) error) *Server {
	tb.Helper()
	return serve(tb, name, run, ReadyTimeout, StopGrace)
}

func serve(tb testing.TB, name string, run func(ctx context.Context, started func([]net.Addr)) error, startTimeout, stopTimeout time.Duration) *Server {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{name: name, cancel: cancel, done: make(chan struct{}), stopTimeout: stopTimeout}
	addrs := make(chan []net.Addr, 1)
	started := func(a []net.Addr) {
		select {
		case addrs <- a:
		default: // called again: the first call counts
		}
	}
	go func() {
		defer close(s.done)
		s.err = run(ctx, started)
	}()
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Error(err)
		}
	})
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case a := <-addrs:
		s.Addrs = a
		if len(a) > 0 {
			s.URL = "http://" + a[0].String()
		}
	case <-s.done:
		s.stopOnce.Do(cancel) // nothing left to stop or report
		tb.Fatalf("%s did not start: %v", name, s.err)
	case <-timer.C:
		tb.Fatalf("%s did not start within %s", name, startTimeout)
	}
	return s
}

// Stop cancels the program's context and waits until run returns, at most
// the stop grace (StopGrace). It returns an error when run returned one or
// did not return in time. Only the first call stops; later calls return
// nil.
func (s *Server) Stop() error {
	var err error
	s.stopOnce.Do(func() {
		s.cancel()
		timer := time.NewTimer(s.stopTimeout)
		defer timer.Stop()
		select {
		case <-s.done:
			if s.err != nil {
				err = fmt.Errorf("%s stopped with error: %w", s.name, s.err)
			}
		case <-timer.C:
			err = fmt.Errorf("%s did not stop within %s", s.name, s.stopTimeout)
		}
	})
	return err
}
