package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// An Alertmanager notification is answered 200 and logged, one line per
// alert with its receiver path, status, name, severity, labels and links.
func TestLogsNotifications(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var logs testbin.Output
	addr := make(chan net.Addr, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"--web.listen-address=127.0.0.1:0"}, &logs, func(a net.Addr) { addr <- a })
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a.String()
	case code := <-exited:
		t.Fatalf("exited with %d before listening:\n%s", code, logs.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not listening after 10s")
	}
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("exit code %d", code)
		}
	}()

	payload := `{"version":"4","receiver":"pager","status":"firing","alerts":[
	  {"status":"firing","labels":{"alertname":"TargetConfirmedDown","severity":"critical","target":"http://demotarget:8080/","module":"http_demo","team":"demo"},
	   "annotations":{"summary":"http://demotarget:8080/ (http_demo) is down","runbook_url":"https://example/rb","dashboard_url":"http://localhost:3000/d/vantage-target"},
	   "startsAt":"2026-12-03T12:00:00Z"}]}`
	resp, err := http.Post(base+"/pager", "application/json", strings.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("notification answered %s", resp.Status)
	}
	line := ""
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "Notification") {
			line = l
		}
	}
	for _, want := range []string{"path=pager", "receiver=pager", "status=firing", "alertname=TargetConfirmedDown", "severity=critical",
		`team=\"demo\"`, "dashboard_url=http://localhost:3000/d/vantage-target", "runbook_url=https://example/rb"} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %s", line, want)
		}
	}

	resp, err = http.Post(base+"/ticket", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed notification answered %s, want 400", resp.Status)
	}
	resp, err = http.Get(base + "/-/healthy")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/healthy answered %s", resp.Status)
	}
}
