package soak

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Target kinds: each is a group of paths /<kind>/<n> on the target server.
const (
	kindSteady   = "s"  // in every configuration, interval 1s, never failing
	kindOutage   = "o"  // in every configuration, interval 1s, failing during an induced outage
	kindRotateA  = "ra" // only in configuration A, interval 1s
	kindRotateB  = "rb" // only in configuration B, interval 2s
	kindFlip     = "f"  // in both: interval 1s in A, 2s in B
	locationHead = "X-Soak-Location"
)

// targetServer answers every target path of the soak with 200 "ok",
// except the outage paths while an outage is on (503). It counts the
// requests of every path by the location that made them (the exporters
// send their name in the X-Soak-Location header): the exporters' own
// metrics are checked against these counts.
type targetServer struct {
	addrs  []string // host:port of every listener
	outage atomic.Bool
	// paths[kind][location][n]
	paths map[string][][]pathStats
	// stray counts requests for unknown paths or from unknown locations.
	stray   atomic.Int64
	servers []*http.Server
}

// startTargetServer listens on 127.0.1.1–127.0.1.<ips>, ports listeners
// each: spreading thousands of new connections a second over many
// address:port pairs keeps every 4-tuple space far from exhaustion.
func startTargetServer(t *testing.T, ips, ports int, sizes map[string]int) *targetServer {
	t.Helper()
	ts := &targetServer{paths: map[string][][]pathStats{}}
	for kind, n := range sizes {
		per := make([][]pathStats, len(locations))
		for l := range per {
			per[l] = make([]pathStats, n)
		}
		ts.paths[kind] = per
	}
	for i := 1; i <= ips; i++ {
		for range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", i))
			if err != nil {
				ts.close()
				t.Fatalf("target server: %v", err)
			}
			srv := &http.Server{Handler: ts, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}
			ts.servers = append(ts.servers, srv)
			ts.addrs = append(ts.addrs, l.Addr().String())
			go func() { _ = srv.Serve(l) }()
		}
	}
	t.Cleanup(ts.close)
	return ts
}

func (ts *targetServer) close() {
	for _, s := range ts.servers {
		_ = s.Close()
	}
}

// url is the target URL of /<kind>/<n>, on one of the listeners.
func (ts *targetServer) url(kind string, n int) string {
	k := 0
	for i, c := range kind {
		k += (i + 1) * int(c)
	}
	return fmt.Sprintf("http://%s/%s/%d", ts.addrs[(n+k)%len(ts.addrs)], kind, n)
}

func (ts *targetServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, num, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	n, err := strconv.Atoi(num)
	loc := locationIndex(r.Header.Get(locationHead))
	per, ok := ts.paths[kind]
	if err != nil || !ok || loc < 0 || n < 0 || n >= len(per[loc]) {
		ts.stray.Add(1)
		http.NotFound(w, r)
		return
	}
	per[loc][n].served(time.Now().UnixNano())
	if kind == kindOutage && ts.outage.Load() {
		http.Error(w, "induced outage", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok\n")
}

// pathStats are the requests of one path from one location: how many,
// and the shortest and longest time between two of them.
type pathStats struct {
	count, last, minGap, maxGap atomic.Int64
}

// served records a request at now (Unix nanoseconds). The requests of one
// path from one location come one after the other, a second or more
// apart; the atomics only make their reading safe.
func (ps *pathStats) served(now int64) {
	ps.count.Add(1)
	last := ps.last.Swap(now)
	if last == 0 {
		return
	}
	gap := now - last
	if old := ps.minGap.Load(); old == 0 || gap < old {
		ps.minGap.Store(gap)
	}
	if gap > ps.maxGap.Load() {
		ps.maxGap.Store(gap)
	}
}

// gaps returns the shortest and longest time between two requests of
// /<kind>/<n> from location l; zero before the second request.
func (ts *targetServer) gaps(kind string, l, n int) (shortest, longest time.Duration) {
	ps := &ts.paths[kind][l][n]
	return time.Duration(ps.minGap.Load()), time.Duration(ps.maxGap.Load())
}

// snapshot copies the request counts: [kind][location][n].
func (ts *targetServer) snapshot() map[string][][]int64 {
	out := make(map[string][][]int64, len(ts.paths))
	for kind, per := range ts.paths {
		cp := make([][]int64, len(per))
		for l := range per {
			cp[l] = make([]int64, len(per[l]))
			for n := range per[l] {
				cp[l][n] = per[l][n].count.Load()
			}
		}
		out[kind] = cp
	}
	return out
}
