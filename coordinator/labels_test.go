package coordinator

import (
	"net/http"
	"strings"
	"testing"
)

// A target's configured labels, carried by the exporters' reports, are on
// every series the coordinator exposes about the target, so a page routes
// by team.
func TestTargetSeriesCarryTheReportedLabels(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra"))
	batch := strings.Replace(batchFailing, `"attempts": 3,`, `"attempts": 3, "labels": {"team": "web", "env": "prod"},`, 1)
	if status, body := do(t, http.MethodPost, c.url+"/api/v1/reports", "application/json", batch); status != http.StatusOK {
		t.Fatalf("report batch: %d %s", status, body)
	}
	_, metrics := do(t, http.MethodGet, c.url+"/metrics", "", "")
	states := 0
	for line := range strings.SplitSeq(metrics, "\n") {
		if !strings.HasPrefix(line, "vantage_target_") {
			continue
		}
		if !strings.Contains(line, `env="prod"`) || !strings.Contains(line, `team="web"`) {
			t.Errorf("series without the target's labels: %s", line)
		}
		if strings.HasPrefix(line, "vantage_target_state{") {
			states++
		}
	}
	if states == 0 {
		t.Fatalf("no vantage_target_state series on /metrics:\n%s", metrics)
	}
}
