package prober

import (
	"context"

	"github.com/vantageprobe/vantage/config"
)

// GRPCDetails holds what the grpc prober found.
type GRPCDetails struct{}

func (d *GRPCDetails) samples(e emitter, r *Result) {}

func newGRPCProbe(m config.Module) (probeFunc, error) {
	return func(ctx context.Context, target string, p Params, r *Result) {
		r.Fail(ReasonConfigError, "the grpc prober is not built yet")
	}, nil
}
