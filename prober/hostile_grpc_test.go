package prober

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/prober/result"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// Hostile gRPC servers: one that never answers the health check, peers
// that do not speak HTTP/2, and an answer larger than the client accepts.

// stuckHealth answers no Check call until the test ends, whatever the
// caller does.
type stuckHealth struct {
	grpc_health_v1.UnimplementedHealthServer
	release <-chan struct{}
}

func (h stuckHealth) Check(context.Context, *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	<-h.release
	return nil, fmt.Errorf("released at the end of the test")
}

func TestHostileGRPCNeverAnswers(t *testing.T) {
	checkNoLeaks(t)
	release := make(chan struct{})
	srv := newGRPCTestServer(t, nil, func(s *grpc.Server) {
		grpc_health_v1.RegisterHealthServer(s, stuckHealth{release: release})
	})
	t.Cleanup(func() { close(release) }) // before the server stops
	o := probeHostile(t, grpcTestModule(nil), srv.addr, hostileDeadline)
	o.requireBounded(t, result.ReasonTimeout, hostileHeapFloor)
	o.requireTiming(t, true)
	if got := seriesOfResult(o.r)["probe_grpc_status_code"]; got != 4 { // DeadlineExceeded
		t.Errorf("probe_grpc_status_code = %v, want 4", got)
	}
	// The prober closed its connection although the call is still stuck
	// on the server.
	for deadline := time.Now().Add(2 * time.Second); srv.open.Load() != 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.open.Load(); n != 0 {
		t.Errorf("%d connections still open after the probe", n)
	}
}

// Peers that accept TCP but do not speak gRPC's HTTP/2.
func TestHostileGRPCNotHTTP2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle func(net.Conn, <-chan struct{})
		want   result.Reason
		stalls bool
	}{
		// Never sends its SETTINGS: the connection never becomes ready.
		{"never speaks", func(net.Conn, <-chan struct{}) {}, result.ReasonTimeout, true},
		{"closes at once", func(c net.Conn, _ <-chan struct{}) { c.Close() }, result.ReasonGRPCError, false},
		{"garbage", func(c net.Conn, stop <-chan struct{}) {
			flood(c, stop, "", hostileChunk)
		}, result.ReasonGRPCError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			srv := newHostileServer(t, tc.handle)
			o := probeHostile(t, grpcTestModule(nil), srv.addr, deadlineFor(tc.stalls))
			o.requireBounded(t, tc.want, hostileHeapFloor)
			o.requireTiming(t, tc.stalls)
			srv.waitClosed(t)
			t.Logf("%d connections for one probe", srv.acceptedConns())
		})
	}
}

// rawCodec sends handler results that are []byte as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return nil, fmt.Errorf("rawCodec cannot marshal %T", v)
}
func (rawCodec) Unmarshal([]byte, any) error { return nil }
func (rawCodec) Name() string                { return "proto" }

// An answer over the client's 4 MiB receive limit is refused from its
// length prefix: the probe fails with grpc_error without holding it.
func TestHostileGRPCHugeAnswer(t *testing.T) {
	checkNoLeaks(t)
	huge := make([]byte, 16<<20)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "grpc.health.v1.Health",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Check",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				return huge, dec(nil)
			},
		}},
	}, struct{}{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	o := probeHostile(t, grpcTestModule(nil), ln.Addr().String(), hostileQuickDeadline)
	o.requireBounded(t, result.ReasonGRPCError, hostileHeapFloor)
	o.requireTiming(t, false)
	if got := seriesOfResult(o.r)["probe_grpc_status_code"]; got != 8 { // ResourceExhausted
		t.Errorf("probe_grpc_status_code = %v, want 8", got)
	}
}
