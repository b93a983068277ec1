package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestExporterSIGTERM: with a report queued for a coordinator that has
// been refusing it and a check hanging on a target, SIGTERM makes the
// exporter stop checking, cancel the hanging check, deliver the queued
// report in its last flush, and exit 0 within the grace periods.
func TestExporterSIGTERM(t *testing.T) {
	bin := testbin.Build(t, "./cmd/vantage-exporter")[0]

	var (
		accept   atomic.Bool
		attempts atomic.Int32
		mu       sync.Mutex
		got      []string
	)
	coord := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		if !accept.Load() {
			http.Error(w, "not now", http.StatusServiceUnavailable)
			return
		}
		var b struct {
			Reports []struct {
				Target, State string
			} `json:"reports"`
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, rep := range b.Reports {
			got = append(got, rep.State+" "+rep.Target)
		}
		mu.Unlock()
		fmt.Fprintln(w, `{"accepted": 1}`)
	}))
	defer coord.Close()

	hangStarted := make(chan struct{}, 16)
	hangCancelled := make(chan time.Time, 16)
	release := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hang" {
			hangStarted <- struct{}{}
			select {
			case <-r.Context().Done():
				hangCancelled <- time.Now()
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer target.Close()
	defer close(release)

	dir := t.TempDir()
	config := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`modules:
  http_fail:
    prober: http
    timeout: 1s
  http_hang:
    prober: http
    timeout: 20s
scheduler: {retries: 0}
targets:
  - module: http_fail
    interval: 1s
    targets: [%[1]s/fail]
  - module: http_hang
    interval: 20s
    targets: [%[1]s/hang]
`, target.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+config, "--location=ams", "--coordinator.url="+coord.URL, "--web.listen-address="+testbin.FreeAddr(t))
	p := testbin.Start(t, "vantage-exporter", cmd)

	// The failure report has been refused at least twice: it is queued,
	// waiting for a retry after a backoff.
	testbin.WaitFor(t, "two delivery attempts", 15*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("the exporter exited (%v)", p.Err())
		}
		if n := attempts.Load(); n < 2 {
			return fmt.Errorf("%d attempts", n)
		}
		return nil
	})
	select {
	case <-hangStarted:
	case <-p.Done():
		t.Fatalf("the exporter exited (%v)", p.Err())
	case <-time.After(25 * time.Second):
		t.Fatal("the /hang check did not start within its 20s interval")
	}
	accept.Store(true)
	sent := time.Now()
	// Exit status 0 within 15s of SIGTERM.
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(sent)
	t.Logf("exited 0 %s after SIGTERM", took.Round(time.Millisecond))
	// The server notices the closed connection shortly after the exit.
	select {
	case at := <-hangCancelled:
		if at.Sub(sent) > 3*time.Second { // its own timeout is 20s
			t.Errorf("the hanging check was cancelled %s after SIGTERM", at.Sub(sent))
		}
	case <-time.After(2 * time.Second):
		t.Error("the hanging check's request was still open 2s after the exporter exited")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || got[0] != "failing "+target.URL+"/fail" {
		t.Errorf("reports delivered = %v, want the queued failure of /fail", got)
	}
}
