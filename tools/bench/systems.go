package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// moduleYAML is the module both exporters probe with.
func moduleYAML(timeout time.Duration) string {
	return fmt.Sprintf(`modules:
  http_2xx:
    prober: http
    timeout: %s
    http:
      preferred_ip_protocol: ip4
`, timeout)
}

// vantageSpec is one scheduled vantage-exporter configuration.
type vantageSpec struct {
	Targets     int
	Interval    time.Duration
	Timeout     time.Duration
	MaxInFlight int
	Query       string // appended to every target URL, e.g. "?d=2s"
	// Shards > 1 keeps only the targets i with i % Shards == Shard: a
	// share of the targets split by hand.
	Shard, Shards int
	// Series is scheduler.series; "" leaves the default (full).
	Series string
}

// writeVantageConfig writes the configuration for spec and returns its path.
func writeVantageConfig(dir, name string, farm farmInfo, spec vantageSpec) (string, error) {
	path := filepath.Join(dir, name+".yml")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprint(w, moduleYAML(spec.Timeout))
	fmt.Fprintf(w, `scheduler:
  max_in_flight: %d
  retries: 0
  retry_interval: 1s
  interval: %s
  file_refresh_interval: 1h
`, spec.MaxInFlight, spec.Interval)
	if spec.Series != "" {
		fmt.Fprintf(w, "  series: %s\n", spec.Series)
	}
	if spec.Targets > 0 {
		fmt.Fprintf(w, "targets:\n  - module: http_2xx\n    interval: %s\n    targets:\n", spec.Interval)
	}
	for i := range spec.Targets {
		if spec.Shards > 1 && i%spec.Shards != spec.Shard {
			continue
		}
		fmt.Fprintf(w, "      - %s\n", targetURL(farm.Addrs, i, spec.Query))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}

// exporterProc is a running exporter: vantage-exporter or blackbox_exporter.
type exporterProc struct {
	*child
	base    string        // http://host:port
	startup time.Duration // start to first 200 on the ready endpoint
}

// startVantage starts vantage-exporter with a scheduled configuration.
// warmUp lets a started exporter run for d, then opens the measuring window:
// its scheduler series and its process's /proc figures.
func warmUp(ctx context.Context, env *env, ex *exporterProc, d time.Duration) (schedMetrics, window, error) {
	if err := sleep(ctx, d); err != nil {
		return schedMetrics{}, window{}, err
	}
	m, err := scrapeScheduler(ctx, ex.base)
	if err != nil {
		return schedMetrics{}, window{}, err
	}
	w, err := takeWindow(env, ex.pid())
	return m, w, err
}

func startVantage(ctx context.Context, env *env, name string, spec vantageSpec) (*exporterProc, error) {
	cfg, err := writeVantageConfig(env.dir, name, env.farm, spec)
	if err != nil {
		return nil, err
	}
	return startExporter(ctx, env.dir, name, env.vantageBin, cfg, "/-/ready", append([]string{"--log.level=warn"}, env.pprofArgs()...)...)
}

// startBlackbox starts Debian's blackbox_exporter with the same module.
func startBlackbox(ctx context.Context, env *env, name string) (*exporterProc, error) {
	cfg := filepath.Join(env.dir, name+".yml")
	if err := os.WriteFile(cfg, []byte(moduleYAML(5*time.Second)), 0o644); err != nil {
		return nil, err
	}
	return startExporter(ctx, env.dir, name, env.blackboxBin, cfg, "/-/healthy", "--log.level=warn")
}

func startExporter(ctx context.Context, dir, name, bin, cfg, ready string, extra ...string) (*exporterProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--config.file=" + cfg, "--web.listen-address=" + addr}, extra...)
	start := time.Now()
	c, err := startChild(dir, name, nil, bin, args...)
	if err != nil {
		return nil, err
	}
	p := &exporterProc{child: c, base: "http://" + addr}
	if err := waitHTTP(ctx, c, p.base+ready, 120*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	p.startup = time.Since(start)
	return p, nil
}

// window is the state of the machine at one edge of a measurement window.
type window struct {
	at      time.Time
	proc    procSnap // the measured process
	farm    procSnap
	self    procSnap // the benchmark process (load driver; the farm too when in process)
	inProc  bool     // the farm runs in the benchmark process
	farmSrv farmStats
	machine machineSnap
}

func takeWindow(env *env, pid int) (window, error) {
	w := window{at: time.Now(), machine: readMachine(), inProc: env.farm.PID == os.Getpid()}
	var err error
	if w.proc, err = readProc(pid); err != nil {
		return w, err
	}
	w.farm, _ = readProc(env.farm.PID)
	w.self, _ = readProc(os.Getpid())
	w.farmSrv, err = getFarmStats(env.farm)
	return w, err
}

// usage is what happened between two windows edges.
type usage struct {
	Seconds     float64
	CPU         float64 // measured process, seconds
	UserCPU     float64
	MinorFaults int64
	CtxSwitches int64
	FarmCPU     float64 // farm process, seconds (the benchmark's own when in process)
	FarmServed  int64
	BenchCPU    float64 // the benchmark process, seconds, farm excluded
	MachineBusy float64 // share of all CPUs busy
}

// otherCores is the CPU used by processes other than the measured one, the
// farm and the benchmark: a sign of outside load skewing the figures.
func (u usage) otherCores() float64 {
	if u.Seconds == 0 {
		return 0
	}
	return u.MachineBusy*float64(numCPU()) - (u.CPU+u.FarmCPU+u.BenchCPU)/u.Seconds
}

func between(a, b window) usage {
	bench := b.self.cpuSeconds() - a.self.cpuSeconds()
	if a.inProc { // already counted as farm CPU
		bench = 0
	}
	return usage{
		BenchCPU:    bench,
		Seconds:     b.at.Sub(a.at).Seconds(),
		CPU:         b.proc.cpuSeconds() - a.proc.cpuSeconds(),
		UserCPU:     float64(b.proc.UserTicks-a.proc.UserTicks) / clockTicks,
		MinorFaults: b.proc.MinorFaults - a.proc.MinorFaults,
		CtxSwitches: b.proc.VolCtxt + b.proc.InvolCtxt - a.proc.VolCtxt - a.proc.InvolCtxt,
		FarmCPU:     b.farm.cpuSeconds() - a.farm.cpuSeconds(),
		FarmServed:  b.farmSrv.Served - a.farmSrv.Served,
		MachineBusy: busyFraction(a.machine, b.machine),
	}
}
