package confirm

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/coordinator"
	"github.com/vantageprobe/vantage/coordinator/confirm"
	"github.com/vantageprobe/vantage/exporter"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// TestMutualAuthentication runs two exporters and a coordinator that
// authenticate each other with bearer tokens: reports carry the
// coordinator's token (--coordinator.http-config.file), check requests
// the exporters' (http_client in the coordinator's configuration). An
// outage is still confirmed, and requests without the tokens are refused.
func TestMutualAuthentication(t *testing.T) {
	dir := t.TempDir()
	target := startTargetServer(t)
	target.set("/auth", "*")
	coordToken, exporterToken := filepath.Join(dir, "coordinator.token"), filepath.Join(dir, "exporter.token")
	writeFile(t, coordToken, "reports-secret\n")
	writeFile(t, exporterToken, "checks-secret\n")
	httpConfig := filepath.Join(dir, "reporter-http.yml")
	writeFile(t, httpConfig, "authorization:\n  credentials_file: "+coordToken+"\n")
	coordAddr := testbin.FreeAddr(t)

	var locs strings.Builder
	exporters := map[string]*testbin.Server{}
	for _, l := range locations[:2] {
		path := filepath.Join(dir, l.name+".yml")
		writeFile(t, path, fmt.Sprintf("modules:\n  http_2xx:\n    prober: http\n    timeout: 1s\n    http: {preferred_ip_protocol: ip4, source_ip_address: %s}\nscheduler: {interval: 1s, retries: 0}\ntargets:\n  - module: http_2xx\n    targets: [%s/auth]\n", l.source, target.url))
		exporters[l.name] = testbin.Serve(t, "exporter "+l.name, func(ctx context.Context, started func([]net.Addr)) error {
			opts := exporter.DefaultOptions()
			opts.ConfigFile, opts.Location = path, l.name
			opts.CoordinatorURLs = []string{"http://" + coordAddr}
			opts.CoordinatorHTTPConfigFile, opts.APITokenFile = httpConfig, exporterToken
			opts.WebListenAddresses, opts.Started = &[]string{"127.0.0.1:0"}, started
			return exporter.Run(ctx, opts)
		})
		fmt.Fprintf(&locs, "  - {name: %s, url: %q}\n", l.name, exporters[l.name].URL)
	}
	configPath := filepath.Join(dir, "coordinator.yml")
	writeFile(t, configPath, "locations:\n"+locs.String()+"confirmation: {min_failing_locations: 2, verify_timeout: 2s, reverify_interval: 1s}\nhealth_check_interval: 1s\nhttp_client:\n  authorization:\n    credentials_file: "+exporterToken+"\n")
	s := &stack{target: target, exporters: exporters, coordAddr: coordAddr, configPath: configPath, storage: filepath.Join(dir, "data")}
	s.coordinator = testbin.Serve(t, "coordinator", func(ctx context.Context, started func([]net.Addr)) error {
		opts := coordinator.DefaultOptions()
		opts.ConfigFile, opts.StoragePath, opts.APITokenFile = configPath, s.storage, coordToken
		opts.WebListenAddresses, opts.Started = &[]string{coordAddr}, started
		return coordinator.Run(ctx, opts)
	})

	testbin.WaitFor(t, "/auth confirmed down through authenticated reports and checks", waitLimit, s.down(t, target.url+"/auth"))
	incs := s.incidents(t, target.url+"/auth")
	for _, e := range incs[0].Evidence {
		if e.Result == confirm.OutcomeUnknown {
			t.Errorf("evidence of %s is unknown (%s): a check request was refused", e.Location, e.Error)
		}
	}

	// Without the tokens: refused, and counted.
	resp, err := http.Post(exporters["ams"].URL+"/api/v1/check", "application/json", strings.NewReader(`{"target": "`+target.url+`/", "module": "http_2xx"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a check request without the token: %d, want 401", resp.StatusCode)
	}
	resp, err = http.Post(s.coordinator.URL+"/api/v1/reports", "application/json", strings.NewReader(`{"location": "ams", "run": "x", "reports": []}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a report batch without the token: %d, want 401", resp.StatusCode)
	}
	if got := s.sample(t, "vantage_coordinator_api_requests_unauthorized_total", nil); got != "1" {
		t.Errorf("coordinator's unauthorized count = %q, want 1", got)
	}
	resp, err = http.Get(exporters["ams"].URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The exporter labels its own series with its --location.
	if !strings.Contains(readAll(t, resp), `vantage_exporter_api_requests_unauthorized_total{location="ams"} 1`) {
		t.Error("the exporter did not count the refused check request")
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
