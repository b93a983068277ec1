package main

import (
	"context"
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadCounters count the requests of an open-loop load.
type loadCounters struct {
	issued  atomic.Int64 // requests due so far
	dropped atomic.Int64 // due but not sent: the concurrency bound was reached
	ok      atomic.Int64 // completed and successful
	failed  atomic.Int64 // completed with an error or an unsuccessful check
	errs    errorKinds
}

type loadSnap struct{ Issued, Dropped, OK, Failed int64 }

func (c *loadCounters) snap() loadSnap {
	return loadSnap{c.issued.Load(), c.dropped.Load(), c.ok.Load(), c.failed.Load()}
}

func (a loadSnap) sub(b loadSnap) loadSnap {
	return loadSnap{a.Issued - b.Issued, a.Dropped - b.Dropped, a.OK - b.OK, a.Failed - b.Failed}
}

// openLoop issues rate requests per second, each in its own goroutine,
// until ctx ends. It never waits for a response: a request that is due
// while conc requests are outstanding is dropped and counted, so a slow
// server shows up as drops instead of as a lower offered rate.
func openLoop(ctx context.Context, rate float64, conc int, c *loadCounters, do func(i int64) error) {
	sem := make(chan struct{}, conc)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var n int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds() * rate)
			for ; n < due; n++ {
				c.issued.Add(1)
				select {
				case sem <- struct{}{}:
				default:
					c.dropped.Add(1)
					continue
				}
				go func(i int64) {
					defer func() { <-sem }()
					if err := do(i); err != nil {
						c.failed.Add(1)
						c.errs.add(err)
						return
					}
					c.ok.Add(1)
				}(n)
			}
		}
	}
}

// errorKinds counts errors by message, with URLs and addresses cut off
// so that one cause is one kind.
type errorKinds struct {
	mu sync.Mutex
	m  map[string]int64
}

func (e *errorKinds) add(err error) {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	// "dial tcp 127.0.0.1:1234->127.0.1.1:80: connect: ..." -> "dial tcp: connect: ..."
	if i := strings.Index(msg, ": "); i > 0 && strings.HasPrefix(msg, "dial tcp ") {
		msg = "dial tcp" + msg[i:]
	}
	if f := strings.Fields(msg); len(f) > 2 && (f[0] == "read" || f[0] == "write") {
		if i := strings.LastIndex(msg, ": "); i > 0 {
			msg = f[0] + msg[i:]
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string]int64{}
	}
	if _, seen := e.m[msg]; seen || len(e.m) < 20 {
		e.m[msg]++
	}
}

// top returns up to n "count× message" strings, most frequent first.
func (e *errorKinds) top(n int) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range e.m {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var out []string
	for i := 0; i < len(all) && i < n; i++ {
		out = append(out, strconv.FormatInt(all[i].v, 10)+"× "+all[i].k)
	}
	return out
}
