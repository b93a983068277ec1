package config

import (
	"strings"
	"testing"
)

// FuzzTargetFile feeds arbitrary target files (vantage groups or file_sd
// entries, YAML or JSON) to the default configuration: never a panic,
// every error names the file, and every target accepted has a known
// module, an interval of at least 1s and a non-empty target.
func FuzzTargetFile(f *testing.F) {
	for _, seed := range []string{
		"- module: http_2xx\n  targets: [https://a.example]\n  labels: {team: web}\n",
		`[{"targets": ["https://a.example"], "labels": {"__param_module": "http_2xx", "__scrape_interval__": "30s", "failure_threshold": "3"}}]`,
		"- targets: [x]\n  labels: {__param_module: tcp_connect, __scrape_interval__: 1m}\n",
		"- module: http_2xx\n  interval: 500ms\n  targets: [a]\n",
		"- module: nope\n  targets: [a]\n",
		"{}", "[]", "- 1\n",
	} {
		f.Add([]byte(seed))
	}
	c := Default()
	const source = "targets.yml"
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := c.parseTargetFile(data, source)
		if err != nil {
			if !strings.HasPrefix(err.Error(), source+":") {
				t.Fatalf("error does not start with %q: %v", source+":", err)
			}
			return
		}
		for _, st := range ts {
			if _, ok := c.Modules[st.Module]; !ok || st.Interval < 1e9 || strings.TrimSpace(st.Target) == "" {
				t.Fatalf("accepted target %+v", st)
			}
		}
	})
}
