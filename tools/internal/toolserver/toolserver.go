// Package toolserver runs the small HTTP servers of the demo stack's tools
// (demotarget, webhooklogger): flags, logging, listening, and a graceful
// stop when the context ends.
package toolserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
)

// Main runs run with the process' arguments and standard error until
// SIGINT or SIGTERM, and exits with its code.
func Main(run func(ctx context.Context, args []string, stderr io.Writer, started func(net.Addr)) int) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr, nil)
	stop()
	os.Exit(code)
}

// Run adds --web.listen-address (default defaultAddr) and the log flags to
// app, parses args, and serves the handler newHandler builds until ctx
// ends. Logs and flag errors go to stderr; started, when set, gets the
// bound address. It returns the process' exit code: 0 after a stop by
// ctx, 1 when serving failed, 2 for bad flags.
func Run(ctx context.Context, app *kingpin.Application, defaultAddr string, args []string, stderr io.Writer,
	started func(net.Addr), newHandler func(*slog.Logger) http.Handler) int {
	app.HelpFlag.Short('h')
	listen := app.Flag("web.listen-address", "Address to listen on.").Default(defaultAddr).String()
	logConfig := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logConfig)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", app.Name, err)
		return 2
	}
	logger := promslog.New(logConfig)

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Error("Cannot listen", "address", *listen, "err", err)
		return 1
	}
	logger.Info("Listening", "address", ln.Addr().String())
	if started != nil {
		started(ln.Addr())
	}
	srv := &http.Server{
		Handler:           newHandler(logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		logger.Error("Server stopped", "err", err)
		return 1
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Error("Shutdown", "err", err)
	}
	return 0
}
