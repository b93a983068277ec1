package prober

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"github.com/vantageprobe/vantage/config"
)

// A plain-HTTP probe in flight costs one goroutine on the client side (its
// own): net/http's Transport would add a read and a write loop per
// connection, which is what dominated memory with thousands of checks in
// flight.
func TestDirectRoundTripGoroutinesPerProbe(t *testing.T) {
	const n = 40
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	mod, err := Prepare("direct", config.Module{Prober: "http", HTTP: config.DefaultHTTPProbe})
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	var wg sync.WaitGroup
	results := make([]*result.Result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			results[i] = mod.Probe(ctx, srv.URL, Params{})
		}()
	}
	for range n {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("probes did not reach the server")
		}
	}
	// Per probe in flight: the probe's goroutine, and the server's
	// connection goroutine and background reader.
	perProbe := float64(runtime.NumGoroutine()-before) / n
	close(release)
	wg.Wait()
	if perProbe > 3.5 {
		t.Errorf("%.1f goroutines per plain-HTTP probe in flight, want 3 (1 client + 2 server)", perProbe)
	}
	for i, r := range results {
		if !r.Success || r.HTTP.StatusCode != 200 {
			t.Fatalf("probe %d: success %v reason %q (%s)", i, r.Success, r.Reason, r.Error)
		}
		if r.PhaseDuration("connect") <= 0 {
			t.Errorf("probe %d: connect phase not measured", i)
		}
	}
	if p := results[0].PhaseDuration("processing"); p <= 0 {
		t.Errorf("processing phase %s, want the time the server held the request", p)
	}
}
