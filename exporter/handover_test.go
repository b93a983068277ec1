package exporter

import (
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/exporter/cluster"
	"github.com/vantageprobe/vantage/exporter/scheduler"
	"github.com/vantageprobe/vantage/prober/result"
)

// handoverMember is one exporter of a cluster in these tests: its transitions,
// the reports it sent, and the streak changes it gossiped.
type handoverMember struct {
	tr     *transitions
	sent   []api.Report
	gossip []cluster.Streak
}

func newHandoverMember() *handoverMember {
	m := &handoverMember{}
	m.tr = newTransitions(func(r api.Report) { m.sent = append(m.sent, r) })
	m.tr.announce = func(s *streak, ended bool) { m.gossip = append(m.gossip, s.gossiped(ended)) }
	return m
}

func outcome(t *scheduler.Target, success bool, at time.Time) scheduler.Outcome {
	r := &result.Result{Success: success}
	if !success {
		r.Reason = result.ReasonConnectTimeout
	}
	return scheduler.Outcome{Target: t, Result: r, Attempts: 1, Planned: at}
}

// TestStreakMovesWithOwnership: a reports a target failing; its streak
// is gossiped to b; b takes the target over. b's failed check continues
// the streak without a report; its success reports the recovery of the
// streak the coordinator knows, with a's first failure. No
// recovered/failing pair from the handover.
func TestStreakMovesWithOwnership(t *testing.T) {
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	at := func(s int) time.Time { return time.Unix(int64(1000+s), 0) }
	a, b := newHandoverMember(), newHandoverMember()

	recordWithCanary(a.tr, outcome(target, false, at(10)), true)
	if len(a.sent) != 1 || a.sent[0].State != api.StateFailing || len(a.gossip) != 1 {
		t.Fatalf("a sent %+v, gossiped %+v; want one failing report, gossiped", a.sent, a.gossip)
	}
	b.tr.Remote("a", a.gossip[0])
	// b's snapshot tells the streak a reported.
	snap := b.tr.snapshot([]scheduler.Target{*target}, false, func() uint64 { return 0 }, at(11))
	if len(snap.NotUp) != 1 || snap.NotUp[0].State != api.StateFailing || !snap.NotUp[0].FirstFailure.Equal(at(10)) {
		t.Fatalf("b's snapshot: %+v, want the target failing since %v", snap.NotUp, at(10))
	}

	// a loses the target: it sends nothing, keeps the streak as remote.
	a.tr.release(nil)
	if len(a.sent) != 1 {
		t.Fatalf("a reported %+v when it lost the target", a.sent[1:])
	}

	recordWithCanary(b.tr, outcome(target, false, at(20)), true)
	if len(b.sent) != 0 {
		t.Fatalf("b reported %+v for the streak it took over, want nothing", b.sent)
	}
	recordWithCanary(b.tr, outcome(target, true, at(30)), true)
	if len(b.sent) != 1 || b.sent[0].State != api.StateRecovered || !b.sent[0].FirstFailure.Equal(at(10)) {
		t.Fatalf("b sent %+v, want one recovery of the streak from %v", b.sent, at(10))
	}
	end := b.gossip[len(b.gossip)-1]
	if !end.Ended {
		t.Fatalf("b's last gossip %+v, want the streak's end", end)
	}
	a.tr.Remote("b", end)
	if snap := a.tr.snapshot([]scheduler.Target{*target}, false, func() uint64 { return 0 }, at(31)); len(snap.NotUp) != 0 {
		t.Errorf("a still holds the ended streak: %+v", snap.NotUp)
	}
}

// TestStreakOfADeadOwnerRecovered: the owner died; the new owner's first
// check succeeds: one recovery, nothing else.
func TestStreakOfADeadOwnerRecovered(t *testing.T) {
	target := &scheduler.Target{Module: "http_2xx", Target: "https://a.example"}
	b := newHandoverMember()
	b.tr.RemoteAll("a", []cluster.Streak{{Module: target.Module, Target: target.Target, First: time.Unix(5, 0), Last: time.Unix(9, 0), State: api.StateFailing}})
	recordWithCanary(b.tr, outcome(target, true, time.Unix(12, 0)), true)
	if len(b.sent) != 1 || b.sent[0].State != api.StateRecovered || !b.sent[0].FirstFailure.Equal(time.Unix(5, 0)) {
		t.Fatalf("b sent %+v, want one recovery from the dead owner's streak", b.sent)
	}
	// A full state of a without the streak ends it at b.
	c := newHandoverMember()
	c.tr.Remote("a", cluster.Streak{Module: target.Module, Target: target.Target, First: time.Unix(5, 0), State: api.StateFailing})
	c.tr.RemoteAll("a", nil)
	recordWithCanary(c.tr, outcome(target, true, time.Unix(12, 0)), true)
	if len(c.sent) != 0 {
		t.Errorf("c reported %+v for a streak its owner no longer has", c.sent)
	}
}
