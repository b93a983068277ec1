package prober

import (
	"context"

	"github.com/vantageprobe/vantage/config"
)

// ICMPDetails holds what the icmp prober found.
type ICMPDetails struct{}

func (d *ICMPDetails) samples(e emitter, r *Result) {}

func newICMPProbe(m config.Module) (probeFunc, error) {
	return func(ctx context.Context, target string, p Params, r *Result) {
		r.Fail(ReasonConfigError, "the icmp prober is not built yet")
	}, nil
}
