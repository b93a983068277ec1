package prober

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/result"
)

// stepsAPI is an in-process API a multi-step check logs in to: POST /login
// with the right password answers a token and a session header; GET
// /items/{id} needs both; /slow answers late, /big a large body.
type stepsAPI struct {
	*httptest.Server
	noSession bool // /login omits X-Session

	mu       sync.Mutex
	requests []string // "METHOD path auth session" as received
}

func newStepsAPI(t *testing.T) *stepsAPI {
	t.Helper()
	a := &stepsAPI{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ User, Password string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.User != "probe" || in.Password != "s3cret" {
			http.Error(w, `{"error":"bad credentials"}`, http.StatusUnauthorized)
			return
		}
		if !a.noSession {
			w.Header().Set("X-Session", "sess-9; Path=/")
		}
		fmt.Fprint(w, `{"token":"tok-123","user":{"id":42,"admin":false}}`)
	})
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-123" || r.Header.Get("X-Session") != "sess-9" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, `{"status":"ok","owner":%s,"items":[{"name":"a"},{"name":"b"}]}`, r.PathValue("id"))
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "OK version=1.2.3") })
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(strings.Repeat("x", 10000))) })
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, strings.TrimSpace(fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("X-Session"))))
		a.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *stepsAPI) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

// stepsModule loads an http_steps module from YAML, as a configuration
// file does (with validation), with the password secret in a file.
func stepsModule(t *testing.T, password, stepsYAML string) config.Module {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(secret, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`modules:
  flow:
    prober: http_steps
    timeout: 5s
    http_steps:
      secrets:
        password: %s
      steps:
%s`, secret, stepsYAML)
	c, err := config.Parse([]byte(doc), "test.yml")
	if err != nil {
		t.Fatalf("config does not load: %v\n%s", err, doc)
	}
	return c.Modules["flow"]
}

const loginFlow = `
        - name: login
          method: POST
          url: /login
          headers: {Content-Type: application/json}
          body: '{"user":"probe","password":"${password}"}'
          valid_status_codes: [200]
          fail_if_body_json_not_matches_cel: 'has(body.token)'
          capture:
            - {name: token, cel: body.token}
            - {name: user_id, cel: body.user.id}
            - {name: session, header: X-Session, regexp: '^([^;]+)'}
        - name: items
          url: ${target}/items/${user_id}
          headers:
            Authorization: Bearer ${token}
            X-Session: ${session}
          fail_if_body_json_not_matches_cel: 'body.status == "ok" && body.owner == 42 && size(body.items) == 2'
          capture:
            - {name: first, cel: 'body.items[0].name'}
        - name: health
          url: /health?item=${first}
          fail_if_body_not_matches_regexp: ['^OK']
          fail_if_header_not_matches:
            - {header: Content-Type, regexp: '^text/plain'}
`

func TestHTTPStepsFlow(t *testing.T) {
	api := newStepsAPI(t)
	r := runTestProbe(t, stepsModule(t, "s3cret", loginFlow), api.URL, 5*time.Second)
	requireReason(t, r, result.ReasonNone)

	want := []string{"POST /login", "GET /items/42 Bearer tok-123 sess-9", "GET /health"}
	if got := api.seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("the API got %q, want %q: the captures did not reach the later steps", got, want)
	}
	s := seriesOfResult(r)
	for _, step := range []string{"login", "items", "health"} {
		if v := s[`probe_step_success{step="`+step+`"}`]; v != 1 {
			t.Errorf("probe_step_success{step=%q} = %v", step, v)
		}
		if v := s[`probe_step_http_status_code{step="`+step+`"}`]; v != 200 {
			t.Errorf("probe_step_http_status_code{step=%q} = %v", step, v)
		}
		if v, ok := s[`probe_step_duration_seconds{step="`+step+`"}`]; !ok || v <= 0 || v > r.Duration.Seconds() {
			t.Errorf("probe_step_duration_seconds{step=%q} = %v (present %v), probe took %v", step, v, ok, r.Duration)
		}
		if v := s[`probe_step_phase_duration_seconds{step="`+step+`",phase="connect"}`]; v <= 0 {
			t.Errorf("step %q connect phase = %v", step, v)
		}
	}
	// The module's phases sum the steps'.
	var connect time.Duration
	for _, sd := range r.HTTPSteps.Steps {
		for _, ph := range sd.Phases {
			if ph.Name == "connect" {
				connect += ph.Duration
			}
		}
	}
	if got := s[`probe_http_duration_seconds{phase="connect"}`]; got != connect.Seconds() || connect == 0 {
		t.Errorf(`probe_http_duration_seconds{phase="connect"} = %v, want the steps' sum %v`, got, connect)
	}
	if s["probe_success"] != 1 || s["probe_ip_protocol"] != 4 {
		t.Errorf("series = %v", s)
	}
}

func TestHTTPStepsStopAtTheFailedStep(t *testing.T) {
	api := newStepsAPI(t)
	r := runTestProbe(t, stepsModule(t, "wrong", loginFlow), api.URL, 5*time.Second)
	requireReason(t, r, result.ReasonStatusCode)
	if !strings.Contains(r.Error, `step "login"`) {
		t.Errorf("error %q does not name the failed step", r.Error)
	}
	if got := api.seen(); len(got) != 1 {
		t.Errorf("the API got %q; steps after the failed one must not run", got)
	}
	s := seriesOfResult(r)
	if s[`probe_step_success{step="login"}`] != 0 || s[`probe_step_http_status_code{step="login"}`] != 401 {
		t.Errorf("login series = %v", s)
	}
	for _, step := range []string{"items", "health"} {
		if v, ok := s[`probe_step_success{step="`+step+`"}`]; !ok || v != 0 {
			t.Errorf("probe_step_success{step=%q} = %v (present %v), want 0", step, v, ok)
		}
		if _, ok := s[`probe_step_duration_seconds{step="`+step+`"}`]; ok {
			t.Errorf("step %q did not run but has a duration", step)
		}
	}
	if v := s[`probe_failure_info{reason="status_code"}`]; v != 1 {
		t.Errorf("probe_failure_info = %v", s)
	}
}

func TestHTTPStepsCaptureFails(t *testing.T) {
	api := newStepsAPI(t)
	api.noSession = true
	r := runTestProbe(t, stepsModule(t, "s3cret", loginFlow), api.URL, 5*time.Second)
	requireReason(t, r, result.ReasonCaptureFailed)
	if !strings.Contains(r.Error, `capture "session": no header "X-Session"`) {
		t.Errorf("error %q does not say which capture failed and why", r.Error)
	}
	if got := api.seen(); len(got) != 1 {
		t.Errorf("the API got %q after a failed capture", got)
	}
}

func TestHTTPStepsDeadlineCoversAllSteps(t *testing.T) {
	api := newStepsAPI(t)
	m := stepsModule(t, "s3cret", `
        - {name: health, url: /health}
        - {name: slow, url: /slow}
        - {name: after, url: /health}
`)
	m.Timeout = 400 * time.Millisecond
	start := time.Now()
	r := runTestProbe(t, m, api.URL, 5*time.Second)
	took := time.Since(start)
	requireReason(t, r, result.ReasonTimeout)
	if took > 2*time.Second {
		t.Errorf("probe took %v with a 400ms module timeout", took)
	}
	if !r.HTTPSteps.Steps[0].Success || r.HTTPSteps.Steps[1].Reason != result.ReasonTimeout || r.HTTPSteps.Steps[2].Ran {
		t.Errorf("steps = %+v", r.HTTPSteps.Steps)
	}
}

func TestHTTPStepsBodyLimitPerStep(t *testing.T) {
	api := newStepsAPI(t)
	m := stepsModule(t, "s3cret", `
        - {name: small, url: /health, body_size_limit: 100B}
        - {name: big, url: /big, body_size_limit: 1KiB}
`)
	r := runTestProbe(t, m, api.URL, 5*time.Second)
	requireReason(t, r, result.ReasonBodyTooLarge)
	if !r.HTTPSteps.Steps[0].Success || r.HTTPSteps.Steps[1].Success {
		t.Errorf("steps = %+v", r.HTTPSteps.Steps)
	}
	// Without a limit, a step's body is bounded by the default.
	m = stepsModule(t, "s3cret", `
        - {name: big, url: /big, capture: [{name: all, regexp: 'x+'}]}
`)
	requireReason(t, runTestProbe(t, m, api.URL, 5*time.Second), result.ReasonNone)
	if config.DefaultStepBodySizeLimit < 10000 {
		t.Fatalf("default body limit %d is below the test body", config.DefaultStepBodySizeLimit)
	}
}

func TestHTTPStepsSecretReadAtEveryProbe(t *testing.T) {
	api := newStepsAPI(t)
	m := stepsModule(t, "wrong", loginFlow)
	mod, err := Prepare("flow", m)
	if err != nil {
		t.Fatal(err)
	}
	requireReason(t, probeModule(t, mod, api.URL, 5*time.Second), result.ReasonStatusCode)
	// Rotating the secret's file takes effect at the next probe.
	if err := os.WriteFile(m.HTTPSteps.Secrets["password"], []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	requireReason(t, probeModule(t, mod, api.URL, 5*time.Second), result.ReasonNone)
	// A secret that cannot be read fails the probe before any request.
	os.Remove(m.HTTPSteps.Secrets["password"])
	n := len(api.seen())
	r := probeModule(t, mod, api.URL, 5*time.Second)
	requireReason(t, r, result.ReasonConfigError)
	if len(api.seen()) != n {
		t.Error("requests were made without the secret")
	}
}

func TestHTTPStepsCaptureKinds(t *testing.T) {
	var (
		mu      sync.Mutex
		got     string
		notJSON = true
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/echo" {
			b, _ := io.ReadAll(r.Body)
			got = r.URL.RawQuery + " " + string(b)
			return
		}
		w.Header().Set("Location", "/next/77")
		if notJSON {
			fmt.Fprint(w, `{"n": 3.5} id=abc-1`)
			return
		}
		fmt.Fprint(w, `{"n": 3.5, "ok": true, "list": [1, 2], "s": "id=abc-1"}`)
	}))
	defer srv.Close()
	m := stepsModule(t, "s3cret", `
        - name: first
          url: /
          capture:
            - {name: n, cel: body.n}
            - {name: ok, cel: body.ok}
            - {name: next, header: Location, regexp: '/next/(\d+)'}
            - {name: loc, header: location}
            - {name: id, regexp: 'id=([a-z0-9-]+)'}
        - name: echo
          method: POST
          url: /echo?n=${n}&next=${next}
          body: 'ok=${ok} loc=${loc} id=${id} literal=$${id}'
`)
	// The body is not JSON: the CEL captures fail.
	r := runTestProbe(t, m, srv.URL, 5*time.Second)
	requireReason(t, r, result.ReasonCaptureFailed)
	if !strings.Contains(r.Error, "body is not JSON") {
		t.Errorf("error = %q", r.Error)
	}

	mu.Lock()
	notJSON = false
	mu.Unlock()
	r = runTestProbe(t, m, srv.URL, 5*time.Second)
	requireReason(t, r, result.ReasonNone)
	mu.Lock()
	sent := got
	mu.Unlock()
	if want := "n=3.5&next=77 ok=true loc=/next/77 id=abc-1 literal=${id}"; sent != want {
		t.Errorf("the last step sent %q, want %q", sent, want)
	}

	// A list is not a value a variable can hold.
	m = stepsModule(t, "s3cret", `
        - {name: first, url: /, capture: [{name: l, cel: body.list}]}
`)
	r = runTestProbe(t, m, srv.URL, 5*time.Second)
	requireReason(t, r, result.ReasonCaptureFailed)
	if !strings.Contains(r.Error, "not a string, number or boolean") {
		t.Errorf("error = %q", r.Error)
	}
}
