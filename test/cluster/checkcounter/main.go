// Command checkcounter is test/cluster's target: it answers GET /t/N (N
// below -targets) with 200 and records when each target was checked;
// GET /times returns those times (Unix nanoseconds per target) as JSON.
// It runs as a process of its own, built without the race detector, so
// the 1,500 checks a second of the test are timed as they arrive.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address")
	targets := flag.Int("targets", 3000, "number of targets")
	flag.Parse()
	var mu sync.Mutex
	times := make([][]int64, *targets)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{n}", func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UnixNano()
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= len(times) {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		times[n] = append(times[n], now)
		mu.Unlock()
	})
	mux.HandleFunc("GET /times", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = json.NewEncoder(w).Encode(times)
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ready") })
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening on", strings.TrimSpace(ln.Addr().String()))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	_ = srv.Serve(ln)
}
