package coordinator

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/config"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

const (
	// maxBatchTransit is the longest a batch may have taken from its
	// exporter (api.Batch.SentAt) for its reports to count as live: an
	// exporter delivers within its request timeout (10s), and the clocks of
	// the two hosts may differ a little.
	maxBatchTransit = 30 * time.Second
	// maxReportBatchBytes bounds a report batch's body.
	maxReportBatchBytes = 8 << 20
	// maxReportsPerBatch bounds the reports of one batch; exporters send
	// at most 100.
	maxReportsPerBatch = 1000
)

// intake remembers, per location (per member of a location's cluster),
// the latest report sequence number of the exporter's current run, so a redelivered batch is not applied twice, and
// whether the coordinator holds that run's state (a snapshot since the
// run began or since a gap in the sequence).
type intake struct {
	mu   sync.Mutex
	last map[string]position
}

type position struct {
	run    string
	seq    uint64
	synced bool
}

func newIntake() *intake { return &intake{last: map[string]position{}} }

// fresh returns the reports of b not seen before, in order, counts the
// others, and says whether to ask for a snapshot: the coordinator has no
// snapshot of this run yet, or the batch's first new report leaves a gap
// after the last one seen. An exporter delivers its reports in order, so
// within one run anything at or below the highest sequence seen is a
// duplicate.
func (in *intake) fresh(b *api.Batch) (fresh []*api.Report, duplicates int, wantSnapshot bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	// Each member of a location's cluster numbers its own reports.
	from := b.Location + "\x00" + b.Member
	pos := in.last[from]
	if pos.run != b.Run {
		pos = position{run: b.Run}
	}
	for i := range b.Reports {
		r := &b.Reports[i]
		if r.Seq <= pos.seq {
			duplicates++
			continue
		}
		if len(fresh) == 0 && r.Seq > pos.seq+1 {
			pos.synced = false // reports were lost
		}
		pos.seq = r.Seq
		fresh = append(fresh, r)
	}
	if b.Snapshot != nil {
		pos.synced = true
		pos.seq = max(pos.seq, b.Snapshot.Seq)
	}
	in.last[from] = pos
	return fresh, duplicates, !pos.synced
}

// handleReports receives a batch of state-change reports: it answers 200
// once their incidents are durable in the log, 4xx (not retried by the
// exporters) for a batch that can never be accepted, and 503 when the
// log cannot be written (retried).
func (c *Coordinator) handleReports(w http.ResponseWriter, r *http.Request) {
	// The batch's age is taken on arrival: the time it then waits for the
	// confirmation state (this coordinator's own load) is not the age of
	// its evidence.
	received := time.Now()
	var b api.Batch
	conf := c.conf.Load()
	if status, err := jsonapi.Decode(w, r, maxReportBatchBytes, &b, "a JSON object with location, run and reports"); err != nil {
		reason := rejectMalformed
		switch status {
		case http.StatusRequestEntityTooLarge:
			reason = rejectTooLarge
		case http.StatusUnsupportedMediaType:
			reason = rejectMediaType
		}
		c.reject(w, r, status, reason, err)
		return
	}
	if reason, err := validateBatch(&b, conf); err != nil {
		c.reject(w, r, http.StatusBadRequest, reason, err)
		return
	}
	c.labels.observe(&b)
	// Received once applied to the confirmation state; due from here.
	c.clocks.received.Begin(time.Now())
	fresh, duplicates, wantSnapshot := c.intake.fresh(&b)
	for _, rep := range fresh {
		c.metrics.reportsReceived.WithLabelValues(b.Location, rep.State).Inc()
	}
	c.metrics.duplicates.WithLabelValues(b.Location).Add(float64(duplicates))
	// Every batch carries the location's canary verdict (absent: not
	// failing); a report in state unknown only says the location cannot
	// tell about its target.
	c.health.observe(b.Location, contact{reachable: true, message: true, canaryOK: b.CanaryOK})
	var wantTargets bool
	done := c.update(func(m *confirm.Machine, now time.Time) confirm.Effects {
		eff := m.SelfReported(b.Location, b.Degraded, now)
		var res confirm.BatchResult
		if !b.SentAt.IsZero() && received.Sub(b.SentAt) > maxBatchTransit {
			// Sent long before it was read (this coordinator was frozen
			// or cut off): history, not live evidence.
			res = m.LateBatch(b.Location, fresh, b.Snapshot, now)
		} else {
			res = m.BatchReceived(b.Location, fresh, b.Snapshot, received, now)
		}
		wantTargets = res.WantTargets
		eff.Merge(res.Effects)
		return eff
	})
	c.clocks.received.Finish(time.Now())
	if err := <-done; err != nil {
		jsonapi.WriteError(w, http.StatusServiceUnavailable, fmt.Errorf("writing the incident log failed: %w", err))
		return
	}
	jsonapi.Write(w, http.StatusOK, api.ReportsAnswer{Accepted: len(fresh), Duplicates: duplicates, Run: c.run,
		WantSnapshot: wantSnapshot, WantTargets: wantTargets})
}

func (c *Coordinator) reject(w http.ResponseWriter, r *http.Request, status int, reason string, err error) {
	c.metrics.rejected.WithLabelValues(reason).Inc()
	c.logger.Warn("Refused a report batch", "remote", r.RemoteAddr, "reason", reason, "err", err)
	jsonapi.WriteError(w, status, err)
}

// validateBatch checks what decoding cannot: a known location, and
// complete reports. Errors name the field, e.g. reports[3].state.
func validateBatch(b *api.Batch, conf *config.CoordinatorConfig) (reason string, err error) {
	names := make([]string, len(conf.Locations))
	for i, l := range conf.Locations {
		names[i] = l.Name
	}
	switch {
	case b.Location == "":
		return rejectUnknownLocation, errors.New("location must be set (the exporter's --location)")
	case !slices.Contains(names, b.Location):
		return rejectUnknownLocation, fmt.Errorf("unknown location %q: the coordinator's locations are %s", b.Location, strings.Join(names, ", "))
	case b.Run == "":
		return rejectInvalidReport, errors.New("run must be set")
	case len(b.Reports) > maxReportsPerBatch:
		return rejectInvalidReport, fmt.Errorf("%d reports in one batch; at most %d", len(b.Reports), maxReportsPerBatch)
	}
	for i := range b.Reports {
		rep := &b.Reports[i]
		field := func(name string) string { return fmt.Sprintf("reports[%d].%s", i, name) }
		switch {
		case rep.Seq == 0:
			return rejectInvalidReport, fmt.Errorf("%s must be at least 1", field("seq"))
		case strings.TrimSpace(rep.Target) == "":
			return rejectInvalidReport, fmt.Errorf("%s must be set", field("target"))
		case rep.Module == "":
			return rejectInvalidReport, fmt.Errorf("%s must be set", field("module"))
		case !slices.Contains(api.States, rep.State):
			return rejectInvalidReport, fmt.Errorf("%s: unknown state %q (want one of %s)", field("state"), rep.State, strings.Join(api.States, ", "))
		case rep.Time.IsZero():
			return rejectInvalidReport, fmt.Errorf("%s must be set", field("time"))
		case rep.Result == nil && rep.State != api.StateUnknown:
			return rejectInvalidReport, fmt.Errorf("%s must be set for state %q", field("result"), rep.State)
		}
		for name := range rep.Labels {
			if err := api.CheckLabelName(name); err != nil {
				return rejectInvalidReport, fmt.Errorf("%s: %w", field("labels"), err)
			}
		}
	}
	return "", nil
}
