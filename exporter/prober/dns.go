package prober

import (
	"context"

	"github.com/vantageprobe/vantage/config"
)

// DNSDetails holds what the dns prober found.
type DNSDetails struct{}

func (d *DNSDetails) samples(e emitter, r *Result) {}

func newDNSProbe(m config.Module) (probeFunc, error) {
	return func(ctx context.Context, target string, p Params, r *Result) {
		r.Fail(ReasonConfigError, "the dns prober is not built yet")
	}, nil
}
