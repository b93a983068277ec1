package prober

import (
	"context"

	"github.com/vantageprobe/vantage/config"
)

// TCPDetails holds what the tcp prober found.
type TCPDetails struct{}

func (d *TCPDetails) samples(e emitter, r *Result) {}

func newTCPProbe(m config.Module) (probeFunc, error) {
	return func(ctx context.Context, target string, p Params, r *Result) {
		r.Fail(ReasonConfigError, "the tcp prober is not built yet")
	}, nil
}
