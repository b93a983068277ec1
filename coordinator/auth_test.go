package coordinator

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestTokenScopesAndOwners: each route needs its scope once a token grants
// it, and a token with an owner sees and changes its owner's monitors
// only.
func TestTokenScopesAndOwners(t *testing.T) {
	dir := t.TempDir()
	tokens := map[string]string{"admin": "adm1n", "team-a": "t0ken-a", "team-b": "t0ken-b", "reader": "r3ad", "exporters": "rep0rt"}
	for name, tok := range tokens {
		mustWrite(t, filepath.Join(dir, name), tok+"\n")
	}
	conf := fmt.Sprintf(`locations:
  - name: ams
    url: http://%s
  - name: fra
    url: http://%s
registry:
  modules:
    http_2xx: {prober: http}
api_tokens:
  - {name: admin, token_file: %[3]s/admin, scopes: [read, write]}
  - {name: team-a, token_file: %[3]s/team-a, scopes: [read, write], owner: a}
  - {name: team-b, token_file: %[3]s/team-b, scopes: [read, write], owner: b}
  - {name: reader, token_file: %[3]s/reader, scopes: [read]}
  - {name: exporters, token_file: %[3]s/exporters, scopes: [report]}
`, testbin.FreeAddr(t), testbin.FreeAddr(t), dir)
	c := mustStart(t, conf)
	url := c.url + "/api/v1/monitors"
	const spec = `{"target": "https://a.example/", "module": "http_2xx"}`

	for _, tc := range []struct {
		method, path, token string
		status              int
		want                string
	}{
		{http.MethodGet, "/api/v1/monitors", "", http.StatusUnauthorized, "no bearer token"},
		{http.MethodGet, "/api/v1/sd", "", http.StatusUnauthorized, "granting the read scope"},
		{http.MethodGet, "/api/v1/monitors", "nope", http.StatusUnauthorized, "none of the API's tokens"},
		{http.MethodPost, "/api/v1/monitors", tokens["reader"], http.StatusForbidden, `token \"reader\" does not grant the write scope (it grants read)`},
		{http.MethodPost, "/api/v1/reports", tokens["admin"], http.StatusForbidden, `token \"admin\" does not grant the report scope`},
		{http.MethodPost, "/api/v1/reports", "", http.StatusUnauthorized, "no bearer token"},
		{http.MethodPost, "/api/v1/maintenances", tokens["exporters"], http.StatusForbidden, "does not grant the write scope"},
	} {
		body := ""
		if tc.method == http.MethodPost {
			body = spec
		}
		status, got := call(t, tc.method, c.url+tc.path, tc.token, body)
		if status != tc.status || !strings.Contains(got, tc.want) {
			t.Errorf("%s %s with %q: %d %s, want %d with %s", tc.method, tc.path, tc.token, status, got, tc.status, tc.want)
		}
	}
	if v := testutil.ToFloat64(c.metrics.unauthorized); v != 7 {
		t.Errorf("refused requests counted %v, want 7", v)
	}
	if status, body := call(t, http.MethodPost, c.url+"/api/v1/reports", tokens["exporters"], batchFailing); status != http.StatusOK {
		t.Errorf("a report with the report token: %d %s", status, body)
	}

	status, body := call(t, http.MethodPost, url, tokens["team-a"], spec)
	a := mustMonitor(t, status, body, http.StatusCreated)
	if a.Owner != "a" {
		t.Errorf("team-a's monitor has owner %q, want a", a.Owner)
	}
	if status, body := call(t, http.MethodPost, url, tokens["team-a"], `{"target": "https://b.example/", "module": "http_2xx", "owner": "b"}`); status != http.StatusBadRequest || !strings.Contains(body, `owner: token \"team-a\" writes the monitors of owner \"a\" only`) {
		t.Errorf("team-a writing for b: %d %s", status, body)
	}
	status, body = call(t, http.MethodPost, url, tokens["admin"], `{"target": "https://b.example/", "module": "http_2xx", "owner": "b"}`)
	b := mustMonitor(t, status, body, http.StatusCreated)

	count := func(path, token string) int {
		t.Helper()
		status, body := call(t, http.MethodGet, c.url+path, token, "")
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		return strings.Count(body, `"https://`) / map[bool]int{true: 2, false: 1}[strings.Contains(path, "/sd")]
	}
	for _, tc := range []struct {
		token string
		n     int
	}{{"team-a", 1}, {"team-b", 1}, {"admin", 2}, {"reader", 2}} {
		if n := count("/api/v1/monitors", tokens[tc.token]); n != tc.n {
			t.Errorf("%s lists %d monitors, want %d", tc.token, n, tc.n)
		}
		if n := count("/api/v1/sd", tokens[tc.token]); n != tc.n {
			t.Errorf("%s's http_sd holds %d monitors, want %d", tc.token, n, tc.n)
		}
	}
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		body := ""
		if method == http.MethodPut {
			body = `{"target": "https://c.example/", "module": "http_2xx"}`
		}
		if status, _ := call(t, method, url+"/"+b.ID, tokens["team-a"], body); status != http.StatusNotFound {
			t.Errorf("%s of b's monitor with team-a's token: %d, want 404", method, status)
		}
	}
	if status, _ := call(t, http.MethodDelete, url+"/"+b.ID, tokens["team-b"], ""); status != http.StatusNoContent {
		t.Errorf("team-b deleting its monitor: %d", status)
	}
}

// TestMonitorIncidents: the monitor's incidents are the incident log's of
// its target and module.
func TestMonitorIncidents(t *testing.T) {
	c := mustStart(t, deadLocations(t, "ams", "fra")+"registry:\n  modules:\n    http_2xx: {prober: http}\n")
	status, body := call(t, http.MethodPost, c.url+"/api/v1/monitors", "", `{"target": "https://a.example", "module": "http_2xx"}`)
	m := mustMonitor(t, status, body, http.StatusCreated)
	status, body = call(t, http.MethodPost, c.url+"/api/v1/monitors", "", `{"target": "https://other.example", "module": "http_2xx"}`)
	other := mustMonitor(t, status, body, http.StatusCreated)
	mustPost(t, c.url+"/api/v1/reports", batchFailing)
	var incidents []struct {
		Target, Reporter string
	}
	testbin.WaitFor(t, "the incident of the report", 5*time.Second, func() error {
		mustGetJSON(t, c.url+"/api/v1/monitors/"+m.ID+"/incidents", &incidents)
		if len(incidents) != 1 {
			return fmt.Errorf("%d incidents", len(incidents))
		}
		return nil
	})
	if incidents[0].Target != "https://a.example" || incidents[0].Reporter != "ams" {
		t.Errorf("incidents = %+v", incidents)
	}
	mustGetJSON(t, c.url+"/api/v1/monitors/"+other.ID+"/incidents", &incidents)
	if len(incidents) != 0 {
		t.Errorf("the other monitor has incidents %+v", incidents)
	}
}

// TestTokensFollowReloads: a reload brings in new tokens and scopes; one
// whose token file cannot be read fails and keeps the running tokens.
func TestTokensFollowReloads(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "old"), "0ld\n")
	mustWrite(t, filepath.Join(dir, "new"), "n3w\n")
	base := deadLocations(t, "ams", "fra") + "registry:\n  modules:\n    http_2xx: {prober: http}\napi_tokens:\n"
	c := mustStart(t, base+"  - {name: ci, token_file: "+dir+"/old, scopes: [read]}\n")
	list := c.url + "/api/v1/monitors"
	if status, body := call(t, http.MethodGet, list, "0ld", ""); status != http.StatusOK {
		t.Fatalf("the configured token: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodPost, list, "", `{"target": "https://a.example/", "module": "http_2xx"}`); status != http.StatusCreated {
		t.Errorf("a write while no token grants write: %d, want 201 (open)", status)
	}

	mustWrite(t, c.configPath, base+"  - {name: ci, token_file: "+dir+"/missing, scopes: [read, write]}\n")
	if status, body := call(t, http.MethodPost, c.url+"/-/reload", "", ""); status != http.StatusInternalServerError || !strings.Contains(body, `api_tokens: token "ci": reading the token file`) {
		t.Errorf("reload with an unreadable token file: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodGet, list, "0ld", ""); status != http.StatusOK {
		t.Errorf("after the failed reload the running token answers %d, want 200", status)
	}

	mustWrite(t, c.configPath, base+"  - {name: ci, token_file: "+dir+"/new, scopes: [read, write]}\n")
	if status, body := call(t, http.MethodPost, c.url+"/-/reload", "", ""); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, body)
	}
	if status, _ := call(t, http.MethodGet, list, "0ld", ""); status != http.StatusUnauthorized {
		t.Errorf("the replaced token answers %d, want 401", status)
	}
	if status, _ := call(t, http.MethodPost, list, "", `{"target": "https://b.example/", "module": "http_2xx"}`); status != http.StatusUnauthorized {
		t.Errorf("a write without a token once a token grants write: %d, want 401", status)
	}
	if status, body := call(t, http.MethodPost, list, "n3w", `{"target": "https://b.example/", "module": "http_2xx"}`); status != http.StatusCreated {
		t.Errorf("a write with the new token: %d %s", status, body)
	}
}
