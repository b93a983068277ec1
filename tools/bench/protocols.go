package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// protoOptions are the flags of phase p.
type protoOptions struct {
	list           string
	rate           float64
	httpsRate      float64
	interval       time.Duration
	profileDir     string
	profileSeconds int
}

func protoFlags(fs *flag.FlagSet, p *protoOptions) {
	fs.StringVar(&p.list, "protocols", "tcp,dns,icmp,https", "protocols of p, in the order they run")
	fs.Float64Var(&p.rate, "protocol-rate", 500, "checks per second of tcp, dns and icmp in p (blackbox_exporter sustains it)")
	fs.Float64Var(&p.httpsRate, "protocol-https-rate", 100, "checks per second of https in p")
	fs.DurationVar(&p.interval, "protocol-interval", 5*time.Second, "check interval in p: vantage schedules rate×interval targets (the module timeout is the same)")
	fs.StringVar(&p.profileDir, "protocol-profile-dir", "", "after each vantage window of p, write a CPU profile of the exporter here (<protocol>.pprof)")
	fs.IntVar(&p.profileSeconds, "protocol-profile-seconds", 10, "length of those CPU profiles")
}

// protoSpec is one protocol of phase p.
type protoSpec struct {
	name    string
	module  string   // the module's name
	yaml    string   // the module's YAML, indented for `modules:`
	targets []string // distinct targets, one per scheduled check every interval
	rate    float64
	client  []string // args of the bare `client` run, nil for none
}

// protoRow is what phase p measured for one protocol.
type protoRow struct {
	Protocol string
	Vantage  sysResult
	Blackbox sysResult
	Client   *sysResult // https only: a bare Go client doing the same handshake
	Profile  string     // the exporter's CPU profile, "" when not taken
}

// protoSpecs prepares the protocols of o against the protocol farm.
func protoSpecs(o protoOptions, farm protoFarmInfo) ([]protoSpec, error) {
	timeout := o.interval
	n := int(o.rate * o.interval.Seconds())
	nHTTPS := int(o.httpsRate * o.interval.Seconds())
	var specs []protoSpec
	for _, name := range strings.Split(o.list, ",") {
		s := protoSpec{name: name, rate: o.rate}
		switch name {
		case "tcp":
			s.module, s.targets = "tcp_connect", farm.TCP[:n]
			s.yaml = "    prober: tcp\n    tcp:\n      preferred_ip_protocol: ip4\n"
		case "dns":
			s.module, s.targets = "dns_udp", farm.DNS[:n]
			s.yaml = fmt.Sprintf("    prober: dns\n    dns:\n      preferred_ip_protocol: ip4\n      transport_protocol: udp\n      query_name: %s\n      query_type: A\n", protoQueryName)
		case "icmp":
			s.module = "icmp"
			s.yaml = "    prober: icmp\n    icmp:\n      preferred_ip_protocol: ip4\n"
			for i := range n {
				s.targets = append(s.targets, fmt.Sprintf("127.8.%d.%d", i/250, i%250+1))
			}
		case "https":
			s.module, s.rate = "https_2xx", o.httpsRate
			s.yaml = "    prober: http\n    http:\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: " + farm.CA + "\n"
			for i := range nHTTPS {
				s.targets = append(s.targets, fmt.Sprintf("https://%s/t/%d", farm.HTTPS[i%len(farm.HTTPS)], i))
			}
			s.client = []string{fmt.Sprint("-targets=", nHTTPS), "-addrs=" + strings.Join(farm.HTTPS, ","), "-ca=" + farm.CA}
		default:
			return nil, fmt.Errorf("-protocols: unknown protocol %q (tcp, dns, icmp, https)", name)
		}
		s.yaml = fmt.Sprintf("modules:\n  %s:\n    timeout: %s\n%s", s.module, timeout, s.yaml)
		specs = append(specs, s)
	}
	return specs, nil
}

// phaseProtocols is (p): CPU per check of each protocol, vantage's
// scheduled checks against blackbox_exporter's /probe at the same rate and,
// for https, a bare Go client; one after the other in one run.
func phaseProtocols(ctx context.Context, env *env) ([]protoRow, error) {
	o := env.opts.proto
	n := int(max(o.rate, o.httpsRate) * o.interval.Seconds())
	var farm protoFarmInfo
	c, err := startServerChild(env.dir, "protofarm", &farm, env.self, "protofarm",
		fmt.Sprint("-tcp=", n), fmt.Sprint("-dns=", n), "-dir="+env.dir)
	if err != nil {
		return nil, err
	}
	defer c.stop()
	progress("p: protocol farm: %d tcp listeners, %d dns servers, %d https listeners, pid %d", len(farm.TCP), len(farm.DNS), len(farm.HTTPS), farm.PID)
	specs, err := protoSpecs(o, farm)
	if err != nil {
		return nil, err
	}
	// The windows frame the protocol farm, not the HTTP one.
	penv := *env
	penv.farm = farmInfo{Control: farm.Control, PID: farm.PID}
	var rows []protoRow
	for _, s := range specs {
		row := protoRow{Protocol: s.name}
		if row.Vantage, row.Client, row.Profile, err = measureVantageProtocol(ctx, &penv, s); err != nil {
			return nil, fmt.Errorf("%s, vantage: %w", s.name, err)
		}
		if row.Blackbox, err = measureBlackboxProtocol(ctx, &penv, s); err != nil {
			return nil, fmt.Errorf("%s, blackbox_exporter: %w", s.name, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// measureVantageProtocol runs vantage-exporter scheduling s's targets and,
// when s has one, the bare client at the same time over the same window:
// the margin of the https goal is thinner than the drift of a shared
// machine's load between two windows one after the other.
func measureVantageProtocol(ctx context.Context, env *env, s protoSpec) (sysResult, *sysResult, string, error) {
	o := env.opts
	r := sysResult{System: s.name + ": vantage-exporter (scheduled)", TargetRate: s.rate, Errors: -1}
	progress("p: %s: vantage-exporter, %d targets every %s", s.name, len(s.targets), o.proto.interval)
	path := filepath.Join(env.dir, "vantage-"+s.name+".yml")
	cfg := fmt.Sprintf("%sscheduler:\n  max_in_flight: %d\n  retries: 0\n  retry_interval: 1s\n  interval: %s\n  file_refresh_interval: 1h\ntargets:\n  - module: %s\n    targets:\n",
		s.yaml, 10*len(s.targets), o.proto.interval, s.module)
	for _, t := range s.targets {
		cfg += "      - " + t + "\n"
	}
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return r, nil, "", err
	}
	ex, err := startExporter(ctx, env.dir, "vantage-"+s.name, env.vantageBin, path, "/-/ready", "--log.level=warn", "--web.enable-pprof")
	if err != nil {
		return r, nil, "", err
	}
	defer ex.stop()
	var cr *clientRun
	if s.client != nil {
		progress("p: %s: bare Go client at %.0f/s, at the same time", s.name, s.rate)
		cr, err = startClient(env, sysResult{System: s.name + ": bare Go client (same window)", TargetRate: s.rate, Missed: math.NaN(), LagP99: math.NaN()}, s.client...)
		if err != nil {
			return r, nil, "", err
		}
		defer cr.c.stop()
	}
	m0, w0, err := warmUp(ctx, env, ex, o.bbWarmup)
	if err != nil {
		return r, nil, "", err
	}
	if err := sleep(ctx, o.bbWindow); err != nil {
		return r, nil, "", err
	}
	w1, err := takeWindow(env, ex.pid())
	if err != nil {
		return r, nil, "", err
	}
	m1, err := scrapeScheduler(ctx, ex.base)
	if err != nil {
		return r, nil, "", err
	}
	r.U = between(w0, w1)
	r.fillScheduler(m0, m1)
	r.HWM = w1.proc.HWMBytes
	var client *sysResult
	if cr != nil {
		c, err := cr.result(ctx, w0, w1)
		if err != nil {
			return r, nil, "", fmt.Errorf("bare client: %w", err)
		}
		client = &c
	}
	full, err := scrapeAll(ctx, ex.base, false)
	if err != nil {
		return r, nil, "", err
	}
	if n := full.Success + full.Failure; n > 0 {
		r.Success = full.Success / n
	}
	var profile string
	if o.proto.profileDir != "" {
		profile = filepath.Join(o.proto.profileDir, s.name+".pprof")
		if err := fetchProfile(ctx, ex.base, o.proto.profileSeconds, profile); err != nil {
			return r, nil, "", err
		}
	}
	return r, client, profile, nil
}

// measureBlackboxProtocol drives blackbox_exporter's /probe over s's targets.
func measureBlackboxProtocol(ctx context.Context, env *env, s protoSpec) (sysResult, error) {
	r := sysResult{System: s.name + ": blackbox_exporter /probe", TargetRate: s.rate, Missed: math.NaN(), LagP99: math.NaN()}
	progress("p: %s: blackbox_exporter /probe at %.0f/s", s.name, s.rate)
	path := filepath.Join(env.dir, "blackbox-"+s.name+".yml")
	if err := os.WriteFile(path, []byte(s.yaml), 0o644); err != nil {
		return r, err
	}
	ex, err := startExporter(ctx, env.dir, "blackbox-"+s.name, env.blackboxBin, path, "/-/healthy", "--log.level=warn")
	if err != nil {
		return r, err
	}
	defer ex.stop()
	urls := make([]string, len(s.targets))
	for i, t := range s.targets {
		urls[i] = ex.base + "/probe?module=" + s.module + "&target=" + url.QueryEscape(t)
	}
	return driveBlackbox(ctx, env, ex, urls, r)
}

// fetchProfile writes a CPU profile of the exporter at base to path.
func fetchProfile(ctx context.Context, base string, seconds int, path string) error {
	progress("p: CPU profile of the exporter for %ds → %s", seconds, path)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds), nil)
	resp, err := plainClient(time.Duration(seconds+30) * time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *report) printProtocols(w io.Writer) {
	if len(r.protocols) == 0 {
		return
	}
	p := r.env.opts.proto
	fmt.Fprintf(w, "Protocols (p): each protocol's CPU per check, vantage-exporter scheduling rate×%s targets (timeout %s, retries 0)\n", p.interval, p.interval)
	fmt.Fprintln(w, "against blackbox_exporter 0.23 driven through /probe at the same rate, one after the other; for https a bare Go")
	fmt.Fprintln(w, "client (net/http, no keep-alive, no session cache: a full TLS handshake each, HTTP/2 offered) runs beside vantage, same window.")
	fmt.Fprintln(w, "farm is the protocol farm (TCP accepts, miekg/dns over UDP, HTTPS with an ECDSA P-256 certificate); icmp goes to 127.8.x.y.")
	fmt.Fprintln(w)
	var rows []sysResult
	for _, pr := range r.protocols {
		rows = append(rows, pr.Vantage, pr.Blackbox)
		if pr.Client != nil {
			rows = append(rows, *pr.Client)
		}
	}
	printRows(w, rows)
	for _, pr := range r.protocols {
		if pr.Profile != "" {
			fmt.Fprintf(w, "  %s: CPU profile of the exporter: %s\n", pr.Protocol, pr.Profile)
		}
	}
	fmt.Fprintln(w)
}

// protocolGoals: tcp, dns and icmp at ≤ 1/3 of blackbox_exporter's CPU per
// check; https within 1.15× of the bare client. A goal needs ≥ 99%
// successful checks on both sides: failing checks are cheaper.
func (r *report) protocolGoals() []goal {
	byName := map[string]protoRow{}
	for _, pr := range r.protocols {
		byName[pr.Protocol] = pr
	}
	var gs []goal
	for _, name := range []string{"tcp", "dns", "icmp"} {
		g := goal{name: name + ": vantage CPU per check ≤ 1/3 of blackbox_exporter's"}
		pr, ok := byName[name]
		if !ok {
			g.skip = true
			gs = append(gs, g)
			continue
		}
		ratio := pr.Vantage.cpuPer1k() / pr.Blackbox.cpuPer1k()
		okSuccess := successOK(pr.Vantage) && successOK(pr.Blackbox)
		g.pass = ratio <= 1.0/3 && okSuccess
		g.detail = fmt.Sprintf("%.3f vs %.3f CPU s/1k checks at %.0f/s: ratio %.2f (%.1f× less), goal ≤ 0.33; successful %s vs %s",
			pr.Vantage.cpuPer1k(), pr.Blackbox.cpuPer1k(), pr.Vantage.TargetRate, ratio, 1/ratio, pct(pr.Vantage.Success), pct(pr.Blackbox.Success))
		gs = append(gs, g)
	}
	g := goal{name: "https (full handshake each, no session resumption): vantage CPU per check ≤ 1.15× a bare Go client's"}
	pr, ok := byName["https"]
	if !ok || pr.Client == nil {
		g.skip = true
		return append(gs, g)
	}
	ratio := pr.Vantage.cpuPer1k() / pr.Client.cpuPer1k()
	g.pass = ratio <= 1.15 && successOK(pr.Vantage) && successOK(*pr.Client)
	g.detail = fmt.Sprintf("%.3f vs %.3f CPU s/1k checks at %.0f/s: ratio %.2f, goal ≤ 1.15 (blackbox_exporter %.3f: vantage %.2f× of it); successful %s vs %s",
		pr.Vantage.cpuPer1k(), pr.Client.cpuPer1k(), pr.Vantage.TargetRate, ratio, pr.Blackbox.cpuPer1k(),
		pr.Vantage.cpuPer1k()/pr.Blackbox.cpuPer1k(), pct(pr.Vantage.Success), pct(pr.Client.Success))
	return append(gs, g)
}

func successOK(r sysResult) bool { return r.Checks > 0 && !math.IsNaN(r.Success) && r.Success >= 0.99 }

// printRows prints results as the checks table does.
func printRows(w io.Writer, rows []sysResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\ttarget/s\tchecks/s\tCPU s/1k checks\tuser/sys %\tmissed\tp99 lag\tsuccess\terrors\tpeak RSS\tfarm\tbench\tother\tmachine busy\t")
	for _, s := range rows {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.3f\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.0f%%\t\n",
			s.System, s.TargetRate, s.Rate, s.cpuPer1k(), userSys(s.U), num(s.Missed), secs(s.LagP99),
			pct(s.Success), count(s.Errors), mib(s.HWM), s.U.FarmCPU/s.U.Seconds, s.U.BenchCPU/s.U.Seconds,
			s.U.otherCores(), 100*s.U.MachineBusy)
	}
	tw.Flush()
	fmt.Fprintln(w)
	for _, s := range rows {
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  %s: %s\n", s.System, n)
		}
	}
}
