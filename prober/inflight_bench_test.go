package prober

import (
	"context"
	"flag"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

var inflightProfile = flag.String("inflight.heapprofile", "", "directory for BenchmarkProbesInFlight's heap profiles of parked probes")

// BenchmarkProbesInFlight measures what a plain-HTTP probe waiting for
// its answer holds: n probes of a listener that accepts and never
// answers, parked, then the runtime's stack and heap in use per probe.
// "probe" runs each Probe on a goroutine of its own (the caller's stack
// holds the wait); "async" uses ProbeAsync (a shallow goroutine waits).
//
//	go test -run '^$' -bench ProbesInFlight -benchtime 1x ./prober/
//
// With -inflight.heapprofile=DIR it writes the heap profile of the parked
// probes (every allocation sampled) to DIR/<probe|async>.pb.gz, for
// `go tool pprof -sample_index=inuse_space`.
func BenchmarkProbesInFlight(b *testing.B) {
	const n = 2000
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var held sync.Map
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held.Store(c, nil) // read nothing, answer nothing
		}
	}()
	defer held.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
	mod, err := Prepare("inflight", httpTestModule(nil))
	if err != nil {
		b.Fatal(err)
	}
	target := "http://" + l.Addr().String() + "/"
	for _, async := range []bool{false, true} {
		name := map[bool]string{false: "probe", true: "async"}[async]
		b.Run(name, func(b *testing.B) {
			if *inflightProfile != "" {
				defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
				runtime.MemProfileRate = 1
			}
			for b.Loop() {
				stack, heap := parkProbes(b, mod, target, n, async, filepath.Join(*inflightProfile, name+".pb.gz"))
				b.ReportMetric(stack, "stack-B/probe")
				b.ReportMetric(heap, "heap-B/probe")
			}
		})
	}
}

// parkProbes starts n probes of target, waits until each has written its
// request, and returns the stack and heap in use per probe beyond what
// was in use before; then ends them.
func parkProbes(b *testing.B, mod *Module, target string, n int, async bool, profile string) (stack, heap float64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	var wg sync.WaitGroup
	wg.Add(n)
	done := func(*result.Result) { wg.Done() }
	for range n {
		if async {
			mod.ProbeAsync(ctx, target, Params{}, func(f func()) { go f() }, done)
		} else {
			go func() { done(mod.Probe(ctx, target, Params{})) }()
		}
	}
	// Parked: every goroutine waits in the network poller.
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		if runtime.NumGoroutine() >= n {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC() // a second cycle shrinks stacks the first found mostly unused
	runtime.ReadMemStats(&after)
	if *inflightProfile != "" {
		f, err := os.Create(profile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	cancel()
	wg.Wait()
	return float64(after.StackInuse-before.StackInuse) / float64(n), float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}
