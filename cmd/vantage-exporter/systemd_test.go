package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vantageprobe/vantage/internal/testbin"
)

// unitArgs returns the words of ARGS in an environment file of
// prometheus-blackbox-exporter.service, whose ExecStart passes $ARGS:
// systemd splits an unquoted $ARGS at whitespace.
func unitArgs(tb testing.TB, file string) []string {
	tb.Helper()
	unit, err := os.ReadFile("testdata/prometheus-blackbox-exporter.service")
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/prometheus-blackbox-exporter $ARGS") {
		tb.Fatal("the unit does not start blackbox_exporter with $ARGS")
	}
	env, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		if v, ok := strings.CutPrefix(line, "ARGS="); ok {
			return strings.Fields(strings.Trim(v, `"`))
		}
	}
	tb.Fatalf("%s sets no ARGS", file)
	return nil
}

// The flags of a blackbox_exporter systemd unit start vantage-exporter:
// Debian's, and one with every flag of blackbox_exporter v0.28. Only the
// configuration file (a copy of blackbox_exporter's blackbox.yml) and the
// listen address (a free loopback port) are replaced.
func TestBlackboxUnitFlagsStart(t *testing.T) {
	bin := testbin.Build(t, "./cmd/vantage-exporter")[0]
	config, err := filepath.Abs("../../config/testdata/blackbox/blackbox.yml")
	if err != nil {
		t.Fatal(err)
	}
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer target.Close()
	for _, tc := range []struct{ file, prefix string }{
		{"testdata/prometheus-blackbox-exporter", "/"},
		{"testdata/blackbox-exporter-all-flags", "/blackbox/"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			addr := testbin.FreeAddr(t)
			var args []string
			words := unitArgs(t, tc.file)
			for i := 0; i < len(words); i++ {
				w := words[i]
				switch {
				case w == "--config.file" && i+1 < len(words): // "--config.file path"
					args = append(args, w, config)
					i++
				case strings.HasPrefix(w, "--config.file="):
					args = append(args, "--config.file="+config)
				case strings.HasPrefix(w, "--web.listen-address"):
				default:
					args = append(args, w)
				}
			}
			args = append(args, "--web.listen-address="+addr)
			base := "http://" + addr + tc.prefix
			testbin.StartReady(t, "vantage-exporter", exec.Command(bin, args...), base+"-/ready")
			resp, err := http.Get(base + "probe?module=http_2xx&target=" + target.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "probe_success 1") {
				t.Errorf("probe with %v: %d %s", args, resp.StatusCode, body)
			}
		})
	}
}

func TestTimeoutOffsetFlag(t *testing.T) {
	for _, v := range []string{"0.5", "0", "1.25", "500ms"} {
		if code, _, errOut := runMain(t, "--timeout-offset="+v, "--config.check"); code != 0 {
			t.Errorf("--timeout-offset=%s: exit %d, %s", v, code, errOut)
		}
	}
	code, _, errOut := runMain(t, "--timeout-offset=half")
	if want := `--timeout-offset: "half" is neither seconds (0.5) nor a duration (500ms)`; code != 2 || !strings.Contains(errOut, want) {
		t.Errorf("bad --timeout-offset: exit %d, stderr %q, want 2 and %q", code, errOut, want)
	}
}
