package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// sysResult is one row of the results table.
type sysResult struct {
	System     string
	TargetRate float64
	Checks     int64   // checks completed (or started, for vantage) in the window
	Rate       float64 // checks/s achieved
	Missed     float64 // NaN: not applicable
	LagP99     float64 // seconds; NaN: not applicable
	Success    float64 // share of checks that succeeded; NaN: unknown
	Errors     int64   // driver-side failures and drops; -1: not applicable
	HWM        int64   // peak RSS of the measured process, bytes
	U          usage
	Notes      []string
}

func (r sysResult) cpuPer1k() float64 {
	if r.Checks == 0 {
		return math.NaN()
	}
	return r.U.CPU / float64(r.Checks) * 1000
}

// phaseScheduled is (a): vantage-exporter scheduling rate×interval targets.
func phaseScheduled(ctx context.Context, env *env) (sysResult, error) {
	o := env.opts
	n := int(o.rate * o.interval.Seconds())
	r := sysResult{System: "vantage-exporter (scheduled)", TargetRate: o.rate, Errors: -1}
	progress("a: vantage-exporter, %d targets every %s (%.0f checks/s), max_in_flight %d", n, o.interval, o.rate, o.maxInFlight)
	ex, err := startVantage(ctx, env, "vantage-a", vantageSpec{Targets: n, Interval: o.interval, Timeout: 5 * time.Second, MaxInFlight: o.maxInFlight})
	if err != nil {
		return r, err
	}
	defer ex.stop()
	progress("a: ready after %s; warming up %s", ex.startup.Round(time.Millisecond), o.warmup)
	m0, w0, err := warmUp(ctx, env, ex, o.warmup)
	if err != nil {
		return r, err
	}
	progress("a: measuring %s", o.window)
	if err := sleep(ctx, o.window); err != nil {
		return r, err
	}
	w1, err := takeWindow(env, ex.pid())
	if err != nil {
		return r, err
	}
	m1, err := scrapeScheduler(ctx, ex.base)
	if err != nil {
		return r, err
	}
	// The first full scrape comes after the window: the peak RSS above is
	// the scheduler's alone, and the success ratio counts every check since
	// the start.
	full, err := scrapeTimed(ctx, ex, false, nil)
	r.U = between(w0, w1)
	r.fillScheduler(m0, m1)
	r.HWM = w1.proc.HWMBytes
	if err == nil {
		if n := full.Success + full.Failure; n > 0 {
			r.Success = full.Success / n
		}
		after, _ := readProc(ex.pid())
		r.Notes = append(r.Notes, fmt.Sprintf("then GET /metrics (plain) with %d targets under this load: %s, %s, %.2f CPU s; peak RSS after it %s",
			full.Rows, full.Duration.Round(time.Millisecond), mib(full.Bytes), full.CPU, mib(after.HWMBytes)))
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("full scrape failed: %v", err))
	}
	tw := fmt.Sprint(timeWait())
	if tw == readSysctl("net.ipv4.tcp_max_tw_buckets") {
		tw += " (the net.ipv4.tcp_max_tw_buckets cap: further closed connections skip TIME_WAIT)"
	}
	r.Notes = append(r.Notes, fmt.Sprintf("startup with %d targets: %s; TCP sockets in TIME_WAIT at the end: %s",
		n, ex.startup.Round(time.Millisecond), tw))
	return r, nil
}

// scrapeTimed is scrapeInto plus the exporter's CPU time during the scrape.
func scrapeTimed(ctx context.Context, ex *exporterProc, gzip bool, buf *bytes.Buffer) (fullScrape, error) {
	p0, _ := readProc(ex.pid())
	s, err := scrapeInto(ctx, ex.base, gzip, buf)
	p1, _ := readProc(ex.pid())
	s.CPU = p1.cpuSeconds() - p0.cpuSeconds()
	return s, err
}

// fillScheduler sets the rate, misses and lag from two scheduler scrapes.
func (r *sysResult) fillScheduler(m0, m1 schedMetrics) {
	r.Checks = int64(m1.Checks - m0.Checks)
	r.Rate = float64(r.Checks) / r.U.Seconds
	r.Missed = m1.missed() - m0.missed()
	r.LagP99 = lagQuantile(m0, m1, 0.99)
	r.Success = math.NaN()
	if r.Missed > 0 {
		var parts []string
		for k, v := range m1.Missed {
			if d := v - m0.Missed[k]; d > 0 {
				parts = append(parts, fmt.Sprintf("%s=%.0f", k, d))
			}
		}
		r.Notes = append(r.Notes, "missed by reason: "+strings.Join(parts, " "))
	}
}

// phaseBlackbox is (b): Debian's blackbox_exporter driven through /probe.
func phaseBlackbox(ctx context.Context, env *env, rate float64, name string) (sysResult, error) {
	o := env.opts
	r := sysResult{System: name, TargetRate: rate, Missed: math.NaN(), LagP99: math.NaN()}
	progress("b: blackbox_exporter /probe at %.0f/s (driver concurrency %d)", rate, o.bbConcurrency)
	ex, err := startBlackbox(ctx, env, "blackbox-"+fmt.Sprint(rate))
	if err != nil {
		return r, err
	}
	defer ex.stop()
	n := int(o.rate * o.interval.Seconds())
	urls := make([]string, n)
	for i := range urls {
		urls[i] = ex.base + "/probe?module=http_2xx&target=" + url.QueryEscape(targetURL(env.farm.Addrs, i, ""))
	}
	return driveBlackbox(ctx, env, ex, urls, r)
}

// driveBlackbox offers r.TargetRate /probe requests per second, cycling
// through urls, and measures blackbox_exporter over the short window.
func driveBlackbox(ctx context.Context, env *env, ex *exporterProc, urls []string, r sysResult) (sysResult, error) {
	o, rate := env.opts, r.TargetRate
	client := &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: o.bbConcurrency, MaxIdleConns: o.bbConcurrency},
	}
	var probeFailed atomic.Int64
	probe := func(i int64) error {
		resp, err := client.Get(urls[i%int64(len(urls))])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		// An unsuccessful probe is still a completed check.
		if !strings.Contains(string(body), "\nprobe_success 1\n") {
			probeFailed.Add(1)
		}
		return nil
	}
	var lc loadCounters
	lctx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	go openLoop(lctx, rate, o.bbConcurrency, &lc, probe)
	if err := sleep(ctx, o.bbWarmup); err != nil {
		return r, err
	}
	l0, pf0 := lc.snap(), probeFailed.Load()
	w0, err := takeWindow(env, ex.pid())
	if err != nil {
		return r, err
	}
	if err := sleep(ctx, o.bbWindow); err != nil {
		return r, err
	}
	w1, err := takeWindow(env, ex.pid())
	if err != nil {
		return r, err
	}
	d, pf := lc.snap().sub(l0), probeFailed.Load()-pf0
	stopLoad()
	r.U = between(w0, w1)
	r.HWM = w1.proc.HWMBytes
	// A probe counts when blackbox answered it, successful or not.
	r.Checks = d.OK
	r.Rate = float64(d.OK) / r.U.Seconds
	r.Errors = d.Failed + d.Dropped
	if d.OK > 0 {
		r.Success = float64(d.OK-pf) / float64(d.OK)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("offered %d, answered %d (probe_success 0: %d), /probe errors %d, dropped at the concurrency bound %d",
		d.Issued, d.OK, pf, d.Failed, d.Dropped))
	if top := lc.errs.top(3); len(top) > 0 {
		r.Notes = append(r.Notes, "errors: "+strings.Join(top, "; "))
	}
	return r, nil
}

// phaseClient is (c): the minimal Go client in its own process.
func phaseClient(ctx context.Context, env *env) (sysResult, error) {
	o := env.opts
	r := sysResult{System: "minimal Go client", TargetRate: o.rate, Missed: math.NaN(), LagP99: math.NaN()}
	progress("c: minimal client at %.0f/s", o.rate)
	return runClient(ctx, env, r, fmt.Sprint("-targets=", int(o.rate*o.interval.Seconds())), "-addrs="+strings.Join(env.farm.Addrs, ","))
}

// runClient runs the `client` subcommand at r.TargetRate over the short
// warm-up and window, with args naming its targets, and reads its report.
func runClient(ctx context.Context, env *env, r sysResult, args ...string) (sysResult, error) {
	o := env.opts
	cr, err := startClient(env, r, args...)
	if err != nil {
		return r, err
	}
	defer cr.c.stop()
	// The client measures itself; these windows only frame the farm and machine.
	if err := sleep(ctx, o.bbWarmup); err != nil {
		return r, err
	}
	w0, _ := takeWindow(env, cr.c.pid())
	if err := sleep(ctx, o.bbWindow); err != nil {
		return r, err
	}
	w1, _ := takeWindow(env, cr.c.pid())
	return cr.result(ctx, w0, w1)
}

// clientRun is a running `client` subcommand.
type clientRun struct {
	c   *child
	out *bytes.Buffer
	r   sysResult
}

// startClient starts the `client` subcommand at r.TargetRate over the
// short warm-up and window, with args naming its targets.
func startClient(env *env, r sysResult, args ...string) (*clientRun, error) {
	o := env.opts
	cr := &clientRun{out: new(bytes.Buffer), r: r}
	var err error
	cr.c, err = startChild(env.dir, "client", cr.out, env.self, append([]string{"client",
		fmt.Sprint("-rate=", r.TargetRate), fmt.Sprint("-warmup=", o.bbWarmup), fmt.Sprint("-window=", o.bbWindow)}, args...)...)
	return cr, err
}

// result waits for the client's report and stops it; w0 and w1 frame its
// window for the farm's and the machine's figures.
func (cr *clientRun) result(ctx context.Context, w0, w1 window) (sysResult, error) {
	defer cr.c.stop()
	r, c := cr.r, cr.c
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		return r, fmt.Errorf("client did not finish; its log ends:\n%s", c.logTail())
	case <-ctx.Done():
		return r, ctx.Err()
	}
	var rep clientReport
	if err := json.Unmarshal(cr.out.Bytes(), &rep); err != nil {
		return r, fmt.Errorf("client output %q: %w; its log ends:\n%s", cr.out.String(), err, c.logTail())
	}
	r.U = between(w0, w1)
	r.U.Seconds, r.U.CPU, r.U.UserCPU = rep.Seconds, rep.CPU, rep.UserCPU
	r.U.MinorFaults, r.U.CtxSwitches = 0, 0
	r.HWM = rep.HWMBytes
	r.Checks = rep.Load.OK + rep.Load.Failed
	r.Rate = float64(r.Checks) / rep.Seconds
	r.Errors = rep.Load.Failed + rep.Load.Dropped
	if r.Checks > 0 {
		r.Success = float64(rep.Load.OK) / float64(r.Checks)
	}
	r.Notes = append(r.Notes, fmt.Sprintf("offered %d, ok %d, failed %d, dropped %d",
		rep.Load.Issued, rep.Load.OK, rep.Load.Failed, rep.Load.Dropped))
	if len(rep.Errors) > 0 {
		r.Notes = append(r.Notes, "errors: "+strings.Join(rep.Errors, "; "))
	}
	return r, nil
}
