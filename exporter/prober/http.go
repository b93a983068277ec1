package prober

import (
	"context"

	"github.com/vantageprobe/vantage/config"
)

// HTTPDetails holds what the http prober found.
type HTTPDetails struct{}

func (d *HTTPDetails) samples(e emitter, r *Result) {}

func newHTTPProbe(m config.Module) (probeFunc, error) {
	return func(ctx context.Context, target string, p Params, r *Result) {
		r.Fail(ReasonConfigError, "the http prober is not built yet")
	}, nil
}
