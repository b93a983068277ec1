// Command vantage-coordinator confirms outages across locations: a failure
// one vantage-exporter reports is checked at once from the other
// locations, and only agreement marks the target confirmed down.
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/vantageprobe/vantage/coordinator"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/internal/gossip"
	"github.com/vantageprobe/vantage/internal/signals"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts := coordinator.DefaultOptions()
	app := kingpin.New("vantage-coordinator", "Confirms outages across vantage-exporter locations: unknown is not down.")
	app.Version(version.Print("vantage-coordinator"))
	app.HelpFlag.Short('h')
	app.Flag("config.file", "Configuration file (locations, confirmation). Empty: the embedded default, one location at http://127.0.0.1:9715.").StringVar(&opts.ConfigFile)
	configCheck := app.Flag("config.check", "Validate the configuration file, then exit 0 if it is valid, 1 otherwise.").Bool()
	app.Flag("storage.path", "Directory of the incident log.").Default(opts.StoragePath).StringVar(&opts.StoragePath)
	retention := app.Flag("storage.retention", "How long resolved incidents are kept after they were resolved, as a Prometheus duration (90d, 12h); older ones are deleted at start and every hour. Open incidents are kept however old.").Default(model.Duration(opts.Retention).String()).String()
	app.Flag("api.token-file", "File holding a bearer token with the report and write scopes: report batches (POST /api/v1/reports) and changes of maintenance windows and monitors must carry it or another token of the configuration's api_tokens granting the scope; re-read every 5s. Empty: only api_tokens' tokens, if any.").StringVar(&opts.APITokenFile)
	app.Flag("web.enable-pprof", "Serve Go's runtime profiles under /debug/pprof/ (protected by --web.config.file like every endpoint).").BoolVar(&opts.EnablePprof)
	app.Flag("web.status-page", "Serve the public status page (/status) and its badges (/status/badge/…): the targets status_page in the configuration file chooses, with no token.").BoolVar(&opts.StatusPage)
	webserver.SecondsVar(app.Flag("timeout-offset", "Offset to subtract from Prometheus' scrape timeout on /probe, in seconds (0.5) or as a duration (500ms).").Default("0.5"), &opts.TimeoutOffset)
	gossip.AddFlags(app, &opts.Cluster, "coordinator peers, which replicate what clients write (events, maintenance windows, the registry)", "no peers, this coordinator keeps what clients write to itself.")
	app.Flag("cluster.name", "Name of this coordinator among its peers; each peer needs its own. Empty: the host name.").StringVar(&opts.PeerName)
	app.Command("serve", "Run the coordinator (the default command).").Default()
	send := addSendCommand(app)
	tracingConfig := tracing.AddFlags(app)
	opts.FlagConfig = *kingpinflag.AddFlags(app, ":9716")
	logConfig := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logConfig)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "vantage-coordinator: %s\n", err)
		return 2
	}
	if cmd == send.cmd.FullCommand() {
		return send.run(stdout, stderr)
	}
	d, err := model.ParseDuration(*retention)
	if err != nil {
		fmt.Fprintf(stderr, "vantage-coordinator: --storage.retention: %s\n", err)
		return 2
	}
	opts.Retention = time.Duration(d)
	if *configCheck {
		if opts.ConfigFile == "" {
			fmt.Fprintln(stdout, "No --config.file given; the embedded default configuration is valid")
			return 0
		}
		if _, err := config.LoadCoordinatorFile(opts.ConfigFile); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, "Config file is ok")
		return 0
	}
	logger := promslog.New(logConfig)
	opts.Logger = logger
	opts.Tracing = *tracingConfig

	ctx, stop := signals.Context()
	defer stop()
	opts.Reload = signals.Reloads()
	logger.Info("Starting vantage-coordinator", "version", version.Info(), "build_context", version.BuildContext())
	if err := coordinator.Run(ctx, opts); err != nil {
		logger.Error("vantage-coordinator stopped", "err", err)
		return 1
	}
	logger.Info("vantage-coordinator stopped")
	return 0
}
