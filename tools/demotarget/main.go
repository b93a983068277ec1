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
	"io"
	"log/slog"
	"net"
	"net/http"

	"github.com/alecthomas/kingpin/v2"

	"github.com/vantageprobe/vantage/tools/internal/toolserver"
)

func main() { toolserver.Main(run) }

// run serves until ctx ends; started, when set, gets the bound address.
func run(ctx context.Context, args []string, stderr io.Writer, started func(net.Addr)) int {
	app := kingpin.New("demotarget", "A web server for the vantage demo whose availability can be switched with POST /down, /up and /slow.")
	return toolserver.Run(ctx, app, ":8080", args, stderr, started, func(logger *slog.Logger) http.Handler {
		return newTarget(logger, nil).handler()
	})
}
