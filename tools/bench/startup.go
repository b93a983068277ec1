package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"time"
)

// startupOptions are the flags of (s).
type startupOptions struct {
	targets  int
	interval time.Duration
	canary   time.Duration
	poll     time.Duration
	settle   time.Duration
	maxStall time.Duration
}

func (so *startupOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&so.targets, "startup-targets", 1000000, "targets in s (startup and reload)")
	fs.DurationVar(&so.interval, "startup-interval", time.Hour, "check interval of s's targets: long, so that they are not all checked")
	fs.DurationVar(&so.canary, "startup-canary-interval", time.Second, "interval of s's canary target, which shows that checking goes on during the reload")
	fs.DurationVar(&so.poll, "startup-poll", 250*time.Millisecond, "how often s reads the scheduler's series around the reload")
	fs.DurationVar(&so.settle, "startup-settle", 5*time.Second, "how long s watches before the reload and after it was applied")
	fs.DurationVar(&so.maxStall, "startup-max-stall", 500*time.Millisecond, "longest stretch without a check started that s accepts during the reload")
}

// startupResult is (s).
type startupResult struct {
	Targets           int
	Interval          time.Duration
	Ready             time.Duration // start to the first 200 on /-/ready
	Scheduled         time.Duration // start to vantage_scheduler_targets reaching every target
	RSSReady, RSSIdle int64         // VmRSS when ready, and once scheduled and settled
	HWMStart          int64         // VmHWM before the reload
	ReloadAnswer      time.Duration // POST /-/reload to its answer (the configuration loaded)
	ReloadApplied     time.Duration // POST /-/reload to the scheduler holding the targets again
	HWMReload         int64         // VmHWM after the reload
	RSSAfter          int64         // VmRSS after the reload settled
	ReloadCPU         float64       // exporter CPU seconds over the reload, checks included
	// Around the reload: the longest stretch without a check started (a
	// bound: the polls are Poll apart), the highest lag bucket any check
	// started in, and the checks started per second before and during it.
	Stall          time.Duration
	StallAt        time.Duration // when the longest stretch began, from the reload request
	MaxLag         float64
	RateBefore     float64
	RateDuring     float64
	Polls          int
	AppliedWatched bool // the reload's application was seen (the scheduler logged it)
}

// phaseStartup is (s): an exporter started with a million targets checked
// rarely, then reloaded with the same configuration while a canary target
// is checked several times a second.
func phaseStartup(ctx context.Context, env *env) (startupResult, error) {
	o := env.opts.startup
	r := startupResult{Targets: o.targets, Interval: o.interval}
	progress("s: vantage-exporter with %d targets every %s and one every %s; startup, then a reload of the same set",
		o.targets, o.interval, o.canary)
	spec := vantageSpec{Targets: o.targets, Interval: o.interval, Timeout: time.Second, MaxInFlight: 1000}
	cfg, err := writeVantageConfig(env.dir, "vantage-s", env.farm, spec)
	if err != nil {
		return r, err
	}
	if err := appendCanaryGroup(cfg, targetURL(env.farm.Addrs, o.targets, "?canary"), o.canary); err != nil {
		return r, err
	}
	// Info level: the scheduler logs when it took a new target set.
	t0 := time.Now()
	ex, err := startExporter(ctx, env.dir, "vantage-s", env.vantageBin, cfg, "/-/ready", append([]string{"--log.level=info"}, env.pprofArgs()...)...)
	if err != nil {
		return r, err
	}
	defer ex.stop()
	r.Ready = ex.startup
	p, _ := readProc(ex.pid())
	r.RSSReady = p.RSSBytes
	want := float64(o.targets + 1)
	for {
		m, err := scrapeScheduler(ctx, ex.base)
		if err != nil {
			return r, err
		}
		if m.Targets >= want {
			r.Scheduled = time.Since(t0)
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return r, fmt.Errorf("the scheduler holds %.0f of %.0f targets 10 minutes after the start", m.Targets, want)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return r, err
		}
	}
	progress("s: ready after %s, every target scheduled after %s; settling %s", r.Ready.Round(time.Millisecond), r.Scheduled.Round(time.Millisecond), o.settle)
	if err := sleep(ctx, o.settle); err != nil {
		return r, err
	}
	p, _ = readProc(ex.pid())
	r.RSSIdle, r.HWMStart = p.RSSBytes, p.HWMBytes
	saveProfile(ctx, env, ex, "heap", "s-heap-idle")

	// Watch before the reload, during it and after it was applied.
	w := &stallWatch{ctx: ctx, base: ex.base, poll: o.poll}
	if err := w.watch(o.settle); err != nil {
		return r, err
	}
	before := w.samples[len(w.samples)-1]
	r.RateBefore = (before.m.Checks - w.samples[0].m.Checks) / before.at.Sub(w.samples[0].at).Seconds()
	logBefore := logSize(ex.child)
	p0, _ := readProc(ex.pid())
	start := time.Now()
	answered := make(chan error, 1)
	go func() { answered <- postReload(ctx, ex.base) }()
	go saveProfile(ctx, env, ex, "profile?seconds=30", "s-cpu-reload")
	var answer error
	for done := false; !done; {
		if err := w.sample(); err != nil {
			return r, err
		}
		select {
		case answer = <-answered:
			r.ReloadAnswer = time.Since(start)
			done = true
		default:
		}
	}
	if answer != nil {
		return r, fmt.Errorf("POST /-/reload: %w", answer)
	}
	// The reload answers once the configuration is loaded; the scheduler
	// takes the targets after that and logs it.
	for time.Since(start) < r.ReloadAnswer+2*time.Minute {
		if err := w.sample(); err != nil {
			return r, err
		}
		if logContains(ex.child, logBefore, "Scheduled targets updated") {
			r.ReloadApplied = time.Since(start)
			r.AppliedWatched = true
			break
		}
	}
	if err := w.watch(o.settle); err != nil {
		return r, err
	}
	p1, _ := readProc(ex.pid())
	r.ReloadCPU = p1.cpuSeconds() - p0.cpuSeconds()
	r.HWMReload, r.RSSAfter = p1.HWMBytes, p1.RSSBytes
	during := w.since(start)
	var stallFrom time.Time
	r.Stall, stallFrom = during.stall()
	r.StallAt = stallFrom.Sub(start)
	r.MaxLag = lagMax(before.m, w.samples[len(w.samples)-1].m)
	last := w.samples[len(w.samples)-1]
	r.RateDuring = (last.m.Checks - before.m.Checks) / last.at.Sub(before.at).Seconds()
	r.Polls = len(during.samples)
	return r, nil
}

// appendCanaryGroup adds a target group of one target checked every
// interval to a configuration writeVantageConfig wrote.
func appendCanaryGroup(path, target string, interval time.Duration) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "  - module: http_2xx\n    interval: %s\n    targets:\n      - %s\n", interval, target)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func postReload(ctx context.Context, base string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/-/reload", nil)
	resp, err := plainClient(5 * time.Minute).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	return nil
}

// stallWatch reads the scheduler's series every poll.
type stallWatch struct {
	ctx     context.Context
	base    string
	poll    time.Duration
	samples []schedSample
}

type schedSample struct {
	at time.Time
	m  schedMetrics
}

// sample reads the series once. Its time is when the request went out:
// the exporter reads its counters first thing, and the answer may come
// much later while the exporter is busy.
func (w *stallWatch) sample() error {
	at := time.Now()
	m, err := scrapeScheduler(w.ctx, w.base)
	if err != nil {
		return err
	}
	w.samples = append(w.samples, schedSample{at: at, m: m})
	return sleep(w.ctx, time.Until(at.Add(w.poll)))
}

func (w *stallWatch) watch(d time.Duration) error {
	for end := time.Now().Add(d); time.Now().Before(end); {
		if err := w.sample(); err != nil {
			return err
		}
	}
	return nil
}

// since is the watch from the last sample before t on.
func (w *stallWatch) since(t time.Time) *stallWatch {
	i := 0
	for i+1 < len(w.samples) && w.samples[i+1].at.Before(t) {
		i++
	}
	return &stallWatch{samples: w.samples[i:]}
}

// stall is the longest time the checks counter stood still: from the first
// sample showing a value to the first showing a higher one.
func (w *stallWatch) stall() (longest time.Duration, began time.Time) {
	from := 0
	end := func(i int) {
		if d := w.samples[i].at.Sub(w.samples[from].at); d > longest {
			longest, began = d, w.samples[from].at
		}
	}
	for i := 1; i < len(w.samples); i++ {
		if w.samples[i].m.Checks > w.samples[from].m.Checks {
			end(i)
			from = i
		}
	}
	if n := len(w.samples); n > 0 {
		end(n - 1)
	}
	return longest, began
}

// lagMax is the upper bound of the highest lag bucket that gained an
// observation between a and b; +Inf above the highest finite bucket, 0 for
// none.
func lagMax(a, b schedMetrics) float64 {
	var top float64
	prev := 0.0
	for _, le := range sortedKeys(b.LagLE) {
		n := b.LagLE[le] - a.LagLE[le]
		if n > prev {
			top = le
		}
		prev = n
	}
	return top
}

func sortedKeys(m map[float64]float64) []float64 {
	keys := make([]float64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

func (r *report) printStartup(w io.Writer) {
	s := r.startup
	if s == nil {
		return
	}
	fmt.Fprintf(w, "Startup and reload (s): %d targets every %s plus one canary every %s (loopback farm)\n",
		s.Targets, s.Interval, r.env.opts.startup.canary)
	fmt.Fprintf(w, "  startup: ready (/-/ready) after %s, every target scheduled after %s; RSS %s when ready, %s once settled\n",
		s.Ready.Round(time.Millisecond), s.Scheduled.Round(time.Millisecond), mib(s.RSSReady), mib(s.RSSIdle))
	applied := "not seen in the log within 2 minutes"
	if s.AppliedWatched {
		applied = s.ReloadApplied.Round(time.Millisecond).String()
	}
	fmt.Fprintf(w, "  reload of the same file (POST /-/reload): answered after %s, scheduler took the targets after %s; %.2f CPU s; peak RSS %s before, %s after; RSS after %s\n",
		s.ReloadAnswer.Round(time.Millisecond), applied, s.ReloadCPU, mib(s.HWMStart), mib(s.HWMReload), mib(s.RSSAfter))
	fmt.Fprintf(w, "  checking during the reload (%d reads of the scheduler's series, %s apart): longest stretch without a check started %s (from %s after the request), highest lag bucket %s, %.0f checks/s (%.0f before)\n\n",
		s.Polls, r.env.opts.startup.poll, ms(s.Stall), s.StallAt.Round(time.Millisecond), lagBucket(s.MaxLag), s.RateDuring, s.RateBefore)
}

func lagBucket(le float64) string {
	if math.IsInf(le, 1) {
		return "+Inf"
	}
	return fmt.Sprintf("≤ %gs", le)
}

func (r *report) startupGoal() goal {
	o := r.env.opts.startup
	g := goal{name: fmt.Sprintf("reload of %d unchanged targets does not pause checking", o.targets)}
	s := r.startup
	if s == nil {
		g.skip = true
		return g
	}
	g.pass = s.AppliedWatched && s.Stall <= o.maxStall && s.MaxLag <= o.maxStall.Seconds()
	g.detail = fmt.Sprintf("longest stretch without a check started %s, highest lag bucket %s (goal ≤ %s each); startup %s to ready, %s scheduled, RSS %s; reload %s, peak RSS %s",
		ms(s.Stall), lagBucket(s.MaxLag), o.maxStall, s.Ready.Round(time.Millisecond), s.Scheduled.Round(time.Millisecond), mib(s.RSSIdle),
		s.ReloadApplied.Round(time.Millisecond), mib(s.HWMReload))
	return g
}

func logSize(c *child) int64 {
	fi, err := os.Stat(c.log)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logContains reports whether the child's log holds s past offset from.
func logContains(c *child, from int64, s string) bool {
	b, err := os.ReadFile(c.log)
	if err != nil || int64(len(b)) < from {
		return false
	}
	return strings.Contains(string(b[from:]), s)
}
