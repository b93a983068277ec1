package faults

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestKilledExporterIsUnknownNotDown runs three exporter processes and a
// coordinator process, SIGKILLs one exporter, then takes the target down:
// the other two confirm the outage, the killed location is unhealthy and
// counts as unknown in the incident's evidence, never as a failure.
func TestKilledExporterIsUnknownNotDown(t *testing.T) {
	s := newStack(t, stackOptions{coordinators: 1, paths: []string{"/t"}})
	c, target := s.coordinators[0], s.target.url("/t")
	// want is a condition: series has the value v.
	want := func(series, v string) func() error {
		return func() error {
			if got := c.metric(t, series); got != v {
				return fmt.Errorf("%s is %q, want %s", series, got, v)
			}
			return nil
		}
	}
	testbin.WaitFor(t, "every location healthy", 20*time.Second, func() error {
		return errors.Join(want(`vantage_location_healthy{location="ams"}`, "1")(), want(`vantage_location_healthy{location="fra"}`, "1")(), want(`vantage_location_healthy{location="sfo"}`, "1")())
	})
	s.location("sfo").proc.Kill()
	testbin.WaitFor(t, "sfo unhealthy", 20*time.Second, want(`vantage_location_healthy{location="sfo"}`, "0"))

	s.target.set("/t", true, "*")
	confirmed := fmt.Sprintf(`vantage_target_confirmed_down{module="http_2xx",target=%q}`, target)
	testbin.WaitFor(t, "the outage confirmed by ams and fra", 20*time.Second, want(confirmed, "1"))
	// The round that asked sfo may end after the intervals of ams and fra
	// confirmed the outage: wait for its answer.
	testbin.WaitFor(t, "the incident holding sfo's answer", 20*time.Second, func() error {
		var incs []struct {
			Evidence []struct {
				Location, Result, Error string
			} `json:"evidence"`
		}
		if err := c.getJSON("/api/v1/incidents?state=open", &incs); err != nil || len(incs) != 1 {
			return fmt.Errorf("open incidents: %v, %+v", err, incs)
		}
		for _, e := range incs[0].Evidence {
			if e.Location != "sfo" {
				continue
			}
			if e.Result != "unknown" {
				t.Fatalf("the killed location's evidence is %s (%s), want unknown", e.Result, e.Error)
			}
			return nil
		}
		return fmt.Errorf("the incident has no evidence from the killed location: %+v", incs[0].Evidence)
	})
	if got := c.metric(t, fmt.Sprintf(`vantage_target_location_success{location="sfo",module="http_2xx",target=%q}`, target)); got == "0" {
		t.Error("the killed location counts as failing")
	}
}
