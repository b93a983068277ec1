package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// waitHealth waits until /-/healthy answers wantCode, naming wantClock
// as stalled when set, and returns its body.
func waitHealth(t *testing.T, c *testCoordinator, what string, wantCode int, wantClock string) string {
	t.Helper()
	var body string
	testbin.WaitFor(t, what, 10*time.Second, func() error {
		var code int
		code, body = do(t, http.MethodGet, c.url+"/-/healthy", "", "")
		if code != wantCode || (wantClock != "" && !strings.Contains(body, "\n"+wantClock+": no progress for ")) {
			return fmt.Errorf("/-/healthy answered %d %q", code, body)
		}
		return nil
	})
	return body
}

const shortVerify = "confirmation:\n  verify_timeout: 500ms\n"

func TestAStalledStoreTurnsHealthyTo503AndBack(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra", "sfo")+shortVerify)
	waitHealth(t, c, "healthy at start", http.StatusOK, "")

	// Hold the incident log's write transaction: commits block.
	tx, err := c.store.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	// Released on failure too, so the coordinator can stop.
	t.Cleanup(func() { _ = tx.Rollback() })
	answered := make(chan int, 1)
	go func() {
		code, _ := do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", batchFailing)
		answered <- code
	}()
	// The report is received (the receive clock moves) and its incident
	// waits for a commit that does not come: a stall, not idleness.
	body := waitHealth(t, c, "store_commit stalled", http.StatusServiceUnavailable, clockStoreCommit)
	if strings.Contains(body, clockReportReceived) {
		t.Errorf("the report was received, yet %q", body)
	}
	if c.clocks.received.Last().IsZero() {
		t.Error("report_received never advanced")
	}
	if err := testutil.CollectAndCompare(c.clocks.set, strings.NewReader(`
# HELP vantage_coordinator_clock_stalled Whether the clock is stalled (1): work has been due for it for longer than its bound and it has not advanced; /-/healthy then answers 503 naming it.
# TYPE vantage_coordinator_clock_stalled gauge
vantage_coordinator_clock_stalled{clock="report_received"} 0
vantage_coordinator_clock_stalled{clock="store_commit"} 1
vantage_coordinator_clock_stalled{clock="verification_round"} 0
`), "vantage_coordinator_clock_stalled"); err != nil {
		t.Error(err)
	}
	select {
	case code := <-answered:
		t.Fatalf("the batch was answered %d before its incident was durable", code)
	default:
	}

	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if code := <-answered; code != http.StatusOK {
		t.Errorf("the batch was answered %d once the log was written, want 200", code)
	}
	waitHealth(t, c, "healthy again after the commit", http.StatusOK, "")
	if c.clocks.commit.Last().IsZero() {
		t.Error("store_commit never advanced")
	}
}

func TestAStuckConfirmationStateStallsTheReceiveClock(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra", "sfo")+shortVerify)
	waitHealth(t, c, "healthy at start", http.StatusOK, "")
	// Nobody else may apply anything to the machine: a batch received
	// cannot be applied.
	c.mu.Lock()
	locked := true
	t.Cleanup(func() {
		if locked {
			c.mu.Unlock()
		}
	})
	answered := make(chan int, 1)
	go func() {
		code, _ := do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", batchFailing)
		answered <- code
	}()
	waitHealth(t, c, "report_received stalled", http.StatusServiceUnavailable, clockReportReceived)
	locked = false
	c.mu.Unlock()
	if code := <-answered; code != http.StatusOK {
		t.Errorf("the batch was answered %d, want 200", code)
	}
	waitHealth(t, c, "healthy again", http.StatusOK, "")
}

func TestRoundsDueThatNobodyRunsStallTheRoundClock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "coordinator.yml")
	mustWrite(t, path, deadLocations(t, "ams", "fra", "sfo")+"confirmation:\n  verify_timeout: 500ms\n  reverify_interval: 1s\n")
	opts := DefaultOptions()
	opts.ConfigFile, opts.StoragePath = path, filepath.Join(dir, "data")
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	writerDone, dispatchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writer.run()
	}()
	// The dispatcher runs the rounds that Due starts.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(dispatchDone)
		c.dispatch.run(ctx)
	}()
	defer func() {
		cancel()
		<-dispatchDone
		c.writer.close()
		<-writerDone
		c.Close()
	}()
	srv := httptest.NewServer(c.Handler())
	defer srv.Close()
	tc := &testCoordinator{Coordinator: c, url: srv.URL}

	// An open incident resumed, its round due at once, and nothing that
	// starts rounds (the coordinator is not served).
	now := time.Now()
	c.mu.Lock()
	c.machine.Restore([]confirm.Incident{{ID: 1, Target: "https://a.example", Module: "http_2xx", State: confirm.StateDown,
		Reporter: "ams", StartedAt: now, OpenedAt: now, ConfirmedAt: now}}, now)
	c.mu.Unlock()
	waitHealth(t, tc, "verification_round stalled", http.StatusServiceUnavailable, clockVerificationRound)

	// The round starts; the dead locations make it end at once.
	c.update(func(m *confirm.Machine, now time.Time) confirm.Effects { return m.Due(now) })
	testbin.WaitFor(t, "the round to end and verification_round to advance", 5*time.Second, func() error {
		if c.clocks.round.Last().IsZero() {
			return errors.New("verification_round never advanced")
		}
		return nil
	})
	waitHealth(t, tc, "healthy once the round ended", http.StatusOK, "")
}
