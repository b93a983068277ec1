package compat

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vantageprobe/vantage/exporter"
	"github.com/vantageprobe/vantage/internal/testbin"
)

// blackboxBinary is where Debian's prometheus-blackbox-exporter package
// installs the reference implementation.
const blackboxBinary = "/usr/bin/prometheus-blackbox-exporter"

const (
	// scrapeTimeout is sent as Prometheus' scrape timeout header, so both
	// exporters bound each probe (modules also set timeout: 3s).
	scrapeTimeout = "5"
	// probeClientTimeout bounds one /probe request of the test.
	probeClientTimeout = 10 * time.Second
	// healthyWithin bounds blackbox_exporter's start-up.
	healthyWithin = 10 * time.Second
)

// renderConfig renders testdata/blackbox.yml into dir with the generated CA.
func renderConfig(t *testing.T, dir string, tg *targets) string {
	t.Helper()
	tmpl, err := template.New("blackbox.yml").Option("missingkey=error").ParseFiles(filepath.Join("testdata", "blackbox.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, struct{ CAFile, ProxyURL string }{tg.caFile, tg.proxy}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startBlackbox runs Debian's blackbox_exporter on a free loopback port with
// configFile and returns its base URL once /-/healthy answers. It is killed
// at cleanup. A missing binary fails the test: the comparison is the point.
func startBlackbox(t *testing.T, configFile string) string {
	t.Helper()
	if _, err := os.Stat(blackboxBinary); err != nil {
		t.Fatalf("%s is missing (%v): the compatibility test needs Debian's blackbox_exporter; "+
			"install the Debian package prometheus-blackbox-exporter (apt-get install prometheus-blackbox-exporter)",
			blackboxBinary, err)
	}
	// The free port is found by binding and releasing it, so another process
	// may take it first; try a few ports before giving up.
	var lastErr error
	for range 3 {
		base, err := tryStartBlackbox(t, configFile)
		if err == nil {
			return base
		}
		lastErr = err
	}
	t.Fatalf("blackbox_exporter did not start: %v", lastErr)
	return ""
}

func tryStartBlackbox(t *testing.T, configFile string) (string, error) {
	addr := testbin.FreeAddr(t)
	p := testbin.Start(t, "blackbox_exporter", exec.Command(blackboxBinary, "--config.file="+configFile, "--web.listen-address="+addr))
	base := "http://" + addr
	if err := p.WaitReady(base+"/-/healthy", healthyWithin); err != nil {
		p.Kill()
		return "", err
	}
	return base, nil
}

// startVantage runs vantage-exporter in-process with configFile and returns
// its base URL.
func startVantage(t *testing.T, configFile string) string {
	t.Helper()
	e, err := exporter.New(exporter.Options{
		ConfigFile:    configFile,
		FlagConfig:    web.FlagConfig{WebListenAddresses: &[]string{"127.0.0.1:0"}},
		TimeoutOffset: 500 * time.Millisecond,
		HistoryLimit:  10,
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("vantage does not load the shared config: %v", err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// probeResponse is one /probe answer, raw and parsed.
type probeResponse struct {
	raw      string
	families map[string]*dto.MetricFamily
}

// probe asks the exporter at base to probe target with module and parses
// the answer in the Prometheus text format.
func probe(ctx context.Context, base, module, target string, debug bool) (probeResponse, error) {
	q := url.Values{"module": {module}, "target": {target}}
	if debug {
		q.Set("debug", "true")
	}
	ctx, cancel := context.WithTimeout(ctx, probeClientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/probe?"+q.Encode(), nil)
	if err != nil {
		return probeResponse{}, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", scrapeTimeout)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return probeResponse{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return probeResponse{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return probeResponse{}, fmt.Errorf("/probe answered %s: %s", resp.Status, body)
	}
	pr := probeResponse{raw: string(body)}
	if debug {
		return pr, nil
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	pr.families, err = parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return probeResponse{}, fmt.Errorf("parsing /probe answer: %w\n%s", err, body)
	}
	return pr, nil
}
