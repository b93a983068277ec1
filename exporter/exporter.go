package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Exporter is one running vantage-exporter.
type Exporter struct {
	opts    Options
	logger  *slog.Logger
	config  *configHolder
	history *history
	reg     *prometheus.Registry
	reloads chan chan error
	probes  *prometheus.CounterVec
}

// New loads the configuration and builds an exporter. A configuration that
// does not load is an error here; later reloads keep the last good one.
func New(opts Options) (*Exporter, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("vantage_exporter"),
	)
	e := &Exporter{
		opts:    opts,
		logger:  opts.Logger,
		config:  newConfigHolder(opts.ConfigFile, reg, opts.Logger),
		history: newHistory(opts.HistoryLimit),
		reg:     reg,
		reloads: make(chan chan error),
		probes: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "vantage_exporter_probes_total",
			Help: "Probes answered on /probe, by module and result.",
		}, []string{"module", "result"}),
	}
	if err := e.config.reload(); err != nil {
		return nil, err
	}
	return e, nil
}

// Run starts an exporter with opts and serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	e, err := New(opts)
	if err != nil {
		return err
	}
	return e.Serve(ctx)
}

// Handler returns the exporter's HTTP routes, without web config protection.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", e.handleLanding)
	mux.HandleFunc("GET /probe", e.handleProbe)
	mux.HandleFunc("GET /history/{id}", e.handleHistory)
	mux.Handle("GET /metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(e.logger.Handler(), slog.LevelError),
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /config", e.handleConfig)
	mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Healthy")
	})
	mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Ready")
	})
	mux.HandleFunc("POST /-/reload", e.handleReload)
	mux.HandleFunc("PUT /-/reload", e.handleReload)
	return mux
}

// Serve listens on the configured addresses and serves until ctx ends.
func (e *Exporter) Serve(ctx context.Context) error {
	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(e.logger.Handler(), slog.LevelError),
	}
	webConfig, systemd := e.opts.WebConfigFile, e.opts.WebSystemdSocket
	flags := &web.FlagConfig{WebListenAddresses: &e.opts.ListenAddresses, WebConfigFile: &webConfig, WebSystemdSocket: &systemd}
	go e.reloader(ctx)
	errc := make(chan error, 1)
	if systemd {
		go func() { errc <- web.ListenAndServe(srv, flags, e.logger) }()
	} else {
		listeners, addrs, err := listen(e.opts.ListenAddresses)
		if err != nil {
			return err
		}
		go func() { errc <- web.ServeMultiple(listeners, srv, flags, e.logger) }()
		if e.opts.Started != nil {
			e.opts.Started(addrs)
		}
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func listen(addresses []string) ([]net.Listener, []net.Addr, error) {
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

// reloader is the one goroutine that reloads the configuration, fed by
// external signals (SIGHUP) and by POST /-/reload.
func (e *Exporter) reloader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.opts.Reload:
			_ = e.config.reload()
		case errc := <-e.reloads:
			errc <- e.config.reload()
		}
	}
}

func (e *Exporter) handleReload(w http.ResponseWriter, r *http.Request) {
	errc := make(chan error, 1)
	select {
	case e.reloads <- errc:
	case <-r.Context().Done():
		return
	}
	if err := <-errc; err != nil {
		http.Error(w, fmt.Sprintf("failed to reload config: %s", err), http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "Config reloaded")
}

func (e *Exporter) handleConfig(w http.ResponseWriter, _ *http.Request) {
	out, err := e.config.get().config.Marshal()
	if err != nil {
		http.Error(w, fmt.Sprintf("error marshalling configuration: %s", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(out)
}
