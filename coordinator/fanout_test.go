package coordinator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/prober/result"
)

// fakeExporter answers the check API with res and canaryOK, and its health
// checks with 200.
func fakeExporter(t *testing.T, location string, res *result.Result, canaryOK *bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.StatusPath:
			// The coordinator's health checks, which may run during a
			// test: the same canary verdict as the check answers.
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(api.Status{Location: location, Run: "run-" + location, CanaryOK: canaryOK})
			return
		case api.CheckPath:
		default:
			fmt.Fprintln(w, "Healthy")
			return
		}
		var req api.CheckRequest
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad check request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.CheckResponse{Location: location, CanaryOK: canaryOK, Target: req.Target, Module: req.Module, Result: res})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func httpResult(success bool, status int) *result.Result {
	r := &result.Result{Prober: "http", Success: success, Start: time.Now(), Duration: 20 * time.Millisecond,
		Phases: []result.Phase{{Name: "connect", Duration: time.Millisecond}},
		HTTP:   &result.HTTPDetails{StatusCode: status}}
	if !success {
		r.Reason = result.ReasonStatusCode
	}
	return r
}

// fanOut GETs the coordinator's /probe with accept and returns the answer's
// content type, body and its samples by series, values as Go formats them
// (OpenMetrics writes 1 as 1.0).
func fanOut(t *testing.T, c *testCoordinator, accept string) (string, string, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.url+"/probe?module=http_2xx&target=https://a.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/probe: %d %s %v", resp.StatusCode, body, err)
	}
	samples := map[string]string{}
	for _, l := range strings.Split(string(body), "\n") {
		if i := strings.LastIndexByte(l, ' '); i > 0 && !strings.HasPrefix(l, "#") {
			v, err := strconv.ParseFloat(l[i+1:], 64)
			if err != nil {
				t.Fatalf("sample %q: %v", l, err)
			}
			samples[l[:i]] = strconv.FormatFloat(v, 'g', -1, 64)
		}
	}
	return resp.Header.Get("Content-Type"), string(body), samples
}

func TestProbeCountsAFailingCanaryAsUnknown(t *testing.T) {
	ams := fakeExporter(t, "ams", httpResult(false, 503), nil)
	fra := fakeExporter(t, "fra", httpResult(false, 503), new(false)) // fails, but cannot tell
	sfo := fakeExporter(t, "sfo", httpResult(true, 200), new(true))
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: %q}\n  - {name: fra, url: %q}\n  - {name: sfo, url: %q}\n", ams, fra, sfo))

	_, body, got := fanOut(t, c, "")
	for series, want := range map[string]string{
		`probe_success{location="ams"}`:                   "0",
		`probe_success{location="fra"}`:                   "0", // what fra saw is still shown
		`probe_success{location="sfo"}`:                   "1",
		`probe_http_status_code{location="sfo"}`:          "200",
		`vantage_probe_location_answered{location="ams"}`: "1",
		`vantage_probe_location_answered{location="fra"}`: "0",
		`vantage_probe_location_answered{location="sfo"}`: "1",
		`vantage_probe_locations{result="failure"}`:       "1",
		`vantage_probe_locations{result="unknown"}`:       "1",
		`vantage_probe_locations{result="success"}`:       "1",
	} {
		if got[series] != want {
			t.Errorf("%s = %q, want %q", series, got[series], want)
		}
	}
	// One failure, and fra could tip it: no consensus.
	if v, ok := got["probe_success"]; ok {
		t.Errorf("consensus probe_success = %s, want absent while fra's canary fails\n%s", v, body)
	}
	// The check answer's canary verdict is the location's health.
	for _, v := range c.health.views() {
		if want := v.Name != "fra"; v.Healthy != want {
			t.Errorf("%s healthy = %v, want %v (%s)", v.Name, v.Healthy, want, v.Error)
		}
	}
}

func TestProbeConsensus(t *testing.T) {
	for _, tc := range []struct {
		name      string
		successes []bool
		want      string // "": absent
	}{
		{"two of three fail", []bool{false, false, true}, "0"},
		{"one of three fails", []bool{false, true, true}, "1"},
		{"all succeed", []bool{true, true, true}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conf strings.Builder
			conf.WriteString("locations:\n")
			for i, ok := range tc.successes {
				name := fmt.Sprintf("loc%d", i)
				fmt.Fprintf(&conf, "  - {name: %s, url: %q}\n", name, fakeExporter(t, name, httpResult(ok, map[bool]int{true: 200, false: 503}[ok]), nil))
			}
			c := mustStart(t, conf.String())
			_, body, got := fanOut(t, c, "")
			if got["probe_success"] != tc.want {
				t.Errorf("consensus probe_success = %q, want %q\n%s", got["probe_success"], tc.want, body)
			}
		})
	}
}

func TestProbeNegotiatesTheFormat(t *testing.T) {
	url := fakeExporter(t, "ams", httpResult(true, 200), nil)
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: %q}\nconfirmation: {min_failing_locations: 1}\n", url))
	for _, tc := range []struct {
		accept, contentType, ending string
	}{
		{"", "text/plain; version=0.0.4", "\n"},
		{"text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "text/plain; version=0.0.4", "\n"},
		{"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", "application/openmetrics-text; version=1.0.0", "# EOF\n"},
	} {
		contentType, body, got := fanOut(t, c, tc.accept)
		if !strings.HasPrefix(contentType, tc.contentType) || !strings.HasSuffix(body, tc.ending) {
			t.Errorf("Accept %q: Content-Type %q, body ending %q; want %q ending %q", tc.accept, contentType, body[max(0, len(body)-10):], tc.contentType, tc.ending)
		}
		if got["probe_success"] != "1" || got[`probe_success{location="ams"}`] != "1" {
			t.Errorf("Accept %q: probe_success %q, ams %q; want 1, 1\n%s", tc.accept, got["probe_success"], got[`probe_success{location="ams"}`], body)
		}
	}
}
