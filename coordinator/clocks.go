package coordinator

import (
	"sync/atomic"
	"time"

	"github.com/vantageprobe/vantage/internal/liveness"
)

// Clocks of the coordinator's progress.
const (
	clockReportReceived    = "report_received"
	clockStoreCommit       = "store_commit"
	clockVerificationRound = "verification_round"
)

// clocks are the coordinator's clocks of its own progress, judged with
// bounds from the confirmation settings:
//   - report_received advances when a batch has been applied to the
//     confirmation state; work is due from the moment a batch is decoded
//     (bound: verify_timeout);
//   - store_commit advances when the incident log commits; work is due
//     while incident snapshots wait for their commit (bound:
//     verify_timeout), so reports received without a commit following is
//     a stall, and heartbeats with nothing to write are not;
//   - verification_round advances when a round's answers are applied;
//     work is due while a round is in flight or due (bound: verify_timeout
//     plus reverify_interval, the room re-verification has to be paced in).
type clocks struct {
	set      *liveness.Set
	received *liveness.Clock
	commit   *liveness.Clock
	round    *liveness.Clock
	// owed is the latest reading of the rounds owed.
	owed atomic.Pointer[owed]
}

type owed struct {
	since time.Time
	due   bool
}

func newClocks(c *Coordinator) *clocks {
	verify := func() time.Duration { return c.conf.Load().Confirmation.VerifyTimeout }
	k := &clocks{set: liveness.NewSet("coordinator")}
	k.received = k.set.Add(clockReportReceived, verify, nil)
	k.commit = k.set.Add(clockStoreCommit, verify, nil)
	k.round = k.set.Add(clockVerificationRound, func() time.Duration {
		cf := c.conf.Load().Confirmation
		return cf.VerifyTimeout + cf.ReverifyInterval
	}, func(now time.Time) (time.Time, bool) {
		// A health check must answer even while the machine's lock is
		// stuck (report_received then says so): it reads the rounds
		// owed only when the lock is free, and the latest reading
		// otherwise.
		if c.mu.TryLock() {
			since, due := c.machine.RoundsOwed(now)
			c.mu.Unlock()
			k.owed.Store(&owed{since: since, due: due})
		}
		if o := k.owed.Load(); o != nil {
			return o.since, o.due
		}
		return time.Time{}, false
	})
	c.writer.clock = k.commit
	c.reg.MustRegister(k.set)
	return k
}
