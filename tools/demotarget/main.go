// Command demotarget is the demo stack's target: a small web server whose
// availability can be switched, so that vantage's detection and
// cross-location confirmation can be watched at work.
//
//	GET  /                      200 with a small page while up; 503 (or a reset
//	                            connection) while down
//	POST /down[?from=A&mode=M]  down for everyone, or only for requests from A
//	                            (an IP, a CIDR prefix or a host name such as
//	                            exporter-ams); mode 503 (default) or drop
//	POST /up[?from=A]           up again for everyone (and not slow), or for A
//	POST /slow?delay=2s         wait this long before every answer (0s: none)
//	GET  /state                 the switches, as JSON
package main

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

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// run serves until ctx ends; started, when set, gets the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, started func(net.Addr)) int {
	app := kingpin.New("demotarget", "A web server for the vantage demo whose availability can be switched with POST /down, /up and /slow.")
	app.HelpFlag.Short('h')
	listen := app.Flag("web.listen-address", "Address to listen on.").Default(":8080").String()
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)
	if _, err := app.Parse(args); err != nil {
		fmt.Fprintf(stderr, "demotarget: %s\n", err)
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
		Handler:           newTarget(logger, nil).handler(),
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
