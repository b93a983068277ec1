package faults

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	exporters := map[string]*testbin.Process{}
	var locs strings.Builder
	for _, name := range []string{"ams", "fra", "sfo"} {
		addr := testbin.FreeAddr(t)
		cmd := exec.Command(exporterBin, "--config.file="+exporterConfig, "--location="+name, "--coordinator.url=http://"+coordAddr, "--web.listen-address="+addr, "--log.level=warn")
		exporters[name] = testbin.Start(t, "vantage-exporter "+name, cmd)
		fmt.Fprintf(&locs, "  - {name: %s, url: \"http://%s\"}\n", name, addr)
	}
	config := filepath.Join(dir, "coordinator.yml")
	if err := os.WriteFile(config, []byte("locations:\n"+locs.String()+"confirmation: {verify_timeout: 2s, reverify_interval: 1s}\nhealth_check_interval: 1s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startCoordinator(t, coordinatorBin, config, filepath.Join(dir, "data"), coordAddr)
	url := "http://" + coordAddr

	metric := func(series string) string {
		resp, err := http.Get(url + "/metrics")
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
	// want is a condition: series has the value v.
	want := func(series, v string) func() error {
		return func() error {
			if got := metric(series); got != v {
				return fmt.Errorf("%s is %q, want %s", series, got, v)
			}
			return nil
		}
	}
	testbin.WaitFor(t, "every location healthy", 20*time.Second, func() error {
		return errors.Join(want(`vantage_location_healthy{location="ams"}`, "1")(), want(`vantage_location_healthy{location="fra"}`, "1")(), want(`vantage_location_healthy{location="sfo"}`, "1")())
	})
	exporters["sfo"].Kill()
	testbin.WaitFor(t, "sfo unhealthy", 20*time.Second, want(`vantage_location_healthy{location="sfo"}`, "0"))

	down.Store(true)
	confirmed := fmt.Sprintf(`vantage_target_confirmed_down{module="http_2xx",target=%q}`, target.URL)
	testbin.WaitFor(t, "the outage confirmed by ams and fra", 20*time.Second, want(confirmed, "1"))
	resp, err := http.Get(url + "/api/v1/incidents?state=open")
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
