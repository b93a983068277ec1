package exporter

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestHTTPStepsAndICMPPacketsScheduledAndProbed runs an http_steps module
// and a multi-packet icmp module both from /probe and as scheduled
// targets, whose series reach /metrics with their types intact.
func TestHTTPStepsAndICMPPacketsScheduledAndProbed(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			fmt.Fprint(w, `{"token": "t-1"}`)
		case "/me":
			if r.Header.Get("Authorization") != "Bearer t-1" {
				w.WriteHeader(http.StatusForbidden)
			}
		}
	}))
	defer api.Close()
	ts := mustStart(t, `
modules:
  flow:
    prober: http_steps
    timeout: 2s
    http_steps:
      steps:
        - name: login
          url: /login
          capture: [{name: token, cel: body.token}]
        - name: me
          url: /me
          headers: {Authorization: "Bearer ${token}"}
  smoke:
    prober: icmp
    timeout: 2s
    icmp:
      preferred_ip_protocol: ip4
      packets: 3
      packet_interval: 20ms
scheduler:
  retries: 0
targets:
  - module: flow
    interval: 2s
    targets: [`+api.URL+`]
  - module: smoke
    interval: 2s
    targets: [127.0.0.1]
`)
	q := url.Values{"module": {"flow"}, "target": {api.URL}}
	code, body := mustGet(t, ts.url+"/probe?"+q.Encode())
	if code != http.StatusOK {
		t.Fatalf("/probe answered %d: %s", code, body)
	}
	fams := mustParse(t, body)
	for _, step := range []string{"login", "me"} {
		if v := mustFamily(t, fams, "probe_step_success").value(t, "step", step); v != 1 {
			t.Errorf("/probe probe_step_success{step=%q} = %v\n%s", step, v, body)
		}
	}
	q = url.Values{"module": {"smoke"}, "target": {"127.0.0.1"}}
	code, body = mustGet(t, ts.url+"/probe?"+q.Encode())
	if code != http.StatusOK || !strings.Contains(body, "# TYPE smokeping_response_duration_seconds histogram\n") ||
		!strings.Contains(body, `smokeping_response_duration_seconds_count{host="127.0.0.1",ip="127.0.0.1"} 3`) {
		t.Errorf("/probe of the icmp module answered %d:\n%s", code, body)
	}

	testbin.WaitFor(t, "both scheduled targets on /metrics", 10*time.Second, func() error {
		_, body = mustGet(t, ts.url+"/metrics")
		fams = mustParse(t, body)
		switch {
		case fams["probe_step_success"] == nil:
			return errors.New("no probe_step_success yet")
		case !strings.Contains(body, `smokeping_response_duration_seconds_count{target="127.0.0.1",module="smoke",host="127.0.0.1",ip="127.0.0.1"} 3`):
			return errors.New("no complete icmp histogram yet")
		}
		return nil
	})
	if v := mustFamily(t, fams, "probe_step_success").value(t, "target", api.URL, "module", "flow", "step", "me"); v != 1 {
		t.Errorf("scheduled probe_step_success{step=me} = %v", v)
	}
	if !strings.Contains(body, "# TYPE smokeping_requests_total counter\n") {
		t.Errorf("/metrics lacks the counter family:\n%s", body)
	}
}
