// Command vantage-exporter probes targets over HTTP, TCP, DNS, ICMP and gRPC
// with per-phase timing. It is a drop-in replacement for blackbox_exporter.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/vantageprobe/vantage/exporter"
	"github.com/vantageprobe/vantage/internal/gossip"
	"github.com/vantageprobe/vantage/internal/signals"
	"github.com/vantageprobe/vantage/internal/tracing"
	"github.com/vantageprobe/vantage/internal/webserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	opts := exporter.DefaultOptions()
	app := kingpin.New("vantage-exporter", "Synthetic monitoring exporter: probes targets with per-phase timing; a drop-in blackbox_exporter.")
	app.Version(version.Print("vantage-exporter"))
	app.HelpFlag.Short('h')

	app.Flag("location", "Name of the place this exporter probes from, as the coordinator's locations list it. Every series of /metrics carries it as the label location.").StringVar(&opts.Location)
	app.Flag("coordinator.url", "Coordinator to report state changes of scheduled targets to; repeatable (HA pair). Needs --location.").StringsVar(&opts.CoordinatorURLs)
	app.Flag("coordinator.heartbeat-interval", "Longest a coordinator goes without a batch: with nothing to report, an empty one carries the canary's verdict.").Default("10s").DurationVar(&opts.CoordinatorHeartbeatInterval)
	app.Flag("coordinator.queue-capacity", "Reports waiting for each coordinator while a delivery is under way or failing; on overflow a target's older report gives way to its newer one first, then the oldest is dropped, and a snapshot follows.").Default("10000").IntVar(&opts.CoordinatorQueueCapacity)
	app.Flag("coordinator.snapshot-interval", "How often each coordinator gets a snapshot of every scheduled target's state (also sent when the coordinator is new or restarted, asks for one, or reports to it were dropped).").Default("5m").DurationVar(&opts.CoordinatorSnapshotInterval)
	app.Flag("coordinator.http-config.file", "HTTP client configuration (bearer token, TLS client certificates, proxy; the format of a module's http client settings) for the reports sent to the coordinators.").StringVar(&opts.CoordinatorHTTPConfigFile)
	app.Flag("scheduler.max-lag", "Longest a scheduled check may start after its planned time; later, within --scheduler.judge-window, the exporter is degraded (scheduler_lag) and reports its failures unknown. 0: not judged.").Default("10s").DurationVar(&opts.SchedulerBounds.MaxLag)
	app.Flag("scheduler.max-missed-ratio", "Share of the planned checks within --scheduler.judge-window that may be missed for want of capacity (late); more, and the exporter is degraded (missed_checks). 0: not judged.").Default("0.1").Float64Var(&opts.SchedulerBounds.MaxMissedRatio)
	app.Flag("scheduler.stale-after", "Intervals a scheduled target may go without a completed check; longer, and the exporter is degraded (stale_results). 0: not judged.").Default("3").IntVar(&opts.SchedulerBounds.StaleAfter)
	app.Flag("scheduler.judge-window", "How far back scheduler lag and missed checks are judged; a degraded exporter recovers once its condition has cleared for this long. At least 1s.").Default("1m").DurationVar(&opts.SchedulerBounds.Window)
	app.Flag("discovery.update-interval", "How often, at most, changes found by service discovery (targets groups with *_sd_configs) are applied to the scheduled targets; Prometheus applies them every 5s.").Default("5s").DurationVar(&opts.DiscoveryUpdateInterval)
	gossip.AddFlags(app, &opts.Cluster.Options, "this location's exporters", "no cluster, this exporter checks every target.")
	app.Flag("api.token-file", "File holding the bearer token that check API requests (POST /api/v1/check) must carry; re-read every 5s. Empty: no token needed.").StringVar(&opts.APITokenFile)
	app.Flag("config.file", "Configuration file (blackbox_exporter format). Empty: the embedded default configuration.").StringVar(&opts.ConfigFile)
	configCheck := app.Flag("config.check", "Validate the configuration file, then exit 0 if it is valid, 1 otherwise.").Bool()
	app.Flag("web.enable-pprof", "Serve Go's runtime profiles under /debug/pprof/ (protected by --web.config.file like every endpoint).").BoolVar(&opts.EnablePprof)
	webserver.SecondsVar(app.Flag("timeout-offset", "Offset to subtract from Prometheus' scrape timeout, in seconds (0.5) or as a duration (500ms).").Default("0.5"), &opts.TimeoutOffset)
	app.Flag("history.limit", "How many recent probes to keep for the landing page and debug output.").Default("100").IntVar(&opts.HistoryLimit)
	app.Flag("log.prober", "Level at which a /probe's own log lines go to this program's log (shown when --log.level allows it): debug, info, warn, error, or none.").Default("info").EnumVar(&opts.ProbeLogLevel, "debug", "info", "warn", "error", "none")
	app.Flag("config.enable-auto-reload", "Reload the configuration file when its content changed, checked every --config.auto-reload-interval (once two checks see the same new content).").BoolVar(&opts.AutoReload)
	webserver.SecondsVar(app.Flag("config.auto-reload-interval", "How often --config.enable-auto-reload checks the configuration file, in seconds (30) or as a duration (30s).").Default("30"), &opts.AutoReloadInterval)
	app.Flag("web.external-url", "The URL under which vantage-exporter is reachable from outside (behind a reverse proxy). Its path, if any, prefixes every endpoint unless --web.route-prefix is set.").PlaceHolder("<url>").StringVar(&opts.ExternalURL)
	app.Flag("web.route-prefix", "Prefix of every endpoint (/probe, /metrics, /-/reload, ...). Defaults to the path of --web.external-url.").PlaceHolder("<path>").StringVar(&opts.RoutePrefix)
	tracingConfig := tracing.AddFlags(app)
	opts.FlagConfig = *kingpinflag.AddFlags(app, ":9715")
	logConfig := &promslog.Config{Writer: stderr}
	promslogflag.AddFlags(app, logConfig)

	serve := app.Command("serve", "Serve /probe and /metrics (the default).").Default()
	probeCmd := app.Command("probe", "Probe one target now, print the result and its phase timings, exit 0 on success and 1 on failure.")
	probeModule := probeCmd.Flag("module", "Module to probe with.").Default("http_2xx").String()
	probeHostname := probeCmd.Flag("hostname", "Host header and TLS server name for http probes.").String()
	probeTimeout := probeCmd.Flag("timeout", "Timeout when the module sets none.").Default("10s").Duration()
	probeVerbose := probeCmd.Flag("verbose", "Log the probe's steps.").Short('v').Bool()
	probeTarget := probeCmd.Arg("target", "Target to probe, as for /probe?target=.").Required().String()

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "vantage-exporter: %s\n", err)
		return 2
	}
	logger := promslog.New(logConfig)
	opts.Logger = logger
	opts.Tracing = *tracingConfig

	if *configCheck {
		if err := exporter.CheckConfig(opts.ConfigFile); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintln(stdout, "Config file is ok")
		return 0
	}

	ctx, stop := signals.Context()
	defer stop()

	switch cmd {
	case probeCmd.FullCommand():
		ok, err := exporter.ProbeOnce(ctx, opts, exporter.OneShot{
			Module: *probeModule, Target: *probeTarget, Hostname: *probeHostname,
			Timeout: *probeTimeout, Verbose: *probeVerbose,
		}, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "vantage-exporter: %s\n", err)
			return 1
		}
		if !ok {
			return 1
		}
		return 0
	case serve.FullCommand():
		opts.Reload = signals.Reloads()
		logger.Info("Starting vantage-exporter", "version", version.Info(), "build_context", version.BuildContext())
		if err := exporter.Run(ctx, opts); err != nil {
			logger.Error("vantage-exporter stopped", "err", err)
			return 1
		}
		logger.Info("vantage-exporter stopped")
	}
	return 0
}
