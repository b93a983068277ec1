package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// clusterRow is one run of (f): the targets at the same total rate on n
// exporters, split by hand or shared as a cluster.
type clusterRow struct {
	members   int
	cluster   bool
	idle      bool // no targets: what the exporters cost doing nothing
	checks    int64
	cpu       float64 // all exporters, seconds
	seconds   float64
	perMember []float64 // CPU s/1k checks of each exporter
	missed    float64
}

func (c clusterRow) cpuPer1k() float64 { return c.cpu / float64(c.checks) * 1000 }

func (c clusterRow) name() string {
	switch {
	case c.idle && c.cluster:
		return fmt.Sprintf("idle cluster of %d (no targets)", c.members)
	case c.idle:
		return fmt.Sprintf("%d idle exporter(s) (no targets)", c.members)
	case c.cluster:
		return fmt.Sprintf("cluster of %d", c.members)
	}
	return fmt.Sprintf("%d exporter(s), targets split by hand", c.members)
}

// coresEach is the CPU each exporter used, in cores.
func (c clusterRow) coresEach() float64 { return c.cpu / c.seconds / float64(c.members) }

// phaseCluster is (f): the overhead of gossip and ownership. The same
// targets at the same total rate run on n = 1, 2, 3 exporters, first
// split by hand (each its own share, no cluster: what a cluster
// replaces), then as a cluster of n sharing the whole list; CPU per
// check is summed over the exporters. The difference at equal n is the
// cluster's cost: gossip, ownership, the whole target list in every
// member.
func phaseCluster(ctx context.Context, env *env) ([]clusterRow, error) {
	o := env.opts
	n := int(o.clusterRate * o.interval.Seconds())
	spec := vantageSpec{Targets: n, Interval: o.interval, Timeout: 5 * time.Second, MaxInFlight: o.maxInFlight}
	var rows []clusterRow
	// Idle first: the cluster's own cost, without checks to hide in.
	for _, cluster := range []bool{false, true} {
		row, err := runCluster(ctx, env, vantageSpec{Interval: o.interval, MaxInFlight: o.maxInFlight}, 3, cluster)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	for _, members := range []int{1, 2, 3} {
		for _, cluster := range []bool{false, true} {
			row, err := runCluster(ctx, env, spec, members, cluster)
			if err != nil {
				return nil, err
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

func runCluster(ctx context.Context, env *env, spec vantageSpec, members int, cluster bool) (clusterRow, error) {
	o := env.opts
	row := clusterRow{members: members, cluster: cluster, idle: spec.Targets == 0}
	progress("f: %s, %d targets every %s (%.0f checks/s in all)", row.name(), spec.Targets, o.interval, o.clusterRate)
	gossip := make([]string, members)
	for i := range gossip {
		a, err := freeAddr()
		if err != nil {
			return row, err
		}
		gossip[i] = a
	}
	var exs []*exporterProc
	defer func() {
		for _, ex := range exs {
			ex.stop()
		}
	}()
	for i := range members {
		name := fmt.Sprintf("vantage-f%d-%t-%d", members, cluster, i)
		s := spec
		args := []string{"--log.level=warn", "--location=bench"}
		if cluster {
			args = append(args, "--cluster.listen-address="+gossip[i], "--cluster.peer="+gossip[0])
		} else {
			s.Shard, s.Shards = i, members
		}
		cfg, err := writeVantageConfig(env.dir, name, env.farm, s)
		if err != nil {
			return row, err
		}
		ex, err := startExporter(ctx, env.dir, name, env.vantageBin, cfg, "/-/ready", args...)
		if err != nil {
			return row, err
		}
		exs = append(exs, ex)
	}
	if err := sleep(ctx, o.clusterWarmup); err != nil {
		return row, err
	}
	type edge struct {
		m schedMetrics
		p procSnap
	}
	read := func() ([]edge, time.Time, error) {
		out := make([]edge, len(exs))
		for i, ex := range exs {
			m, err := scrapeScheduler(ctx, ex.base)
			if err != nil {
				return nil, time.Time{}, err
			}
			p, err := readProc(ex.pid())
			if err != nil {
				return nil, time.Time{}, err
			}
			out[i] = edge{m, p}
		}
		return out, time.Now(), nil
	}
	e0, t0, err := read()
	if err != nil {
		return row, err
	}
	if err := sleep(ctx, o.clusterWindow); err != nil {
		return row, err
	}
	e1, t1, err := read()
	if err != nil {
		return row, err
	}
	row.seconds = t1.Sub(t0).Seconds()
	for i := range exs {
		checks := int64(e1[i].m.Checks - e0[i].m.Checks)
		cpu := e1[i].p.cpuSeconds() - e0[i].p.cpuSeconds()
		row.checks += checks
		row.cpu += cpu
		row.missed += e1[i].m.missed() - e0[i].m.missed()
		row.perMember = append(row.perMember, cpu/float64(max(checks, 1))*1000)
	}
	return row, nil
}

func (r *report) printCluster(w io.Writer) {
	if len(r.cluster) == 0 {
		return
	}
	o := r.env.opts
	fmt.Fprintf(w, "Clusters (f): 3 exporters without targets (alone, then as a cluster), then %d targets every %s (%.0f checks/s in all)\n",
		int(o.clusterRate*o.interval.Seconds()), o.interval, o.clusterRate)
	fmt.Fprintln(w, "  on 1, 2 and 3 exporters, split by hand, then as a cluster. CPU is summed over the exporters (utime+stime),")
	fmt.Fprintln(w, "  checks are their scheduler counts.")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "exporters\tchecks/s\tcores each\tCPU s/1k checks\tper exporter\tcluster vs split\tmissed\t")
	var split float64
	for _, c := range r.cluster {
		per := make([]string, len(c.perMember))
		for i, p := range c.perMember {
			per[i] = fmt.Sprintf("%.3f", p)
		}
		vs, per1k := "", "n/a"
		switch {
		case c.idle:
			per = nil
		case c.cluster:
			vs = fmt.Sprintf("%+.1f%%", 100*(c.cpuPer1k()/split-1))
		default:
			split = c.cpuPer1k()
		}
		if !c.idle {
			per1k = fmt.Sprintf("%.3f", c.cpuPer1k())
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.4f\t%s\t%s\t%s\t%.0f\t\n", c.name(), float64(c.checks)/c.seconds, c.coresEach(), per1k, strings.Join(per, " "), vs, c.missed)
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// clusterGoal: gossip and ownership cost at most 5% of the CPU the checks
// take. It is judged on the idle runs, which a loaded machine does not
// blur: the CPU an idle member of a cluster of 3 uses beyond an idle lone
// exporter, against the CPU each of 3 exporters splitting the rate by hand
// uses for its checks.
func (r *report) clusterGoal() goal {
	g := goal{name: "cluster overhead (gossip and ownership) ≤ 5% of the CPU of the checks"}
	if len(r.cluster) < 8 {
		g.skip = true
		return g
	}
	idleSplit, idleCluster, split3 := r.cluster[0], r.cluster[1], r.cluster[6]
	extra := idleCluster.coresEach() - idleSplit.coresEach()
	work := split3.coresEach()
	g.pass = extra <= 0.05*work
	var parts []string
	for i := 2; i+1 < len(r.cluster); i += 2 {
		parts = append(parts, fmt.Sprintf("%d: %+.1f%%", r.cluster[i+1].members, 100*(r.cluster[i+1].cpuPer1k()/r.cluster[i].cpuPer1k()-1)))
	}
	g.detail = fmt.Sprintf("an idle member uses %.4f cores more than an idle lone exporter, %.1f%% of the %.3f cores each of 3 exporters uses at %.0f checks/s in all; measured under load, cluster vs split by hand: %s",
		extra, 100*extra/work, work, r.env.opts.clusterRate, strings.Join(parts, ", "))
	return g
}
