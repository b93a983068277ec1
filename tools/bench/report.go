package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

func buildVantage(ctx context.Context, o options, out string) error {
	cmd := exec.CommandContext(ctx, o.goTool, "build", "-trimpath", "-o", out, o.vantagePkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", o.vantagePkg, err, b)
	}
	return nil
}

func describeMachine(o options) []string {
	goVersion := runtime.Version()
	if b, err := exec.Command(o.goTool, "version").Output(); err == nil {
		goVersion = strings.TrimSpace(string(b))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	load, _ := os.ReadFile("/proc/loadavg")
	mem, _ := os.ReadFile("/proc/meminfo")
	memTotal, _, _ := strings.Cut(string(mem), "\n")
	bb := "not run"
	if b, err := exec.Command(o.blackboxBin, "--version").CombinedOutput(); err == nil {
		bb, _, _ = strings.Cut(string(b), "\n")
	}
	return []string{
		fmt.Sprintf("CPUs (nproc): %d × %s", runtime.NumCPU(), cpuModel()),
		"memory: " + strings.Join(strings.Fields(memTotal)[1:], " "),
		"kernel: Linux " + strings.TrimSpace(string(kernel)),
		"Go: " + goVersion,
		"blackbox: " + strings.TrimSpace(bb),
		"load average at start: " + strings.Join(strings.Fields(string(load))[:3], " "),
		fmt.Sprintf("sysctl: net.ipv4.tcp_tw_reuse=%s, net.ipv4.ip_local_port_range=%q, net.ipv4.tcp_max_tw_buckets=%s, net.core.somaxconn=%s",
			readSysctl("net.ipv4.tcp_tw_reuse"), readSysctl("net.ipv4.ip_local_port_range"),
			readSysctl("net.ipv4.tcp_max_tw_buckets"), readSysctl("net.core.somaxconn")),
	}
}

// report collects every phase's result and prints them.
type report struct {
	env      *env
	machine  []string
	command  string
	total    time.Duration
	vantage  *sysResult
	blackbox []sysResult
	client   *sysResult
	inflight *inFlightResult
	scrapes  []scrapeResult // full, then minimal series
	cluster  []clusterRow
	coord    *coordResult
	startup  *startupResult
	// protocols is phase p, one row per protocol.
	protocols []protoRow
}

func (r *report) print(w io.Writer) {
	o := r.env.opts
	fmt.Fprintf(w, "vantage benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "command: %s\n", r.command)
	for _, m := range r.machine {
		fmt.Fprintln(w, m)
	}
	fmt.Fprintf(w, "farm: %s, %d listeners (127.0.1.1-127.0.1.%d × %d ports), body \"ok\\n\"\n",
		farmWhere(o.farmMode), len(r.env.farm.Addrs), o.farmIPs, o.farmPorts)
	for _, n := range r.env.notes {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintf(w, "total run time: %s\n\n", r.total.Round(time.Second))
	r.printTable(w)
	r.printInFlight(w)
	r.printScrape(w)
	r.printCluster(w)
	r.printCoordinator(w)
	r.printStartup(w)
	r.printProtocols(w)
	r.printGoals(w)
	r.printWhere(w)
}

func farmWhere(mode string) string {
	if mode == "inproc" {
		return "in the benchmark process"
	}
	return "its own process (bench farm)"
}

func (r *report) rows() []sysResult {
	var rows []sysResult
	if r.vantage != nil {
		rows = append(rows, *r.vantage)
	}
	rows = append(rows, r.blackbox...)
	if r.client != nil {
		rows = append(rows, *r.client)
	}
	if r.inflight != nil {
		rows = append(rows, r.inflight.sysResult)
	}
	return rows
}

func (r *report) printTable(w io.Writer) {
	rows := r.rows()
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "Checks. CPU s/1k checks, user/sys and peak RSS are the measured process's, from /proc/<pid>/stat and status.")
	fmt.Fprintln(w, "farm, bench (load driver) and other (everything else on the machine) are cores used over the same window.")
	fmt.Fprintln(w)
	printRows(w, rows)
	fmt.Fprintln(w)
}

func (r *report) printInFlight(w io.Writer) {
	d := r.inflight
	if d == nil {
		return
	}
	fmt.Fprintf(w, "Checks in flight (d): %d targets, farm answers after %s, interval %s, module timeout %s, max_in_flight %d\n",
		d.Targets, d.Delay, d.IntervalUsed, r.env.opts.ifTimeout, d.MaxInFlight)
	fmt.Fprintf(w, "  (max_in_flight is above the expected %.0f so that the limit measures memory, not queueing)\n", d.Demand)
	fmt.Fprintf(w, "  vantage_scheduler_in_flight over %d samples: peak %.0f, mean %.0f (expected targets×delay/interval = %.0f); farm peak open requests %d\n",
		d.Samples, d.Peak, d.Mean, d.Demand, d.FarmPeakConns)
	fmt.Fprintf(w, "  peak RSS %s, %.0f checks/s, %.3f CPU s/1k checks, missed %s, p99 lag %s\n",
		mib(d.HWM), d.Rate, d.cpuPer1k(), num(d.Missed), secs(d.LagP99))
	if p := d.AtPeak; p.Goroutines > 0 {
		fmt.Fprintf(w, "  at the peak (%.0f in flight): %.0f goroutines, stacks %s (%.1f KiB each), heap in use %s (live objects %s)\n",
			p.InFlight, p.Goroutines, mib(int64(p.StackInuse)), p.StackInuse/p.Goroutines/1024, mib(int64(p.HeapInuse)), mib(int64(p.HeapAlloc)))
	}
	fmt.Fprintln(w)
}

func (r *report) printScrape(w io.Writer) {
	for i := range r.scrapes {
		r.printScrapeOf(w, &r.scrapes[i])
	}
}

func (r *report) printScrapeOf(w io.Writer, s *scrapeResult) {
	fmt.Fprintf(w, "GET /metrics (e, series: %s): %d targets every %s; started in %s; scraped %s after the start, %d targets had a result\n",
		s.Series, s.Targets, s.Interval, s.Startup.Round(time.Millisecond), s.WaitedFor.Round(time.Second), s.Rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  encoding\truns\tmin\tmedian\tmax\tsize\texporter CPU/scrape\treader CPU/scrape\t")
	for _, k := range []struct {
		name string
		ss   []fullScrape
	}{{"plain text", s.Plain}, {"gzip", s.Gzip}} {
		lo, med, hi := durations(k.ss)
		var cpu, reader float64
		for _, x := range k.ss {
			cpu += x.CPU
			reader += x.ReaderCPU
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%.2f s\t%.2f s\t\n", k.name, len(k.ss), ms(lo), ms(med), ms(hi),
			mib(k.ss[len(k.ss)-1].Bytes), cpu/float64(len(k.ss)), reader/float64(len(k.ss)))
	}
	tw.Flush()
	fmt.Fprintf(w, "  peak RSS %s (the exporter keeps checking %.0f targets/s during the scrapes; CPU/scrape includes that)\n\n",
		mib(s.HWM), float64(s.Targets)/s.Interval.Seconds())
}

func userSys(u usage) string {
	if u.CPU == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f/%.0f", 100*u.UserCPU/u.CPU, 100*(u.CPU-u.UserCPU)/u.CPU)
}

func num(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f", f)
}

func secs(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return ms(time.Duration(f * float64(time.Second)))
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "n/a"
	}
	return fmt.Sprintf("%.2f%%", 100*f)
}

func count(n int64) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}

func mib(b int64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
