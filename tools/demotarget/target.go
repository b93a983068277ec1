package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxDelay bounds POST /slow, so a typo cannot park requests for hours.
const maxDelay = 5 * time.Minute

// Failure modes of a target that is down.
const (
	modeStatus = "503"  // answer 503 Service Unavailable
	modeDrop   = "drop" // reset the connection without an answer
)

// lookupFunc resolves a host name to its addresses.
type lookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// target is the demo target's HTTP surface and its switchable state.
type target struct {
	logger *slog.Logger
	lookup lookupFunc

	mu    sync.Mutex
	state state
}

// state is what the switches set.
type state struct {
	// Down fails every request.
	Down bool
	// From fails only requests from these client addresses (when !Down).
	From []netip.Prefix
	// Mode is how a failing request fails: modeStatus or modeDrop.
	Mode string
	// Delay is waited before every answer.
	Delay time.Duration
}

// fails tells whether a request from addr fails in this state.
func (s state) fails(addr netip.Addr) bool {
	if s.Down {
		return true
	}
	for _, p := range s.From {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func newTarget(logger *slog.Logger, lookup lookupFunc) *target {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return &target{logger: logger, lookup: lookup, state: state{Mode: modeStatus}}
}

func (t *target) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", t.handleRoot)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("GET /state", t.handleState)
	mux.HandleFunc("POST /down", t.handleDown)
	mux.HandleFunc("POST /up", t.handleUp)
	mux.HandleFunc("POST /slow", t.handleSlow)
	return mux
}

func (t *target) snapshot() state {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.state
	s.From = slices.Clone(s.From)
	return s
}

var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html><head><title>vantage demo target</title></head>
<body><h1>vantage demo target</h1><p>Up. Hello, {{.}}.</p></body></html>
`))

func (t *target) handleRoot(w http.ResponseWriter, r *http.Request) {
	s := t.snapshot()
	client := clientAddr(r)
	if s.Delay > 0 {
		select {
		case <-time.After(s.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if s.fails(client) {
		if s.Mode == modeDrop {
			dropConnection(w)
			return
		}
		http.Error(w, "demo target is down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = page.Execute(w, client.String())
}

// dropConnection closes the client's connection with a TCP reset, so the
// probe sees a failed request rather than an HTTP answer.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 cannot be hijacked: abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// clientAddr is the request's remote address, IPv4-mapped addresses unmapped.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

type stateJSON struct {
	Down  bool     `json:"down"`
	From  []string `json:"from"`
	Mode  string   `json:"mode"`
	Delay string   `json:"delay"`
}

func (t *target) handleState(w http.ResponseWriter, _ *http.Request) {
	t.writeState(w, t.snapshot())
}

func (t *target) writeState(w http.ResponseWriter, s state) {
	out := stateJSON{Down: s.Down, From: []string{}, Mode: s.Mode, Delay: s.Delay.String()}
	for _, p := range s.From {
		out.From = append(out.From, p.String())
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// handleDown takes the target down: for everyone, or with from= only for
// the given client addresses (IPs, CIDR prefixes or host names, resolved
// now). mode=drop resets connections instead of answering 503.
func (t *target) handleDown(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	mode := q.Get("mode")
	switch mode {
	case "":
		mode = modeStatus
	case modeStatus, modeDrop:
	default:
		http.Error(w, fmt.Sprintf("mode must be %q or %q, got %q", modeStatus, modeDrop, mode), http.StatusBadRequest)
		return
	}
	prefixes, err := t.parseSources(r.Context(), q["from"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	t.state.Mode = mode
	if len(prefixes) == 0 {
		t.state.Down = true
	}
	for _, p := range prefixes {
		if !slices.Contains(t.state.From, p) {
			t.state.From = append(t.state.From, p)
		}
	}
	s := t.state
	t.mu.Unlock()
	t.logger.Info("Down", "everyone", s.Down, "from", prefixes, "mode", mode)
	t.writeState(w, s)
}

// handleUp brings the target back: all the way (no failures, no delay),
// or with from= only for the given client addresses.
func (t *target) handleUp(w http.ResponseWriter, r *http.Request) {
	prefixes, err := t.parseSources(r.Context(), r.URL.Query()["from"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	if len(prefixes) == 0 {
		t.state = state{Mode: modeStatus}
	} else {
		t.state.From = slices.DeleteFunc(t.state.From, func(p netip.Prefix) bool {
			return slices.Contains(prefixes, p)
		})
	}
	s := t.state
	t.mu.Unlock()
	t.logger.Info("Up", "from", prefixes)
	t.writeState(w, s)
}

// handleSlow sets the delay before every answer; delay=0s removes it.
func (t *target) handleSlow(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("delay"))
	if err != nil || d < 0 || d > maxDelay {
		http.Error(w, fmt.Sprintf("delay must be a duration between 0s and %s, got %q", maxDelay, r.URL.Query().Get("delay")), http.StatusBadRequest)
		return
	}
	t.mu.Lock()
	t.state.Delay = d
	s := t.state
	t.mu.Unlock()
	t.logger.Info("Slow", "delay", d)
	t.writeState(w, s)
}

// parseSources turns from= values into prefixes: an IP is a /32 or /128,
// a CIDR prefix stays as it is, anything else is resolved as a host name
// (e.g. a compose service name such as exporter-ams).
func (t *target) parseSources(ctx context.Context, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			addrs, err := t.lookup(ctx, s)
			if err == nil && len(addrs) == 0 {
				err = errors.New("no addresses")
			}
			if err != nil {
				return nil, fmt.Errorf("from=%q is neither an IP address, a CIDR prefix nor a host name that resolves: %w", s, err)
			}
			for _, a := range addrs {
				out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			}
		}
	}
	return out, nil
}
