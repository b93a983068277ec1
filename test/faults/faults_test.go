// Package faults kills vantage's programs the hard way and checks what
// survives: the coordinator's incident log across SIGKILLs in the middle
// of its writes, and a clean exit on SIGTERM.
package faults

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// startCoordinator runs a vantage-coordinator and waits until it is ready.
func startCoordinator(t *testing.T, bin, config, storage, addr string) *testbin.Process {
	t.Helper()
	cmd := exec.Command(bin, "--config.file="+config, "--storage.path="+storage, "--web.listen-address="+addr, "--log.level=warn")
	return testbin.StartReady(t, "vantage-coordinator", cmd, "http://"+addr+"/-/ready")
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
	url := "http://" + addr
	acked := map[string]bool{}
	client := &http.Client{Timeout: 5 * time.Second}
	for round := range 5 {
		c := startCoordinator(t, bin, config, storage, addr)
		before := incidents(t, url)
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
					resp, err := client.Post(url+"/api/v1/reports", "application/json", strings.NewReader(failingBatch(location, run, i+1, target)))
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
		c.Kill()
		close(stop)
		wg.Wait()
		t.Logf("kill %d: %d incidents acknowledged so far", round+1, len(acked))
	}
	startCoordinator(t, bin, config, storage, addr)
	all := incidents(t, url)
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
	testbin.WaitFor(t, fmt.Sprintf("incident %d verified again after the restart", resumed.ID), 10*time.Second, func() error {
		var now incident
		for _, inc := range incidents(t, url) {
			if inc.ID == resumed.ID {
				now = inc
			}
		}
		if now.Rounds <= resumed.Rounds {
			return fmt.Errorf("rounds %d, %d before the restart", now.Rounds, resumed.Rounds)
		}
		return nil
	})
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
	url := "http://" + addr
	c := startCoordinator(t, bin, config, storage, addr)
	resp, err := http.Post(url+"/api/v1/reports", "application/json", strings.NewReader(failingBatch("ams", "run-term", 1, "https://term.example")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Exit status 0 within 10s of SIGTERM.
	if err := c.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	startCoordinator(t, bin, config, storage, addr)
	if incs := incidents(t, url); len(incs) != 1 || incs[0].Target != "https://term.example" {
		t.Errorf("after SIGTERM and restart: %+v, want the one incident", incs)
	}
}
