package coordinator

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/internal/jsonapi"
)

// FuzzReportBatch feeds arbitrary bodies to the report intake's decoding
// and validation: never a panic; every body is either refused with a 4xx
// and a message, or a batch whose every report the state machine can
// take.
func FuzzReportBatch(f *testing.F) {
	f.Add(batchFailing)
	f.Add(`{"location": "ams", "run": "r", "reports": []}`)
	f.Add(`{"location": "fra", "run": "r", "reports": [{"seq": 2, "target": "x", "module": "m", "state": "recovered", "time": "2026-01-01T00:00:00Z", "result": {"success": true, "phases": [{"name": "connect", "duration_ns": 5}]}}]}`)
	f.Add(`{"location": "ams", "run": "r", "reports": [{"seq": 1, "target": "x", "module": "m", "state": "unknown", "time": "2026-01-01T00:00:00Z"}]}`)
	f.Add(`{"location": "ams", "reports": null}`)
	f.Add(`[]`)
	conf := testConfig("ams", "fra", "sfo")
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, api.ReportsPath, strings.NewReader(body))
		var b api.Batch
		status, err := jsonapi.Decode(rec, req, maxReportBatchBytes, &b, "a batch")
		if err == nil {
			var reason string
			reason, err = validateBatch(&b, conf)
			if err != nil && reason == "" {
				t.Fatalf("refused without a reason: %v", err)
			}
			status = http.StatusBadRequest
		}
		if err != nil {
			if status < 400 || status > 499 || err.Error() == "" {
				t.Fatalf("refused with status %d and message %q", status, err)
			}
			return
		}
		m := confirm.NewMachine(conf, 0)
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		for i := range b.Reports {
			m.Report(b.Location, &b.Reports[i], now)
		}
		for _, v := range m.Targets() {
			if v.State != confirm.StateUp && v.State != confirm.StateSeemsDown {
				t.Fatalf("a single batch led %s to %s", v.Target, v.State)
			}
		}
	})
}
