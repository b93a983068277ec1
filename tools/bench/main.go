// Command bench is `make bench`: it measures vantage-exporter's scheduler
// against Debian's blackbox_exporter and a minimal Go client, on this
// machine, over loopback only, and prints a results table with the
// project's performance goals marked PASS or FAIL.
//
//	go run ./tools/bench [flags]
//
// The subcommands `farm` and `client` are the helper processes it starts.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "farm":
		err = farmMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "client":
		err = clientMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "protofarm":
		err = protoFarmMain(os.Args[2:])
	default:
		err = benchMain(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the benchmark's flags.
type options struct {
	phases      string
	rate        float64
	interval    time.Duration
	warmup      time.Duration
	window      time.Duration
	maxInFlight int

	bbRate, bbLowRate  float64
	bbConcurrency      int
	bbWarmup, bbWindow time.Duration

	ifTargets, ifMaxInFlight        int
	ifDelay, ifInterval, ifTimeout  time.Duration
	ifWarmup, ifWindow              time.Duration
	scrapeTargets, scrapeRuns       int
	scrapeInterval                  time.Duration
	farmMode                        string
	farmIPs, farmPorts              int
	clusterRate                     float64
	clusterWarmup, clusterWindow    time.Duration
	scale                           float64
	tune, keep                      bool
	vantagePkg, blackboxBin, goTool string
	coord                           coordOptions
	startup                         startupOptions
	profiles                        string
	proto                           protoOptions
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.phases, "phases", "a,b,c,d,e,f,g,s,p", "phases to run: a scheduled vantage, b blackbox, c minimal client, d checks in flight, e /metrics scrape, f clusters of 1-3 members, g the coordinator at 100,000 targets, s startup and reload with a million targets, p CPU per check of tcp, dns, icmp and https")
	fs.Float64Var(&o.rate, "rate", 5000, "target checks per second for a, b and c")
	fs.DurationVar(&o.interval, "interval", 10*time.Second, "check interval in a; a schedules rate×interval targets")
	fs.DurationVar(&o.warmup, "warmup", 15*time.Second, "load before a's measurement window")
	fs.DurationVar(&o.window, "window", 60*time.Second, "a's measurement window")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 10000, "scheduler max_in_flight")
	fs.Float64Var(&o.bbRate, "blackbox-rate", 0, "rate offered to blackbox_exporter (0: -rate)")
	fs.Float64Var(&o.bbLowRate, "blackbox-low-rate", 1000, "a rate blackbox_exporter sustains, for a fair CPU comparison (0: skip)")
	fs.IntVar(&o.bbConcurrency, "blackbox-concurrency", 2000, "most /probe requests outstanding at once")
	fs.DurationVar(&o.bbWarmup, "short-warmup", 5*time.Second, "load before b's and c's windows")
	fs.DurationVar(&o.bbWindow, "short-window", 30*time.Second, "b's and c's measurement windows")
	fs.IntVar(&o.ifTargets, "inflight-targets", 20000, "targets in d; targets×delay/interval checks are in flight")
	fs.IntVar(&o.ifMaxInFlight, "inflight-max-in-flight", 12000, "scheduler max_in_flight in d: above the expected 10,000 so the limit does not queue checks")
	fs.DurationVar(&o.ifDelay, "inflight-delay", 5*time.Second, "farm response delay in d")
	fs.DurationVar(&o.ifInterval, "inflight-interval", 10*time.Second, "check interval in d")
	fs.DurationVar(&o.ifTimeout, "inflight-timeout", 8*time.Second, "module timeout in d")
	fs.DurationVar(&o.ifWarmup, "inflight-warmup", 12*time.Second, "load before d's window (longer than the delay)")
	fs.DurationVar(&o.ifWindow, "inflight-window", 20*time.Second, "d's window (in-flight sampled every 0.5s)")
	fs.IntVar(&o.scrapeTargets, "scrape-targets", 100000, "targets in e")
	fs.DurationVar(&o.scrapeInterval, "scrape-interval", 60*time.Second, "check interval in e")
	fs.IntVar(&o.scrapeRuns, "scrape-runs", 3, "timed scrapes of each kind (plain, gzip) in e")
	fs.Float64Var(&o.clusterRate, "cluster-rate", 2000, "checks per second in all in f (interval: -interval)")
	fs.DurationVar(&o.clusterWarmup, "cluster-warmup", 15*time.Second, "load before each of f's windows (members join, ownership settles)")
	fs.DurationVar(&o.clusterWindow, "cluster-window", 30*time.Second, "each of f's measurement windows")
	o.startup.register(fs)
	fs.StringVar(&o.profiles, "profiles", "", "directory to save the exporter's pprof profiles in (heap and goroutines at d's peak, CPU during e's scrapes); empty: none")
	fs.StringVar(&o.farmMode, "farm", "child", "where the target farm runs: child (its own process) or inproc")
	fs.IntVar(&o.farmIPs, "farm-ips", 8, "farm listen addresses 127.0.1.1..N")
	fs.IntVar(&o.farmPorts, "farm-ports", 4, "farm ports per address")
	fs.Float64Var(&o.scale, "scale", 1, "multiply every warm-up and window by this (0.25 for a quick run)")
	fs.BoolVar(&o.tune, "tune-sysctl", false, "set net.ipv4.tcp_tw_reuse=1 and ip_local_port_range=\"1024 65535\" (root) before running")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, logs)")
	fs.StringVar(&o.vantagePkg, "vantage-pkg", "./cmd/vantage-exporter", "package to build as vantage-exporter")
	fs.StringVar(&o.blackboxBin, "blackbox", "/usr/bin/prometheus-blackbox-exporter", "blackbox_exporter binary")
	fs.StringVar(&o.goTool, "go", "go", "go command used to build vantage-exporter")
	coordFlags(fs, &o.coord)
	protoFlags(fs, &o.proto)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.bbRate == 0 {
		o.bbRate = o.rate
	}
	for _, d := range []*time.Duration{&o.warmup, &o.window, &o.bbWarmup, &o.bbWindow, &o.ifWarmup, &o.ifWindow, &o.clusterWarmup, &o.clusterWindow} {
		*d = time.Duration(float64(*d) * o.scale)
	}
	if o.rate <= 0 || o.interval < time.Second || o.window <= 0 || o.bbWindow <= 0 || o.ifWindow <= 0 {
		return o, fmt.Errorf("need -rate > 0, -interval ≥ 1s and positive windows")
	}
	return o, nil
}

// env is what every phase shares.
type env struct {
	opts        options
	dir         string
	self        string
	vantageBin  string
	blackboxBin string
	farm        farmInfo
	notes       []string
}

func benchMain(args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	started := time.Now()
	dir, err := os.MkdirTemp("", "vantage-bench-")
	if err != nil {
		return err
	}
	cleanup := func() {
		stopAllChildren()
		if !o.keep {
			os.RemoveAll(dir)
		}
	}
	defer cleanup()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %s: stopping every process it started\n", s)
		cancel()
		cleanup()
		os.Exit(130)
	}()
	e, err := setup(ctx, o, dir)
	if err != nil {
		if ctx.Err() != nil {
			select {}
		}
		return err
	}
	rep := &report{env: e, machine: describeMachine(o), command: commandLine()}
	if err := runPhases(ctx, e, rep); err != nil {
		if ctx.Err() != nil {
			select {} // interrupted: the signal handler cleans up and exits
		}
		return err
	}
	rep.total = time.Since(started)
	rep.print(os.Stdout)
	return nil
}

func setup(ctx context.Context, o options, dir string) (*env, error) {
	e := &env{opts: o, dir: dir, blackboxBin: o.blackboxBin}
	var err error
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if o.tune {
		for _, kv := range [][2]string{{"net.ipv4.tcp_tw_reuse", "1"}, {"net.ipv4.ip_local_port_range", "1024 65535"}} {
			before := readSysctl(kv[0])
			if err := writeSysctl(kv[0], kv[1]); err != nil {
				return nil, fmt.Errorf("-tune-sysctl: %w", err)
			}
			e.notes = append(e.notes, fmt.Sprintf("set %s=%q (was %q)", kv[0], kv[1], before))
		}
	}
	if strings.Contains(o.phases, "b") {
		if _, err := os.Stat(o.blackboxBin); err != nil {
			return nil, fmt.Errorf("blackbox_exporter: %w (apt-get install -y --no-install-recommends prometheus-blackbox-exporter)", err)
		}
	}
	progress("building vantage-exporter from %s", o.vantagePkg)
	e.vantageBin = dir + "/vantage-exporter"
	if err := buildVantage(ctx, o, e.vantageBin); err != nil {
		return nil, err
	}
	info, stop, err := runFarm(dir, e.self, o.farmMode, o.farmIPs, o.farmPorts)
	if err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); stop() }()
	e.farm = info
	progress("farm: %s, %d listeners (127.0.1.1-%d × %d ports), pid %d", o.farmMode, len(info.Addrs), o.farmIPs, o.farmPorts, info.PID)
	return e, nil
}

func runPhases(ctx context.Context, e *env, rep *report) error {
	has := func(p string) bool { return strings.Contains(e.opts.phases, p) }
	if has("a") {
		r, err := phaseScheduled(ctx, e)
		if err != nil {
			return fmt.Errorf("phase a: %w", err)
		}
		rep.vantage = &r
	}
	if has("b") {
		r, err := phaseBlackbox(ctx, e, e.opts.bbRate, fmt.Sprintf("blackbox_exporter 0.23 at %.0f/s", e.opts.bbRate))
		if err != nil {
			return fmt.Errorf("phase b: %w", err)
		}
		rep.blackbox = append(rep.blackbox, r)
		if e.opts.bbLowRate > 0 && e.opts.bbLowRate != e.opts.bbRate {
			r, err := phaseBlackbox(ctx, e, e.opts.bbLowRate, fmt.Sprintf("blackbox_exporter 0.23 at %.0f/s", e.opts.bbLowRate))
			if err != nil {
				return fmt.Errorf("phase b: %w", err)
			}
			rep.blackbox = append(rep.blackbox, r)
		}
	}
	if has("c") {
		r, err := phaseClient(ctx, e)
		if err != nil {
			return fmt.Errorf("phase c: %w", err)
		}
		rep.client = &r
	}
	if has("d") {
		r, err := phaseInFlight(ctx, e)
		if err != nil {
			return fmt.Errorf("phase d: %w", err)
		}
		rep.inflight = &r
	}
	if has("e") {
		for _, series := range []string{"full", "minimal"} {
			r, err := phaseScrape(ctx, e, series)
			if err != nil {
				return fmt.Errorf("phase e: %w", err)
			}
			rep.scrapes = append(rep.scrapes, r)
		}
	}
	if has("s") {
		r, err := phaseStartup(ctx, e)
		if err != nil {
			return fmt.Errorf("phase s: %w", err)
		}
		rep.startup = &r
	}
	if has("f") {
		rows, err := phaseCluster(ctx, e)
		if err != nil {
			return fmt.Errorf("phase f: %w", err)
		}
		rep.cluster = rows
	}
	if has("g") {
		r, err := phaseCoordinator(ctx, e)
		if err != nil {
			return fmt.Errorf("phase g: %w", err)
		}
		rep.coord = &r
	}
	if has("p") {
		rows, err := phaseProtocols(ctx, e)
		if err != nil {
			return fmt.Errorf("phase p: %w", err)
		}
		rep.protocols = rows
	}
	return nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func commandLine() string {
	if c := os.Getenv("BENCH_COMMAND"); c != "" {
		return c
	}
	return strings.Join(append([]string{"go run ./tools/bench"}, os.Args[1:]...), " ")
}
