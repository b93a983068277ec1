package exporter

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
)

// flakyTarget answers its first fail requests 503 and the next succeed
// 200; the one after those is held (held closes) until the test ends, so
// the exporter's counts stay as they are while the test reads them: a
// target's next check starts only once its previous outcome is counted.
type flakyTarget struct {
	*httptest.Server
	held chan struct{}
}

func newFlakyTarget(t *testing.T, fail, succeed int64) *flakyTarget {
	ft := &flakyTarget{held: make(chan struct{})}
	release := make(chan struct{})
	var n atomic.Int64
	var once sync.Once
	ft.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch i := n.Add(1); {
		case i <= fail:
			w.WriteHeader(http.StatusServiceUnavailable)
		case i <= fail+succeed:
		default:
			once.Do(func() { close(ft.held) })
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	// Cleanups run last first: the held request ends, then the server.
	t.Cleanup(ft.Close)
	t.Cleanup(func() { close(release) })
	return ft
}

func postStats(t *testing.T, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+api.StatsPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return mustDo(t, req)
}

// A scheduled target that fails a known number of checks and succeeds
// otherwise is counted exactly; with a failing canary its failures are
// unknown.
func TestStatsCountScheduledChecks(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		canary                     bool
		fail, succeed              int64
		succeeded, failed, unknown uint64
	}{
		{name: "location vouches", fail: 2, succeed: 1, succeeded: 1, failed: 2},
		{name: "canary failing", canary: true, fail: 1, succeed: 2, succeeded: 2, unknown: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			target := newFlakyTarget(t, tc.fail, tc.succeed)
			cfg := `
modules:
  http_2xx:
    prober: http
    timeout: 1s
scheduler:
  retries: 0
targets:
  - module: http_2xx
    interval: 1s
    targets: [` + target.URL + `]
`
			if tc.canary {
				canary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusServiceUnavailable)
				}))
				t.Cleanup(canary.Close)
				cfg += "canary:\n  module: http_2xx\n  target: " + canary.URL + "\n  interval: 1s\n"
			}
			ts := mustStart(t, cfg, func(o *Options) { o.Location = "ams" })
			select {
			case <-target.held:
			case <-time.After(15 * time.Second):
				t.Fatalf("the target was not checked %d times within 15s", tc.fail+tc.succeed+1)
			}
			asked := time.Now()
			code, body := postStats(t, ts.url, `{"range_seconds": 86400, "targets": [
				{"target": "`+target.URL+`", "module": "http_2xx"},
				{"target": "`+target.URL+`", "module": "http_slow"}]}`)
			if code != http.StatusOK {
				t.Fatalf("stats: %d %s", code, body)
			}
			var resp api.StatsResponse
			if err := json.Unmarshal([]byte(body), &resp); err != nil {
				t.Fatalf("answer is not a StatsResponse: %v\n%s", err, body)
			}
			if resp.Location != "ams" || resp.Run == "" || len(resp.Stats) != 2 {
				t.Fatalf("answer: %s", body)
			}
			got := resp.Stats[0]
			if got.Target != target.URL || got.Module != "http_2xx" || !got.Known ||
				got.Succeeded != tc.succeeded || got.Failed != tc.failed || got.Unknown != tc.unknown {
				t.Errorf("stats of the target: %+v, want known with %d/%d/%d succeeded/failed/unknown",
					got, tc.succeeded, tc.failed, tc.unknown)
			}
			oldest := asked.Add(-24 * time.Hour)
			if got.From.After(oldest) || got.From.Before(oldest.Add(-time.Hour)) || got.From.Minute() != 0 {
				t.Errorf("From = %s, want the start of the hour holding %s", got.From, oldest)
			}
			if other := resp.Stats[1]; other.Known || other.Succeeded+other.Failed+other.Unknown != 0 {
				t.Errorf("a target not scheduled here: %+v, want unknown with no counts", other)
			}
		})
	}
}

// Bad requests are refused with a 4xx that names what is wrong; with a
// token file, requests without the token are refused.
func TestStatsRequestErrors(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := mustStart(t, httpConfig, func(o *Options) { o.APITokenFile = tokenFile })
	target := `{"target": "https://a.example", "module": "http_2xx"}`
	many := strings.Repeat(target+",", api.MaxStatsTargets) + target
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"zero range", `{"range_seconds": 0, "targets": [` + target + `]}`, 400, "range_seconds must be more than 0, got 0"},
		{"negative range", `{"range_seconds": -60, "targets": [` + target + `]}`, 400, "range_seconds must be more than 0, got -60"},
		{"range too long", `{"range_seconds": 604801, "targets": [` + target + `]}`, 400, "range_seconds must be at most 604800 (168h0m0s), got 604801"},
		{"no targets", `{"range_seconds": 60, "targets": []}`, 400, "targets must name at least one target"},
		{"too many targets", `{"range_seconds": 60, "targets": [` + many + `]}`, 413, "targets holds at most 1000 targets, got 1001"},
		{"target unset", `{"range_seconds": 60, "targets": [` + target + `, {"module": "http_2xx"}]}`, 400, "targets[1].target must be set"},
		{"module unset", `{"range_seconds": 60, "targets": [{"target": "x"}]}`, 400, "targets[0].module must be set"},
		{"malformed", `{"range_seconds": "1h"}`, 400, "invalid request body"},
		{"unknown field", `{"range": 60}`, 400, `unknown field \"range\"`},
	} {
		code, body := postStats(t, ts.url, tc.body, "Authorization", "Bearer s3cret")
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d naming %q", tc.name, code, body, tc.code, tc.want)
		}
	}
	ok := `{"range_seconds": 604800, "targets": [` + target + `]}`
	if code, body := postStats(t, ts.url, ok); code != http.StatusUnauthorized {
		t.Errorf("stats without the token: %d %s, want 401", code, body)
	}
	if code, body := postStats(t, ts.url, ok, "Authorization", "Bearer s3cret"); code != http.StatusOK {
		t.Errorf("stats over the whole range with the token: %d %s, want 200", code, body)
	}
}
