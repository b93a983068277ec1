package coordinator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/api"
)

func TestLocationHealthFollowsTheExplicitFacts(t *testing.T) {
	h := newLocationHealth()
	h.configure(testConfig("ams"))
	view := func() LocationView {
		t.Helper()
		vs := h.views()
		if len(vs) != 1 {
			t.Fatalf("%d views, want 1", len(vs))
		}
		return vs[0]
	}
	for _, step := range []struct {
		name    string
		contact contact
		healthy bool
		err     string
	}{
		{"a status answered", contact{reachable: true, message: true}, true, ""},
		{"a batch with canary_ok false", contact{reachable: true, message: true, canaryOK: new(false)}, false, api.ErrCanaryFailing.Error()},
		{"a contact without a message keeps the canary's verdict", contact{reachable: true}, false, api.ErrCanaryFailing.Error()},
		{"a check answer with canary_ok true", contact{reachable: true, message: true, canaryOK: new(true)}, true, ""},
		{"a batch with canary_ok false again", contact{reachable: true, message: true, canaryOK: new(false)}, false, api.ErrCanaryFailing.Error()},
		// Since issue 11: absent is not failing, from every message.
		{"a status without canary_ok", contact{reachable: true, message: true}, true, ""},
		{"no answer", contact{err: "connection refused"}, false, "connection refused"},
		{"an answer again", contact{reachable: true}, true, ""},
	} {
		h.observe("ams", step.contact)
		if v := view(); v.Healthy != step.healthy || v.Error != step.err {
			t.Errorf("after %s: healthy %v, error %q; want %v, %q", step.name, v.Healthy, v.Error, step.healthy, step.err)
		}
	}
	h.observe("nyc", contact{reachable: true}) // not configured: ignored
	if n := len(h.snapshot()); n != 1 {
		t.Errorf("%d locations in the snapshot, want 1", n)
	}
}

// TestBatchCanaryDecidesLocationHealth sends report batches and reads the
// location's health from the API and the series: canary_ok false makes it
// unhealthy, true healthy again, and a batch without canary_ok means the
// canary is not failing (since issue 11; it used to keep the verdict). A
// report in state unknown says nothing of the location's health.
func TestBatchCanaryDecidesLocationHealth(t *testing.T) {
	// The exporter answers its status without a canary verdict, so only
	// the batches' canary decides.
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"location": "ams", "run": "x"}`)
	}))
	defer exp.Close()
	c := mustStart(t, fmt.Sprintf("locations:\n  - {name: ams, url: %q}\nconfirmation: {min_failing_locations: 1}\n", exp.URL))
	seq := 0
	send := func(canary string, state string) {
		t.Helper()
		seq++
		reports := ""
		if state != "" {
			reports = fmt.Sprintf(`{"seq": %d, "target": "https://a.example", "module": "http_2xx", "state": %q, "time": %q}`, seq, state, ts(0))
		}
		body := `{"location": "ams", "run": "r1", ` + canary + `"reports": [` + reports + `]}`
		if status, answer := do(t, http.MethodPost, c.url+api.ReportsPath, "application/json", body); status != 200 {
			t.Fatalf("batch %s: %d %s", body, status, answer)
		}
	}
	check := func(after string, healthy bool, canaryOK *bool) {
		t.Helper()
		status, body := do(t, http.MethodGet, c.url+"/api/v1/locations", "", "")
		var views []LocationView
		if err := json.Unmarshal([]byte(body), &views); status != 200 || err != nil || len(views) != 1 {
			t.Fatalf("locations: %d %s %v", status, body, err)
		}
		v := views[0]
		switch {
		case v.Healthy != healthy:
			t.Errorf("after %s: healthy = %v, want %v", after, v.Healthy, healthy)
		case canaryOK == nil && v.CanaryOK != nil, canaryOK != nil && (v.CanaryOK == nil || *v.CanaryOK != *canaryOK):
			t.Errorf("after %s: canary_ok = %v, want %v", after, v.CanaryOK, canaryOK)
		case !healthy && v.Error != api.ErrCanaryFailing.Error():
			t.Errorf("after %s: error %q, want %q", after, v.Error, api.ErrCanaryFailing)
		}
		want := `
# HELP vantage_location_healthy Whether the location's exporter answers and its connectivity canary passes; while 0 its verdicts count as unknown.
# TYPE vantage_location_healthy gauge
vantage_location_healthy{location="ams"} ` + map[bool]string{true: "1", false: "0"}[healthy] + "\n"
		if err := testutil.GatherAndCompare(c.reg, strings.NewReader(want), "vantage_location_healthy"); err != nil {
			t.Errorf("after %s: %v", after, err)
		}
	}

	send("", "")
	check("a batch without canary_ok", true, nil)
	// A report in state unknown says the location cannot tell about its
	// target, not that the location is unhealthy.
	send("", api.StateUnknown)
	check("an unknown report without canary_ok", true, nil)
	send(`"canary_ok": false, `, "")
	check("canary_ok false", false, new(false))
	send("", "")
	check("a heartbeat without canary_ok", true, nil)
	send(`"canary_ok": false, `, "")
	check("canary_ok false again", false, new(false))
	send(`"canary_ok": true, `, api.StateUnknown)
	check("canary_ok true", true, new(true))
}
