package faults

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestRestartedCoordinatorKnowsEveryTarget restarts the coordinator, once
// with its incident log and once with it wiped, while one outage is
// confirmed, one target fails in one location only, and another outage
// begins while the coordinator is stopped. Within seconds of the restart
// every target's state is right, and the confirmed outage is never
// anything but down (with the log) once the coordinator answers.
func TestRestartedCoordinatorKnowsEveryTarget(t *testing.T) {
	for _, wipe := range []bool{false, true} {
		name := "with its store"
		if wipe {
			name = "with its store wiped"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, stackOptions{coordinators: 1, paths: []string{"/out", "/one", "/ok", "/late"},
				exporterArgs: []string{"--coordinator.heartbeat-interval=1s"}})
			c := s.coordinators[0]
			out, one, ok, late := s.target.url("/out"), s.target.url("/one"), s.target.url("/ok"), s.target.url("/late")
			s.target.set("/out", true, "*")
			s.target.set("/one", true, s.sources("ams")...)
			testbin.WaitFor(t, "the outage confirmed", 30*time.Second, c.stateIs(t, out, "down"))
			testbin.WaitFor(t, "the one-location failure seen as such", 30*time.Second, func() error {
				ts, err := c.targets(t)
				if err != nil {
					return err
				}
				if v := ts[one]; v.State != "up" || v.result("ams") != "failure" {
					return fmt.Errorf("%s is %s with ams %q, want up with ams failure", one, v.State, v.result("ams"))
				}
				return nil
			})

			if err := c.proc.Stop(10 * time.Second); err != nil {
				t.Fatalf("stopping the coordinator: %v", err)
			}
			s.target.set("/late", true, "*")
			if wipe {
				if err := os.RemoveAll(c.storage); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(3 * time.Second) // the late outage starts while nobody listens
			restarted := time.Now()
			s.startCoordinator(c)

			// Every target right within a few check intervals. With its
			// store, the confirmed outage is never in another state
			// meanwhile; with the store wiped, the first location's
			// snapshot makes it seems_down while the others are asked,
			// but it is never up or unknown.
			wasDown := false
			took := testbin.WaitFor(t, "every target's state right after the restart", 15*time.Second, func() error {
				ts, err := c.targets(t)
				if err != nil {
					return err
				}
				v, listed := ts[out]
				switch {
				case !listed && !wipe:
					t.Errorf("the confirmed outage is not listed after a restart with the store")
				case listed && v.State != "down" && (!wipe || wasDown || v.State != "seems_down"):
					t.Errorf("the confirmed outage reads %s after the restart (down before: %t)", v.State, wasDown)
				}
				wasDown = wasDown || v.State == "down"
				var errs []error
				for target, want := range map[string]string{out: "down", late: "down", one: "up", ok: "up"} {
					if v, listed := ts[target]; !listed || v.State != want {
						errs = append(errs, fmt.Errorf("%s is %q (listed %v), want %s", target, v.State, listed, want))
					}
				}
				if v := ts[one]; v.result("ams") != "failure" {
					errs = append(errs, fmt.Errorf("%s: ams %q, want failure", one, v.result("ams")))
				}
				return errors.Join(errs...)
			})
			t.Logf("every state right %s after the coordinator answered again (%s after its start)", took, time.Since(restarted))
			// And it stays so: the confirmed outages stay down.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				ts, err := c.targets(t)
				if err != nil {
					t.Fatal(err)
				}
				for _, target := range []string{out, late} {
					if ts[target].State != "down" {
						t.Fatalf("%s left down: %s", target, ts[target].State)
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}

// TestFrozenCoordinatorAgreesWithItsPeer freezes one of two coordinators
// (SIGSTOP) for 60 s while a 30 s outage happens in every location. Once
// it resumes and has the reports, both record the same outage: confirmed,
// recovered, from the same start; the frozen one never pages for an
// outage that is over, and neither calls it a false alarm.
func TestFrozenCoordinatorAgreesWithItsPeer(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{coordinators: 2, paths: []string{"/flap"},
		exporterArgs: []string{"--coordinator.heartbeat-interval=1s"}})
	live, frozen := s.coordinators[0], s.coordinators[1]
	target := s.target.url("/flap")
	testbin.WaitFor(t, "both coordinators know the target", 20*time.Second, func() error {
		return errors.Join(live.stateIs(t, target, "up")(), frozen.stateIs(t, target, "up")())
	})

	if err := frozen.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	s.target.set("/flap", true, "*")
	testbin.WaitFor(t, "the live coordinator confirms", 20*time.Second, live.stateIs(t, target, "down"))
	time.Sleep(30*time.Second - time.Since(frozenAt))
	s.target.set("/flap", false, "*")
	testbin.WaitFor(t, "the live coordinator sees the recovery", 20*time.Second, live.stateIs(t, target, "up"))
	time.Sleep(60*time.Second - time.Since(frozenAt))
	if err := frozen.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// Exporters back off up to 30 s between deliveries to a coordinator
	// that did not answer.
	confirmed := fmt.Sprintf(`vantage_target_confirmed_down{module="http_2xx",target=%q}`, target)
	testbin.WaitFor(t, "the frozen coordinator records the outage", 45*time.Second, func() error {
		if frozen.metric(t, confirmed) == "1" {
			t.Errorf("the frozen coordinator pages for an outage that ended %s ago", time.Since(frozenAt)-30*time.Second)
		}
		incs := frozen.incidentsOf(t, target)
		if len(incs) == 0 || incs[len(incs)-1].ResolvedAt.IsZero() {
			return fmt.Errorf("incidents: %+v", incs)
		}
		return nil
	})
	a, b := live.incidentsOf(t, target), frozen.incidentsOf(t, target)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("want one incident on each coordinator; live: %+v, frozen: %+v", a, b)
	}
	for name, inc := range map[string]fullIncident{"live": a[0], "frozen": b[0]} {
		if inc.ConfirmedAt.IsZero() || inc.Resolution != "recovered" || inc.State != "resolved" {
			t.Errorf("%s coordinator: %+v, want confirmed, resolved, recovered", name, inc)
		}
	}
	if !a[0].StartedAt.Equal(b[0].StartedAt) {
		t.Errorf("the coordinators disagree on the start: live %s, frozen %s", a[0].StartedAt, b[0].StartedAt)
	}
	// The frozen coordinator may first judge one location's late
	// failure alone a false alarm; once the other locations' late
	// reports show the overlap, it reclassifies it. What it records in
	// the end is what its peer recorded.
	for name, c := range map[string]*coordinatorProc{"live": live, "frozen": frozen} {
		falseAlarms := c.metric(t, `vantage_incidents_total{resolution="false_alarm"}`)
		reclassified := c.metric(t, "vantage_incidents_reclassified_total")
		if falseAlarms != reclassified {
			t.Errorf("%s coordinator: %s false alarms counted, %s reclassified as outages", name, falseAlarms, reclassified)
		}
	}
}

// TestCanaryHostDownIsNeverAnOutage puts the targets and the canary on one
// host, checked at equal intervals, and stops that host for 60 s: every
// location's failures are unknown, never failing, so nothing is confirmed
// and nothing pages; once the host is back, every location is healthy
// again within one canary interval (1 s here, plus a heartbeat).
func TestCanaryHostDownIsNeverAnOutage(t *testing.T) {
	t.Parallel()
	paths := []string{"/a", "/b", "/c"}
	s := newStack(t, stackOptions{coordinators: 1, paths: paths, canary: "/canary",
		exporterArgs: []string{"--coordinator.heartbeat-interval=1s"}})
	c := s.coordinators[0]
	healthy := func(v string) func() error {
		return func() error {
			var errs []error
			for _, l := range s.locations {
				if got := c.metric(t, fmt.Sprintf(`vantage_location_healthy{location=%q}`, l.name)); got != v {
					errs = append(errs, fmt.Errorf("%s healthy=%q, want %s", l.name, got, v))
				}
			}
			return errors.Join(errs...)
		}
	}
	testbin.WaitFor(t, "every location healthy", 20*time.Second, healthy("1"))

	s.target.stop()
	stopped := time.Now()
	for time.Since(stopped) < 60*time.Second {
		for _, p := range paths {
			series := fmt.Sprintf(`vantage_target_confirmed_down{module="http_2xx",target=%q}`, s.target.url(p))
			if got := c.metric(t, series); got == "1" {
				t.Fatalf("%s confirmed down %s after its host (and the canary's) stopped", p, time.Since(stopped))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	testbin.WaitFor(t, "every location unhealthy while the canary's host is down", 5*time.Second, healthy("0"))
	s.target.start()
	took := testbin.WaitFor(t, "every location healthy again", 10*time.Second, healthy("1"))
	t.Logf("healthy again %s after the host returned", took)
	if took > 3*time.Second {
		t.Errorf("healthy again only %s after the host returned; want within one canary interval and a heartbeat", took)
	}
	if got := c.metric(t, "vantage_confirmation_duration_seconds_count"); got != "0" {
		t.Errorf("%s outages confirmed, want 0", got)
	}
	for _, p := range paths {
		for _, inc := range c.incidentsOf(t, s.target.url(p)) {
			if !inc.ConfirmedAt.IsZero() {
				t.Errorf("incident %d of %s was confirmed: %+v", inc.ID, p, inc)
			}
		}
	}
}

// TestQueueOverflowStillConfirms overflows every exporter's report queue
// to one of two coordinators (frozen with SIGSTOP while eight targets flap)
// during an outage: the reports of the outage may be dropped, but the
// queue keeps each target's latest state and a snapshot follows, so both
// coordinators end with the outage confirmed.
func TestQueueOverflowStillConfirms(t *testing.T) {
	t.Parallel()
	flappers := []string{"/f1", "/f2", "/f3", "/f4", "/f5", "/f6", "/f7", "/f8"}
	s := newStack(t, stackOptions{coordinators: 2, paths: append([]string{"/x"}, flappers...),
		exporterArgs: []string{"--coordinator.heartbeat-interval=1s", "--coordinator.queue-capacity=4"}})
	live, frozen := s.coordinators[0], s.coordinators[1]
	target := s.target.url("/x")
	testbin.WaitFor(t, "both coordinators know the target", 20*time.Second, func() error {
		return errors.Join(live.stateIs(t, target, "up")(), frozen.stateIs(t, target, "up")())
	})

	if err := frozen.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s.target.set("/x", true, "*")
	for i := range 15 {
		for _, p := range flappers {
			s.target.set(p, i%2 == 0, "*")
		}
		time.Sleep(time.Second)
	}
	dropped := 0
	for _, l := range s.locations {
		// The exporter labels its own series with its --location.
		v := exporterMetric(t, l, fmt.Sprintf(`vantage_exporter_reports_dropped_total{coordinator=%q,location=%q,reason="overflow"}`, frozen.url(), l.name))
		if v != "" && v != "0" {
			dropped++
		}
	}
	if dropped == 0 {
		t.Fatal("no exporter's queue overflowed; the test proves nothing")
	}
	if err := frozen.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	testbin.WaitFor(t, "both coordinators confirm the outage", 45*time.Second, func() error {
		return errors.Join(live.stateIs(t, target, "down")(), frozen.stateIs(t, target, "down")())
	})
	t.Logf("%d of 3 exporters overflowed", dropped)
}
