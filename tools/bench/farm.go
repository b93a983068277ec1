package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// farmInfo tells where the target farm listens.
type farmInfo struct {
	Addrs   []string `json:"addrs"`   // host:port of every target listener
	Control string   `json:"control"` // host:port of the /stats listener
	PID     int      `json:"pid"`
}

// farmStats are the farm's counters, served on /stats.
type farmStats struct {
	Served   int64 `json:"served"`
	InFlight int64 `json:"in_flight"`
}

// farm serves /t/<n>[?d=<duration>]: a small body after an optional delay.
type farm struct {
	served, inFlight atomic.Int64
	servers          []*http.Server
}

func (f *farm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	if !strings.HasPrefix(r.URL.Path, "/t/") {
		http.NotFound(w, r)
		return
	}
	if d := r.URL.Query().Get("d"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil {
			http.Error(w, "bad d: "+err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok\n")
	f.served.Add(1)
}

// startFarm listens on 127.0.1.1..127.0.1.<ips>, <ports> ports each, plus
// a control listener on 127.0.0.1. Spreading the targets over many
// address:port pairs keeps each client 4-tuple space far from exhaustion.
func startFarm(ips, ports int) (*farm, farmInfo, error) {
	f := &farm{}
	var info farmInfo
	info.PID = os.Getpid()
	serve := func(l net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second}
		srv.SetKeepAlivesEnabled(true)
		f.servers = append(f.servers, srv)
		go func() { _ = srv.Serve(l) }()
	}
	for i := 1; i <= ips; i++ {
		for range ports {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.1.%d:0", i))
			if err != nil {
				f.close()
				return nil, info, fmt.Errorf("farm listener: %w", err)
			}
			info.Addrs = append(info.Addrs, l.Addr().String())
			serve(l, f)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.close()
		return nil, info, fmt.Errorf("farm control listener: %w", err)
	}
	info.Control = l.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(farmStats{Served: f.served.Load(), InFlight: f.inFlight.Load()})
	})
	serve(l, mux)
	return f, info, nil
}

func (f *farm) close() {
	for _, s := range f.servers {
		_ = s.Close()
	}
}

// farmMain is the `farm` subcommand: it prints its farmInfo as one JSON
// line on stdout and serves until SIGTERM (or SIGKILL when the benchmark dies).
func farmMain(args []string) error {
	fs := flag.NewFlagSet("farm", flag.ContinueOnError)
	ips := fs.Int("ips", 8, "loopback addresses 127.0.1.1..N to listen on")
	ports := fs.Int("ports", 4, "ports per address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, info, err := startFarm(*ips, *ports)
	if err != nil {
		return err
	}
	defer f.close()
	return announceAndServe(info)
}

// announceAndServe prints a server subcommand's info as the one JSON line
// startServerChild reads, then lets it serve until SIGTERM (or SIGKILL when
// the benchmark dies).
func announceAndServe(info any) error {
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

// runFarm starts the farm as a child process (mode "child") or in the
// benchmark process (mode "inproc").
func runFarm(dir, self, mode string, ips, ports int) (farmInfo, func(), error) {
	if mode == "inproc" {
		f, info, err := startFarm(ips, ports)
		if err != nil {
			return info, nil, err
		}
		return info, f.close, nil
	}
	if mode != "child" {
		return farmInfo{}, nil, fmt.Errorf("-farm must be child or inproc, got %q", mode)
	}
	var info farmInfo
	c, err := startServerChild(dir, "farm", &info, self, "farm", fmt.Sprint("-ips=", ips), fmt.Sprint("-ports=", ports))
	if err != nil {
		return info, nil, err
	}
	return info, c.stop, nil
}

// startServerChild starts a server subcommand of the benchmark and decodes
// the JSON line it prints once it listens into info.
func startServerChild(dir, name string, info any, self string, args ...string) (*child, error) {
	pr, pw := io.Pipe()
	c, err := startChild(dir, name, pw, self, args...)
	if err != nil {
		return nil, err
	}
	go func() { <-c.done; pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		c.stop()
		return nil, fmt.Errorf("%s did not start: %v; its log ends:\n%s", name, err, c.logTail())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if err := json.Unmarshal([]byte(line), info); err != nil {
		c.stop()
		return nil, fmt.Errorf("%s said %q: %w", name, line, err)
	}
	return c, nil
}

// getFarmStats asks the farm for its counters.
func getFarmStats(info farmInfo) (farmStats, error) {
	var s farmStats
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + info.Control + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, errors.New("farm /stats: " + resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// targetURL is the URL of farm target i; query (e.g. "?d=2s") is appended.
func targetURL(addrs []string, i int, query string) string {
	return fmt.Sprintf("http://%s/t/%d%s", addrs[i%len(addrs)], i, query)
}
