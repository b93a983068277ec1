package prober

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/internal/testbin"
	"github.com/vantageprobe/vantage/prober/result"
)

// websocketTestHandler upgrades every request and runs talk on the
// connection.
func websocketTestHandler(talk func(*websocket.Conn)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var up websocket.Upgrader
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return // the upgrader answered the error
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		talk(conn)
	})
}

// echoGreeting sends "incoming_test", expects "outgoing_test" and then
// answers "passed".
func echoGreeting(conn *websocket.Conn) {
	if conn.WriteMessage(websocket.TextMessage, []byte("incoming_test")) != nil {
		return
	}
	_, msg, err := conn.ReadMessage()
	if err != nil || string(msg) != "outgoing_test" {
		return
	}
	_ = conn.WriteMessage(websocket.TextMessage, []byte("passed"))
}

func websocketTestModule(edit func(*config.WebsocketProbe), steps ...config.QueryResponse) config.Module {
	m := config.DefaultModule
	m.Prober = "websocket"
	m.Websocket.QueryResponse = steps
	if edit != nil {
		edit(&m.Websocket)
	}
	return m
}

func wsURL(httpURL string) string {
	return "ws" + strings.TrimPrefix(httpURL, "http")
}

func TestWebsocketQueryResponse(t *testing.T) {
	srv := newHTTPTestServer(t, websocketTestHandler(echoGreeting))
	steps := func(last string) []config.QueryResponse {
		return []config.QueryResponse{
			{Expect: mustRegexp(t, "incoming_(.+)"), Send: "outgoing_${1}"},
			{Expect: mustRegexp(t, last)},
		}
	}
	r := runTestProbe(t, websocketTestModule(nil, steps("^passed")...), wsURL(srv.URL), 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	compareResultSeries(t, r, `
# HELP probe_websocket_connection_upgraded Indicates if the websocket connection was successfully upgraded
# TYPE probe_websocket_connection_upgraded gauge
probe_websocket_connection_upgraded 1
# HELP probe_websocket_failed_due_to_regex Indicates if probe failed due to regex
# TYPE probe_websocket_failed_due_to_regex gauge
probe_websocket_failed_due_to_regex 0
# HELP probe_websocket_status_code Response HTTP status code
# TYPE probe_websocket_status_code gauge
probe_websocket_status_code 101
`, "probe_websocket_connection_upgraded", "probe_websocket_failed_due_to_regex", "probe_websocket_status_code")

	r = runTestProbe(t, websocketTestModule(nil, steps("^someotherstring")...), wsURL(srv.URL), 2*time.Second)
	requireReason(t, r, result.ReasonExpectMismatch)
	if got := seriesOfResult(r)["probe_websocket_failed_due_to_regex"]; got != 1 {
		t.Errorf("probe_websocket_failed_due_to_regex = %v, want 1", got)
	}

	// Without query_response, the handshake alone decides.
	r = runTestProbe(t, websocketTestModule(nil), wsURL(srv.URL), 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	if _, ok := seriesOfResult(r)["probe_websocket_failed_due_to_regex"]; ok {
		t.Error("probe_websocket_failed_due_to_regex without query_response")
	}
}

func TestWebsocketHeadersAndTLS(t *testing.T) {
	cert := newValidHTTPTestCert(t)
	var mu sync.Mutex
	var seen http.Header
	srv := newHTTPTestTLSServer(t, cert, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		websocketTestHandler(func(*websocket.Conn) {}).ServeHTTP(w, r)
	}))
	target := "wss" + strings.TrimPrefix(srv.URL, "https")
	module := func(caFile string) config.Module {
		return websocketTestModule(func(w *config.WebsocketProbe) {
			w.HTTPClientConfig.BearerToken = "test_token"
			w.HTTPClientConfig.Headers = map[string]config.Strings{"x-test": {"one"}, "X-Multi": {"a", "b"}}
			w.HTTPClientConfig.TLSConfig = promconfig.TLSConfig{CAFile: caFile}
		})
	}
	r := runTestProbe(t, module(cert.caFile), target, 2*time.Second)
	requireReason(t, r, result.ReasonNone)
	mu.Lock()
	if seen.Get("Authorization") != "Bearer test_token" || seen.Get("X-Test") != "one" || strings.Join(seen.Values("X-Multi"), ",") != "a,b" {
		t.Errorf("handshake headers %v", seen)
	}
	mu.Unlock()
	if r.TLS != nil {
		t.Error("TLS series for the websocket prober, which blackbox_exporter does not export")
	}

	requireReason(t, runTestProbe(t, module(""), target, 2*time.Second), result.ReasonTLSError)

	basic := websocketTestModule(func(w *config.WebsocketProbe) {
		w.HTTPClientConfig.BasicAuth = &promconfig.BasicAuth{Username: "user", Password: "pass"}
		w.HTTPClientConfig.TLSConfig = promconfig.TLSConfig{CAFile: cert.caFile}
	})
	requireReason(t, runTestProbe(t, basic, target, 2*time.Second), result.ReasonNone)
	mu.Lock()
	if u, p, ok := (&http.Request{Header: seen}).BasicAuth(); !ok || u != "user" || p != "pass" {
		t.Errorf("basic auth %q %q %v", u, p, ok)
	}
	mu.Unlock()
}

func TestWebsocketFailures(t *testing.T) {
	refuse := newHTTPTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	r := runTestProbe(t, websocketTestModule(nil, config.QueryResponse{Expect: mustRegexp(t, "x")}), wsURL(refuse.URL), 2*time.Second)
	requireReason(t, r, result.ReasonStatusCode)
	got := seriesOfResult(r)
	if got["probe_websocket_status_code"] != 403 || got["probe_websocket_connection_upgraded"] != 0 {
		t.Errorf("series %v", got)
	}
	if _, ok := got["probe_websocket_failed_due_to_regex"]; ok {
		t.Error("probe_websocket_failed_due_to_regex before an upgrade")
	}

	silent := newHTTPTestServer(t, websocketTestHandler(func(c *websocket.Conn) { _, _, _ = c.ReadMessage() }))
	start := time.Now()
	r = runTestProbe(t, websocketTestModule(nil, config.QueryResponse{Expect: mustRegexp(t, "x")}), wsURL(silent.URL), 300*time.Millisecond)
	requireReason(t, r, result.ReasonTimeout)
	if time.Since(start) > 2*time.Second {
		t.Errorf("probe outlived its deadline: %v", time.Since(start))
	}

	requireReason(t, runTestProbe(t, websocketTestModule(nil), "http://127.0.0.1:1/", time.Second), result.ReasonInvalidTarget)
	requireReason(t, runTestProbe(t, websocketTestModule(nil), "ws://"+testbin.RefusedAddr(t)+"/", time.Second), result.ReasonConnectRefused)
}
