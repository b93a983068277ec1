package main

import (
	"fmt"
	"io"
	"math"
	"time"
)

// goal is one of the project's performance goals.
type goal struct {
	name   string
	pass   bool
	detail string
	skip   bool
}

func (r *report) goals() []goal {
	var gs []goal
	v := r.vantage
	if v == nil {
		gs = append(gs, goal{name: fmt.Sprintf("%.0f checks/s with 0 missed", r.env.opts.rate), skip: true})
	} else {
		okRate := v.Rate >= 0.98*v.TargetRate
		okSuccess := math.IsNaN(v.Success) || v.Success >= 0.99
		gs = append(gs, goal{
			name: fmt.Sprintf("%.0f checks/s with 0 missed", v.TargetRate),
			pass: okRate && v.Missed == 0 && okSuccess,
			detail: fmt.Sprintf("%.0f checks/s (%.1f%% of target, ≥98%% needed), %s missed, %s successful (≥99%% needed), p99 lag %s",
				v.Rate, 100*v.Rate/v.TargetRate, num(v.Missed), pct(v.Success), secs(v.LagP99)),
		})
	}
	bb := r.bestBlackbox()
	if v == nil || bb == nil {
		gs = append(gs, goal{name: "vantage CPU per check ≤ 1/3 of blackbox_exporter's", skip: true})
	} else {
		ratio := v.cpuPer1k() / bb.cpuPer1k()
		gs = append(gs, goal{
			name: "vantage CPU per check ≤ 1/3 of blackbox_exporter's",
			pass: ratio <= 1.0/3,
			detail: fmt.Sprintf("%.3f vs %.3f CPU s/1k checks (blackbox's lowest, at %.0f/s): ratio %.2f, goal ≤ 0.33",
				v.cpuPer1k(), bb.cpuPer1k(), bb.Rate, ratio),
		})
	}
	c := r.client
	if v == nil || c == nil {
		gs = append(gs, goal{name: "vantage CPU per check ≤ 1.5× the minimal client's", skip: true})
	} else {
		ratio := v.cpuPer1k() / c.cpuPer1k()
		gs = append(gs, goal{
			name:   "vantage CPU per check ≤ 1.5× the minimal client's",
			pass:   ratio <= 1.5,
			detail: fmt.Sprintf("%.3f vs %.3f CPU s/1k checks: ratio %.2f, goal ≤ 1.50", v.cpuPer1k(), c.cpuPer1k(), ratio),
		})
	}
	gs = append(gs, r.inFlightGoal())
	gs = append(gs, r.scrapeGoals()...)
	gs = append(gs, r.clusterGoal(), r.startupGoal(), r.seriesGoal())
	gs = append(gs, r.coordGoals()...)
	gs = append(gs, r.protocolGoals()...)
	return gs
}

// bestBlackbox is the blackbox run with the lowest CPU per check: the
// comparison most favourable to blackbox_exporter.
func (r *report) bestBlackbox() *sysResult {
	var best *sysResult
	for i := range r.blackbox {
		b := &r.blackbox[i]
		if b.Checks > 0 && (best == nil || b.cpuPer1k() < best.cpuPer1k()) {
			best = b
		}
	}
	return best
}

func (r *report) inFlightGoal() goal {
	const want, rssLimit = 10000, 256 << 20
	g := goal{name: "10,000 checks in flight with peak RSS ≤ 256 MiB"}
	d := r.inflight
	if d == nil {
		g.skip = true
		return g
	}
	g.pass = d.Peak >= want && d.HWM <= rssLimit
	g.detail = fmt.Sprintf("peak in flight %.0f (mean %.0f), peak RSS %s", d.Peak, d.Mean, mib(d.HWM))
	return g
}

// scrapeGoals judge e's runs, one per series set.
func (r *report) scrapeGoals() []goal {
	if len(r.scrapes) == 0 {
		return []goal{{name: fmt.Sprintf("GET /metrics over %d targets < 1 s", r.env.opts.scrapeTargets), skip: true}}
	}
	var gs []goal
	for i := range r.scrapes {
		gs = append(gs, r.scrapeGoalOf(&r.scrapes[i]))
	}
	return gs
}

func (r *report) scrapeGoalOf(s *scrapeResult) goal {
	g := goal{name: fmt.Sprintf("GET /metrics over %d targets < 1 s (series: %s)", r.env.opts.scrapeTargets, s.Series)}
	_, pMed, pMax := durations(s.Plain)
	_, gMed, gMax := durations(s.Gzip)
	g.pass = pMax < time.Second && gMax < time.Second && s.Rows == int64(s.Targets)
	g.detail = fmt.Sprintf("plain max %s (median %s, %s), gzip max %s (median %s, %s); %d of %d targets had a result",
		ms(pMax), ms(pMed), mib(s.Plain[0].Bytes), ms(gMax), ms(gMed), mib(s.Gzip[0].Bytes), s.Rows, s.Targets)
	return g
}

// seriesGoal is "Cost in Prometheus": the series per HTTP target on
// /metrics, counted in e's plain scrapes, with every series and with the
// opt-in minimal set, which must cost less.
func (r *report) seriesGoal() goal {
	g := goal{name: "series per target written down, with an opt-in that reduces them"}
	per := map[string]float64{}
	for _, s := range r.scrapes {
		if len(s.Plain) > 0 && s.Rows > 0 {
			per[s.Series] = float64(s.Plain[0].Series) / float64(s.Rows)
		}
	}
	full, okF := per["full"]
	minimal, okM := per["minimal"]
	if !okF || !okM {
		g.skip = true
		return g
	}
	g.pass = minimal < full
	g.detail = fmt.Sprintf("HTTP target: %.1f series (series: full), %.1f (series: minimal); per prober: BENCHMARKS.md", full, minimal)
	return g
}

func (r *report) printGoals(w io.Writer) {
	fmt.Fprintln(w, "Goals")
	for _, g := range r.goals() {
		switch {
		case g.skip:
			fmt.Fprintf(w, "  SKIP  %s (phase not run)\n", g.name)
		case g.pass:
			fmt.Fprintf(w, "  PASS  %s: %s\n", g.name, g.detail)
		default:
			fmt.Fprintf(w, "  FAIL  %s: %s\n", g.name, g.detail)
		}
	}
	fmt.Fprintln(w)
}

// printWhere says where the scheduled exporter's time goes, from /proc
// counters only (no profiler).
func (r *report) printWhere(w io.Writer) {
	v := r.vantage
	if v == nil || v.Checks == 0 {
		return
	}
	per1k := func(x float64) float64 { return x / float64(v.Checks) * 1000 }
	u := v.U
	fmt.Fprintln(w, "Where the time goes in (a), from /proc only")
	fmt.Fprintf(w, "  vantage-exporter used %.2f of %d cores: user %.3f s + sys %.3f s per 1k checks; %.1f context switches and %.1f minor faults per check\n",
		u.CPU/u.Seconds, numCPU(), per1k(u.UserCPU), per1k(u.CPU-u.UserCPU),
		float64(u.CtxSwitches)/float64(v.Checks), float64(u.MinorFaults)/float64(v.Checks))
	if c := r.client; c != nil && c.Checks > 0 {
		cu := c.U.UserCPU / float64(c.Checks) * 1000
		cs := (c.U.CPU - c.U.UserCPU) / float64(c.Checks) * 1000
		fmt.Fprintf(w, "  minimal client: user %.3f s + sys %.3f s per 1k checks. The kernel's share (connect, send, receive, close) is about the same for both;\n", cu, cs)
		fmt.Fprintf(w, "  vantage's own work (scheduling, tracing, result table, metrics) is the user-time difference: %+.3f s per 1k checks, sys difference %+.3f s\n",
			per1k(u.UserCPU)-cu, per1k(u.CPU-u.UserCPU)-cs)
	}
	if u.FarmServed > 0 {
		fmt.Fprintf(w, "  the farm served %.0f requests/s using %.2f cores (%.3f CPU s/1k); the machine was %.0f%% busy: ",
			float64(u.FarmServed)/u.Seconds, u.FarmCPU/u.Seconds, u.FarmCPU/float64(u.FarmServed)*1000, 100*u.MachineBusy)
		if u.MachineBusy > 0.9 {
			fmt.Fprintln(w, "CPU-bound, so the exporter and the farm competed for cores")
		} else {
			fmt.Fprintln(w, "not CPU-bound")
		}
	}
	fmt.Fprintln(w)
}
