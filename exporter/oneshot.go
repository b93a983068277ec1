package exporter

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vantageprobe/vantage/prober"
	"github.com/vantageprobe/vantage/prober/result"
)

// OneShot is one probe run from the command line.
type OneShot struct {
	Module   string
	Target   string
	Hostname string
	// Timeout bounds the probe when the module sets none.
	Timeout time.Duration
	// Verbose writes the probe's debug log to the logger.
	Verbose bool
}

// ProbeOnce loads the configuration of opts, probes one target and writes
// the result and its phase timings as a table to w. It reports whether the
// probe succeeded; err is for problems that prevented probing at all.
func ProbeOnce(ctx context.Context, opts Options, req OneShot, w io.Writer) (bool, error) {
	if err := opts.validate(); err != nil {
		return false, err
	}
	st, err := loadState(opts.ConfigFile)
	if err != nil {
		return false, err
	}
	mod, ok := st.modules[req.Module]
	if !ok {
		names := make([]string, 0, len(st.modules))
		for n := range st.modules {
			names = append(names, n)
		}
		slices.Sort(names)
		return false, fmt.Errorf("unknown module %q (configured: %s)", req.Module, strings.Join(names, ", "))
	}
	if err := mod.CheckHostname(req.Hostname); err != nil {
		return false, fmt.Errorf("--hostname: %w", err)
	}
	timeout := req.Timeout
	if mod.Config.Timeout > 0 {
		timeout = mod.Config.Timeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	if req.Verbose {
		logger = opts.Logger.With("module", req.Module, "target", req.Target)
	}
	r := mod.Probe(ctx, req.Target, prober.Params{Hostname: req.Hostname, Logger: logger})
	return r.Success, writeResultTable(w, req.Module, req.Target, r)
}

func writeResultTable(w io.Writer, module, target string, r *result.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "module\t%s\n", module)
	fmt.Fprintf(tw, "target\t%s\n", target)
	if r.Success {
		fmt.Fprintf(tw, "result\tsuccess\n")
	} else {
		fmt.Fprintf(tw, "result\tfailure\n")
		fmt.Fprintf(tw, "reason\t%s\n", r.Reason)
		fmt.Fprintf(tw, "error\t%s\n", r.Error)
	}
	if r.Resolve != nil && r.Resolve.IP != "" {
		fmt.Fprintf(tw, "address\t%s (IPv%d)\n", r.Resolve.IP, r.Resolve.IPProtocol)
	}
	fmt.Fprintf(tw, "duration\t%.6fs\n", r.Duration.Seconds())
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "PHASE\tSECONDS\n")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%.6f\n", p.Name, p.Duration.Seconds())
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "SERIES\tVALUE\n")
	r.Samples(func(s result.Sample) {
		fmt.Fprintf(tw, "%s\t%g\n", s.String(), s.Value)
	})
	return tw.Flush()
}
