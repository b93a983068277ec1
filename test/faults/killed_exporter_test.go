package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestKilledExporterIsUnknownNotDown runs three exporter processes and a
// coordinator process, SIGKILLs one exporter, then takes the target down:
// the other two confirm the outage, the killed location is unhealthy and
// counts as unknown in the incident's evidence, never as a failure.
func TestKilledExporterIsUnknownNotDown(t *testing.T) {
	exporterBin, coordinatorBin := testbin.Build(t, "./cmd/vantage-exporter")[0], testbin.Build(t, "./cmd/vantage-coordinator")[0]
	var down atomic.Bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer target.Close()

	dir := t.TempDir()
	coordAddr := testbin.FreeAddr(t)
	exporterConfig := filepath.Join(dir, "exporter.yml")
	if err := os.WriteFile(exporterConfig, []byte(fmt.Sprintf("modules:\n  http_2xx:\n    prober: http\n    timeout: 1s\nscheduler: {interval: 1s, retries: 0}\ntargets:\n  - module: http_2xx\n    targets: [%s]\n", target.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	exporters := map[string]*exec.Cmd{}
	var locs strings.Builder
	for _, name := range []string{"ams", "fra", "sfo"} {
		addr := testbin.FreeAddr(t)
		cmd := exec.Command(exporterBin, "--config.file="+exporterConfig, "--location="+name, "--coordinator.url=http://"+coordAddr, "--web.listen-address="+addr, "--log.level=warn")
		cmd.Stderr = &bytes.Buffer{}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		exporters[name] = cmd
		fmt.Fprintf(&locs, "  - {name: %s, url: \"http://%s\"}\n", name, addr)
	}
	config := filepath.Join(dir, "coordinator.yml")
	if err := os.WriteFile(config, []byte("locations:\n"+locs.String()+"confirmation: {verify_timeout: 2s, reverify_interval: 1s}\nhealth_check_interval: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startCoordinator(t, coordinatorBin, config, filepath.Join(dir, "data"), coordAddr)

	metric := func(series string) string {
		resp, err := http.Get(c.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok {
				return v
			}
		}
		return ""
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s\n%s", what, c.stderr)
			}
		}
	}
	wait("every location healthy", func() bool {
		return metric(`vantage_location_healthy{location="ams"}`) == "1" && metric(`vantage_location_healthy{location="fra"}`) == "1" && metric(`vantage_location_healthy{location="sfo"}`) == "1"
	})
	if err := exporters["sfo"].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = exporters["sfo"].Wait()
	wait("sfo unhealthy", func() bool { return metric(`vantage_location_healthy{location="sfo"}`) == "0" })

	down.Store(true)
	confirmed := fmt.Sprintf(`vantage_target_confirmed_down{module="http_2xx",target=%q}`, target.URL)
	wait("the outage confirmed by ams and fra", func() bool { return metric(confirmed) == "1" })
	resp, err := http.Get(c.url + "/api/v1/incidents?state=open")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var incs []struct {
		Evidence []struct {
			Location, Result, Error string
		} `json:"evidence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&incs); err != nil || len(incs) != 1 {
		t.Fatalf("open incidents: %v, %+v", err, incs)
	}
	asked := false
	for _, e := range incs[0].Evidence {
		if e.Location == "sfo" {
			asked = true
			if e.Result != "unknown" {
				t.Errorf("the killed location's evidence is %s (%s), want unknown", e.Result, e.Error)
			}
		}
	}
	if !asked {
		t.Errorf("the incident has no evidence from the killed location: %+v", incs[0].Evidence)
	}
	if got := metric(fmt.Sprintf(`vantage_target_location_success{location="sfo",module="http_2xx",target=%q}`, target.URL)); got == "0" {
		t.Error("the killed location counts as failing")
	}
}
