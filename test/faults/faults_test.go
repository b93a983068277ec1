// Package faults kills vantage's programs the hard way and checks what
// survives: the coordinator's incident log across SIGKILLs in the middle
// of its writes, and a clean exit on SIGTERM.
package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// coordinator is a vantage-coordinator process.
type coordinator struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	url    string
	done   chan error
}

func startCoordinator(t *testing.T, bin, config, storage, addr string) *coordinator {
	t.Helper()
	c := &coordinator{stderr: &bytes.Buffer{}, url: "http://" + addr, done: make(chan error, 1)}
	c.cmd = exec.Command(bin, "--config.file="+config, "--storage.path="+storage, "--web.listen-address="+addr, "--log.level=warn")
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(c.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			return c
		}
		select {
		case err := <-c.done:
			c.done <- err
			t.Fatalf("coordinator exited at start: %v\n%s", err, c.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator not ready within 10s\n%s", c.stderr)
		}
	}
}

// writeConfig lists three locations nobody listens on: every verification
// round ends unknown, so incidents stay open and keep being rewritten.
func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "coordinator.yml")
	var b strings.Builder
	b.WriteString("locations:\n")
	for _, name := range []string{"ams", "fra", "sfo"} {
		fmt.Fprintf(&b, "  - {name: %s, url: \"http://%s\"}\n", name, testbin.FreeAddr(t))
	}
	b.WriteString("confirmation: {verify_timeout: 1s, reverify_interval: 1s}\nhealth_check_interval: 1s\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func failingBatch(location, run string, seq int, target string) string {
	return fmt.Sprintf(`{"location": %q, "run": %q, "reports": [{"seq": %d, "target": %q, "module": "http_2xx", "state": "failing",
  "time": %q, "attempts": 1, "result": {"prober": "http", "success": false, "reason": "connect_refused"}}]}`,
		location, run, seq, target, time.Now().UTC().Format(time.RFC3339Nano))
}

type incident struct {
	ID     uint64 `json:"id"`
	Target string `json:"target"`
	State  string `json:"state"`
	Rounds int    `json:"verification_rounds"`
}

func incidents(t *testing.T, url string) []incident {
	t.Helper()
	resp, err := http.Get(url + "/api/v1/incidents?state=all&limit=100000")
	if err != nil {
		t.Fatalf("listing incidents: %v", err)
	}
	defer resp.Body.Close()
	var out []incident
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decoding incidents: %v", err)
	}
	return out
}

// TestKilledCoordinatorLosesNoIncident posts failure reports as fast as it
// can, each opening an incident, and SIGKILLs the coordinator in the
// middle, five times. Every report the coordinator acknowledged must have
// its incident after the restart, the log must open every time, and
// incident IDs must never be reused.
func TestKilledCoordinatorLosesNoIncident(t *testing.T) {
	bin := testbin.Build(t, "./cmd/vantage-coordinator")[0]
	dir := t.TempDir()
	config, storage, addr := writeConfig(t, dir), filepath.Join(dir, "data"), testbin.FreeAddr(t)
	acked := map[string]bool{}
	client := &http.Client{Timeout: 5 * time.Second}
	for round := range 5 {
		c := startCoordinator(t, bin, config, storage, addr)
		before := incidents(t, c.url)
		for _, inc := range before {
			delete(acked, inc.Target)
		}
		if len(acked) > 0 {
			t.Fatalf("after kill %d: %d acknowledged reports have no incident, e.g. %v", round, len(acked), firstKey(acked))
		}
		seen := map[uint64]bool{}
		for _, inc := range before {
			if seen[inc.ID] {
				t.Fatalf("incident ID %d used twice", inc.ID)
			}
			seen[inc.ID] = true
			acked[inc.Target] = true // must survive the next kills too
		}

		// Each location posts its reports in order, as an exporter does,
		// until the kill.
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w, location := range []string{"ams", "fra", "sfo"} {
			wg.Go(func() {
				run := fmt.Sprintf("run-%d", round)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					target := fmt.Sprintf("https://t%d-%d-%d.example", round, w, i)
					resp, err := client.Post(c.url+"/api/v1/reports", "application/json", strings.NewReader(failingBatch(location, run, i+1, target)))
					if err != nil {
						continue // the kill
					}
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						mu.Lock()
						acked[target] = true
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(300+150*round) * time.Millisecond)
		if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-c.done
		c.done <- nil
		close(stop)
		wg.Wait()
		t.Logf("kill %d: %d incidents acknowledged so far", round+1, len(acked))
	}
	c := startCoordinator(t, bin, config, storage, addr)
	all := incidents(t, c.url)
	for _, inc := range all {
		delete(acked, inc.Target)
	}
	if len(acked) > 0 {
		t.Fatalf("after the last kill: %d acknowledged reports have no incident, e.g. %v", len(acked), firstKey(acked))
	}
	if len(all) < 50 {
		t.Errorf("only %d incidents were written across five runs; the test did not exercise the log", len(all))
	}
	// The open incidents are resumed: verified again after the restart.
	var resumed incident
	for _, inc := range all {
		if inc.State != "" {
			resumed = inc
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var now incident
		for _, inc := range incidents(t, c.url) {
			if inc.ID == resumed.ID {
				now = inc
			}
		}
		if now.Rounds > resumed.Rounds {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident %d was not verified again after the restart (rounds %d)", resumed.ID, now.Rounds)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}

// TestCoordinatorExitsCleanlyOnSIGTERM: SIGTERM ends the coordinator with
// exit status 0 and its log committed, within the shutdown grace period.
func TestCoordinatorExitsCleanlyOnSIGTERM(t *testing.T) {
	bin := testbin.Build(t, "./cmd/vantage-coordinator")[0]
	dir := t.TempDir()
	config, storage, addr := writeConfig(t, dir), filepath.Join(dir, "data"), testbin.FreeAddr(t)
	c := startCoordinator(t, bin, config, storage, addr)
	resp, err := http.Post(c.url+"/api/v1/reports", "application/json", strings.NewReader(failingBatch("ams", "run-term", 1, "https://term.example")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.stderr)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("coordinator still running 10s after SIGTERM\n%s", c.stderr)
	}
	c = startCoordinator(t, bin, config, storage, addr)
	if incs := incidents(t, c.url); len(incs) != 1 || incs[0].Target != "https://term.example" {
		t.Errorf("after SIGTERM and restart: %+v, want the one incident", incs)
	}
}
