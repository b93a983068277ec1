package exporter

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/prober/result"
)

func postCheck(t *testing.T, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+api.CheckPath, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return mustDo(t, req)
}

func TestCheckAPI(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	ts := mustStart(t, httpConfig, func(o *Options) { o.Location = "ams" })

	code, body := postCheck(t, ts.url, "application/json", `{"target": "`+up.URL+`", "module": "http_2xx"}`)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp api.CheckResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("response is not a CheckResponse: %v\n%s", err, body)
	}
	if resp.Location != "ams" || resp.Target != up.URL || resp.Module != "http_2xx" {
		t.Errorf("response names %q %q %q", resp.Location, resp.Target, resp.Module)
	}
	r := resp.Result
	if !r.Success || r.HTTP == nil || r.HTTP.StatusCode != 200 || r.PhaseDuration("connect") <= 0 || r.Duration <= 0 {
		t.Errorf("result does not carry the probe: %s", body)
	}

	_, body = postCheck(t, ts.url, "", `{"target": "`+down.URL+`", "module": "http_2xx", "timeout_seconds": 2}`)
	resp = api.CheckResponse{}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Result.Success || resp.Result.Reason != result.ReasonStatusCode || resp.Result.HTTP.StatusCode != 502 {
		t.Errorf("failed check: got %s", body)
	}

	_, metrics := mustGet(t, ts.url+"/metrics")
	fams := mustParse(t, metrics)
	if v := mustFamily(t, fams, "vantage_exporter_api_checks_total").value(t, "module", "http_2xx", "result", "failure"); v != 1 {
		t.Errorf("api failure counter = %v, want 1", v)
	}
}

func TestCheckAPIRejectsBadRequests(t *testing.T) {
	ts := mustStart(t, httpConfig)
	for _, tc := range []struct {
		name, contentType, body string
		status                  int
		want                    string
	}{
		{"empty", "application/json", "", 400, "request body is empty"},
		{"not JSON", "application/json", "target=x", 400, "invalid request body: invalid character"},
		{"unknown field", "application/json", `{"target": "x", "module": "http_2xx", "modul": "y"}`, 400, `unknown field \"modul\"`},
		{"two values", "application/json", `{"target": "x", "module": "http_2xx"} {}`, 400, "more than one JSON value"},
		{"no target", "application/json", `{"module": "http_2xx"}`, 400, "target must be set"},
		{"no module", "application/json", `{"target": "x"}`, 400, "module must be set"},
		{"unknown module", "application/json", `{"target": "x", "module": "nope"}`, 400, `unknown module \"nope\"`},
		{"negative timeout", "application/json", `{"target": "x", "module": "http_2xx", "timeout_seconds": -1}`, 400, "timeout_seconds must not be negative"},
		{"wrong type", "application/json", `{"target": 3, "module": "http_2xx"}`, 400, "cannot unmarshal number"},
		{"content type", "text/plain", `{}`, 415, `content type \"text/plain\" is not application/json`},
		{"oversized", "application/json", `{"target": "` + strings.Repeat("a", maxCheckRequestBytes) + `"}`, 413, "larger than 65536 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := postCheck(t, ts.url, tc.contentType, tc.body)
			if code != tc.status || !strings.Contains(body, tc.want) || !strings.HasPrefix(body, `{"error":`) {
				t.Errorf("got %d %s, want %d with a JSON error containing %q", code, body, tc.status, tc.want)
			}
		})
	}
	if code, _ := mustGet(t, ts.url+api.CheckPath); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/v1/check answered %d, want 405", code)
	}
}

func TestCheckBudget(t *testing.T) {
	for _, tc := range []struct {
		requested float64
		module    time.Duration
		want      time.Duration
	}{
		{0, 0, defaultCheckTimeout},
		{0, 5 * time.Second, 5 * time.Second},
		{2, 5 * time.Second, 2 * time.Second},
		{9, 5 * time.Second, 9 * time.Second}, // room for the retries

		{30, 0, 30 * time.Second},
		{600, 0, maxCheckTimeout},
	} {
		if got := checkBudget(tc.requested, tc.module); got != tc.want {
			t.Errorf("checkBudget(%g, %s) = %s, want %s", tc.requested, tc.module, got, tc.want)
		}
	}
}

func FuzzCheckRequest(f *testing.F) {
	for _, seed := range []string{
		`{"target": "https://a.example", "module": "http_2xx"}`,
		`{"target": "x", "module": "m", "timeout_seconds": 1.5}`,
		`{"target": ""}`, `[]`, `null`, `{"target": "x", "module": "m"} 1`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/check", strings.NewReader(body))
		req, status, err := decodeCheckRequest(httptest.NewRecorder(), r)
		if err != nil {
			if status < 400 || status > 499 {
				t.Fatalf("error %q with status %d, want a 4xx", err, status)
			}
			return
		}
		if strings.TrimSpace(req.Target) == "" || req.Module == "" || req.TimeoutSeconds < 0 {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
	})
}
