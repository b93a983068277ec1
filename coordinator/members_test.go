package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestProbeFanOutTriesAnotherMember: the first member of ams refuses
// connections; the fan-out asks the second, so ams answers.
func TestProbeFanOutTriesAnotherMember(t *testing.T) {
	dead := "http://" + testbin.RefusedAddr(t)
	live := fakeExporter(t, "ams", httpResult(true, 200), nil)
	c := mustStart(t, fmt.Sprintf("locations:\n  - name: ams\n    urls: [%s, %s]\nconfirmation:\n  min_failing_locations: 1\n", dead, live))
	_, body, samples := fanOut(t, c, "")
	if got := samples[`vantage_probe_location_answered{location="ams"}`]; got != "1" {
		t.Fatalf("ams answered %q, want 1 (through its live member):\n%s", got, body)
	}
	if got := samples["probe_success"]; got != "1" {
		t.Errorf("probe_success %q, want 1", got)
	}
}

// TestLocationHealthyWithOneHealthyMember: one member of two down, the
// location is healthy and /api/v1/locations lists both members.
func TestLocationHealthyWithOneHealthyMember(t *testing.T) {
	dead := "http://" + testbin.RefusedAddr(t)
	live := fakeExporter(t, "ams", httpResult(true, 200), nil)
	c := mustStart(t, fmt.Sprintf("locations:\n  - name: ams\n    urls: [%s, %s]\nconfirmation:\n  min_failing_locations: 1\nhealth_check_interval: 1s\n", dead, live))
	testbin.WaitFor(t, "ams healthy with its members listed", 10*time.Second, func() error {
		resp, err := http.Get(c.url + "/api/v1/locations")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var locs []locationView
		if err := json.NewDecoder(resp.Body).Decode(&locs); err != nil {
			return err
		}
		if len(locs) != 1 || !locs[0].Healthy || len(locs[0].Members) != 2 {
			return fmt.Errorf("locations: %+v", locs)
		}
		m := locs[0].Members
		if m[0].URL != dead || m[0].Healthy || m[0].Error == "" || m[1].URL != live || !m[1].Healthy {
			return fmt.Errorf("members: %+v", m)
		}
		return nil
	})
}

// TestURLResolvingToSeveralMembers: a url whose name resolves to two
// addresses is two members, same scheme, port and path.
func TestURLResolvingToSeveralMembers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == "exporters.ams.test." && q.Qtype == dns.TypeA {
			for _, ip := range []string{"127.0.0.3", "127.0.0.2"} {
				rr, _ := dns.NewRR("exporters.ams.test. 5 IN A " + ip)
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	m := newMembers()
	m.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", pc.LocalAddr().String())
	}}
	got := m.urls(context.Background(), []string{"http://exporters.ams.test:9715/x"})
	want := []string{"http://127.0.0.2:9715/x", "http://127.0.0.3:9715/x"}
	if !slices.Equal(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if got := m.urls(context.Background(), []string{"http://127.0.0.1:1"}); !slices.Equal(got, []string{"http://127.0.0.1:1"}) {
		t.Errorf("an address URL resolved to %v", got)
	}
}
