package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/internal/testbin"
)

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yml")
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(good, []byte("modules:\n  a:\n    prober: tcp\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("modules:\n  a:\n    prober: tcp\n    tcp:\n      colour: blue\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runMain(t, "--config.check"); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("embedded default: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := runMain(t, "--config.file="+good, "--config.check"); code != 0 {
		t.Errorf("good file: exit %d, %q", code, errOut)
	}
	code, _, errOut := runMain(t, "--config.file="+bad, "--config.check")
	if want := bad + `:5: modules.a.tcp: unknown key "colour"`; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("bad file: exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

func TestProbeCommand(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer target.Close()
	code, out, errOut := runMain(t, "probe", "--module=http_2xx", target.URL)
	if code != 0 {
		t.Fatalf("probe of a healthy target exited %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{"result    success", "PHASE", "connect", "processing", "probe_http_status_code", "200"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	refused := testbin.FreeAddr(t)
	code, out, _ = runMain(t, "probe", "--module", "tcp_connect", refused)
	if code != 1 || !strings.Contains(out, "reason    connect_refused") {
		t.Errorf("probe of a refused port: exit %d, output:\n%s", code, out)
	}

	code, _, errOut = runMain(t, "probe", "--module", "nope", refused)
	if code != 1 || !strings.Contains(errOut, `unknown module "nope"`) {
		t.Errorf("unknown module: exit %d, stderr %q", code, errOut)
	}
}

func TestBadFlags(t *testing.T) {
	if code, _, errOut := runMain(t, "--no-such-flag"); code != 2 || !strings.Contains(errOut, "no-such-flag") {
		t.Errorf("unknown flag: exit %d, %q", code, errOut)
	}
}

func TestTracingFlags(t *testing.T) {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Setenv(k, "")
	}
	code, _, errOut := runMain(t, "--web.listen-address=127.0.0.1:0", "--tracing.endpoint=http://127.0.0.1:4318", "--tracing.sample-ratio=2")
	if want := "--tracing.sample-ratio must be between 0 and 1, got 2"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("bad sample ratio: exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
	code, _, errOut = runMain(t, "--web.listen-address=127.0.0.1:0", "--tracing.endpoint=127.0.0.1:4317", "--tracing.protocol=thrift")
	if want := `--tracing.protocol \"thrift\" is not supported; want grpc or http/protobuf`; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("bad protocol: exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

func TestCoordinatorURLNeedsLocation(t *testing.T) {
	code, _, errOut := runMain(t, "--web.listen-address=127.0.0.1:0", "--coordinator.url=http://127.0.0.1:9716")
	if want := "--coordinator.url needs --location"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("--coordinator.url without --location: exit %d, stderr %q, want 1 and %q", code, errOut, want)
	}
}

func TestClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster.listen-address=127.0.0.1:0"}, "--cluster.listen-address needs --location"},
		{[]string{"--location=ams", "--cluster.listen-address=127.0.0.1"}, `cluster address \"127.0.0.1\" is not host:port`},
		{[]string{"--location=ams", "--cluster.listen-address=127.0.0.1:0", "--cluster.peer=peer"}, `cluster address \"peer\" is not host:port`},
		{[]string{"--location=ams", "--cluster.listen-address=127.0.0.1:0", "--cluster.probe-interval=0s"}, "--cluster.probe-interval must be positive, got 0s"},
	} {
		code, _, errOut := runMain(t, append([]string{"--web.listen-address=127.0.0.1:0"}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
}
