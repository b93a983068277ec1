// Package webserver serves a program's HTTP handler the way both vantage
// binaries do: on the --web.listen-address addresses (or systemd sockets),
// behind an exporter-toolkit web configuration (TLS, basic auth), until
// the context ends.
package webserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web"
)

// Config says where and how to serve.
type Config struct {
	// FlagConfig is the --web.listen-address, --web.systemd-socket and
	// --web.config.file flags, as exporter-toolkit's kingpinflag.AddFlags
	// returns them; a nil field counts as unset.
	web.FlagConfig
	// Started, when set, is called with the bound addresses once the
	// server accepts connections.
	Started func(addrs []net.Addr)
	// ShutdownGrace bounds the wait for requests in flight at shutdown;
	// 0 means 5s.
	ShutdownGrace time.Duration
}

// Serve serves h until ctx ends or the server fails.
func Serve(ctx context.Context, h http.Handler, c Config, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelError),
	}
	flags := setFlags(c.FlagConfig)
	errc := make(chan error, 1)
	if *flags.WebSystemdSocket {
		go func() { errc <- web.ListenAndServe(srv, flags, logger) }()
	} else {
		listeners, addrs, err := Listen(*flags.WebListenAddresses)
		if err != nil {
			return err
		}
		go func() { errc <- web.ServeMultiple(listeners, srv, flags, logger) }()
		if c.Started != nil {
			c.Started(addrs)
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := c.ShutdownGrace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Requests still running after the grace period, or connections
		// opened just before shutdown that never sent a request (the
		// server waits 5s for those), are cut.
		logger.Warn("Closing connections still open after the shutdown grace period", "grace", grace, "err", err)
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ValidateFlags checks the web flags both programs share: an address to
// listen on, unless systemd hands over the sockets, and a web configuration
// file that loads.
func ValidateFlags(f web.FlagConfig) error {
	flags := setFlags(f)
	if !*flags.WebSystemdSocket && len(*flags.WebListenAddresses) == 0 {
		return errors.New("at least one --web.listen-address is needed")
	}
	if path := *flags.WebConfigFile; path != "" {
		if err := web.Validate(path); err != nil {
			return fmt.Errorf("--web.config.file %s: %w", path, err)
		}
	}
	return nil
}

// setFlags returns a copy of f whose nil fields point to zero values, as
// exporter-toolkit's serving functions need.
func setFlags(f web.FlagConfig) *web.FlagConfig {
	if f.WebListenAddresses == nil {
		f.WebListenAddresses = new([]string)
	}
	if f.WebSystemdSocket == nil {
		f.WebSystemdSocket = new(false)
	}
	if f.WebConfigFile == nil {
		f.WebConfigFile = new("")
	}
	return &f
}

// Listen opens a TCP listener on each address, or none on error.
func Listen(addresses []string) ([]net.Listener, []net.Addr, error) {
	listeners := make([]net.Listener, 0, len(addresses))
	addrs := make([]net.Addr, 0, len(addresses))
	for _, a := range addresses {
		l, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return nil, nil, fmt.Errorf("listening on %s: %w", a, err)
		}
		listeners = append(listeners, l)
		addrs = append(addrs, l.Addr())
	}
	return listeners, addrs, nil
}

// Recover answers 500 for a handler that panics instead of dropping the
// connection, logs the panic with its stack, and counts it.
func Recover(next http.Handler, logger *slog.Logger, panics prometheus.Counter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil || v == http.ErrAbortHandler {
				if v != nil {
					panic(v)
				}
				return
			}
			panics.Inc()
			logger.Error("HTTP handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			http.Error(w, "internal error: the request handler failed; see the server's log", http.StatusInternalServerError)
		}()
		next.ServeHTTP(w, r)
	})
}

// HandlePprof serves Go's runtime profiles under /debug/pprof/ on mux;
// programs do so only when --web.enable-pprof is given.
func HandlePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// HandleOperational registers the routes both programs share: /-/healthy,
// /-/ready, and POST or PUT /-/reload, which hands a reload request to
// the program's reloader through reloads and answers with its outcome.
//
// /-/healthy answers 200 while unhealthy (when set) returns nothing, and
// 503 with each line it returns otherwise: the program's stalled clocks
// (liveness.Set.Unhealthy).
func HandleOperational(mux *http.ServeMux, reloads chan<- chan error, unhealthy func() []string) {
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		var problems []string
		if unhealthy != nil {
			problems = unhealthy()
		}
		if len(problems) == 0 {
			fmt.Fprintln(w, "Healthy")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "Unhealthy: stalled clocks")
		for _, p := range problems {
			fmt.Fprintln(w, p)
		}
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Ready")
	})
	reload := func(w http.ResponseWriter, r *http.Request) {
		errc := make(chan error, 1)
		select {
		case reloads <- errc:
		case <-r.Context().Done():
			return
		}
		if err := <-errc; err != nil {
			http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "Config reloaded")
	}
	mux.HandleFunc("POST /-/reload", reload)
	mux.HandleFunc("PUT /-/reload", reload)
}
