//go:build linux

package prober

import (
	"testing"

	"github.com/vantageprobe/vantage/prober/result"
)

// A listener that never accepts, its queue full: the SYN goes unanswered
// and every prober that connects over TCP gives up at its deadline with
// connect_timeout.
func TestHostileNeverAccepts(t *testing.T) {
	checkNoLeaks(t)
	addr := fullBacklogAddr(t)
	for _, p := range []struct {
		name  string
		probe func() hostileOutcome
	}{
		{"http", func() hostileOutcome {
			return probeHostile(t, httpTestModule(nil), "http://"+addr+"/", hostileDeadline)
		}},
		{"tcp", func() hostileOutcome { return probeHostile(t, tcpModule(), addr, hostileDeadline) }},
		{"grpc", func() hostileOutcome { return probeHostile(t, grpcTestModule(nil), addr, hostileDeadline) }},
		{"dns", func() hostileOutcome {
			m := dnsModule("A")
			m.DNS.TransportProtocol = "tcp"
			return probeHostile(t, m, addr, hostileDeadline)
		}},
	} {
		t.Run(p.name, func(t *testing.T) {
			o := p.probe()
			o.requireBounded(t, result.ReasonConnectTimeout, hostileHeapFloor)
			o.requireTiming(t, true)
		})
	}
}
