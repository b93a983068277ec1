package soak

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// locations are the exporters of the soak, one process each.
var locations = []string{"ams", "fra"}

func locationIndex(name string) int {
	for i, l := range locations {
		if l == name {
			return i
		}
	}
	return -1
}

// variant is one of the exporters' configurations the soak switches
// between. A and B share the steady and outage targets (same interval,
// so their slots must not move); rotating targets exist in one of them
// only, and flip targets change interval.
type variant string

const (
	variantEmpty variant = "empty" // modules only: the processes start without load
	variantA     variant = "A"
	variantB     variant = "B"
)

// group is one target group of a configuration.
type group struct {
	kind     string
	interval time.Duration
}

func (v variant) groups() []group {
	switch v {
	case variantA:
		return []group{{kindSteady, time.Second}, {kindOutage, time.Second}, {kindRotateA, time.Second}, {kindFlip, time.Second}}
	case variantB:
		return []group{{kindSteady, time.Second}, {kindOutage, time.Second}, {kindRotateB, 2 * time.Second}, {kindFlip, 2 * time.Second}}
	}
	return nil
}

// targets is how many targets v schedules, per exporter.
func (v variant) targets(sizes map[string]int) int {
	n := 0
	for _, g := range v.groups() {
		n += sizes[g.kind]
	}
	return n
}

// rate is v's checks per second, per exporter, retries aside.
func (v variant) rate(sizes map[string]int) float64 {
	r := 0.0
	for _, g := range v.groups() {
		r += float64(sizes[g.kind]) / g.interval.Seconds()
	}
	return r
}

// sizesFor splits n targets per exporter (configuration A) into the kinds:
// a few to fail, a tenth rotating, a tenth changing interval, the rest
// steady. Configuration B's rotating group is a fifth larger, so that the
// two schedule a different number of targets.
func sizesFor(n int) map[string]int {
	outage := max(5, n/40)
	rotate := max(5, n/10)
	flip := max(5, n/10)
	return map[string]int{
		kindSteady:  n - outage - rotate - flip,
		kindOutage:  outage,
		kindRotateA: rotate,
		kindRotateB: rotate + rotate/5,
		kindFlip:    flip,
	}
}

// exporterConfig renders location's configuration of variant v.
func exporterConfig(ts *targetServer, sizes map[string]int, location string, v variant) string {
	var b strings.Builder
	fmt.Fprintf(&b, `modules:
  http_2xx:
    prober: http
    timeout: 500ms
    http:
      preferred_ip_protocol: ip4
      headers:
        %s: %s
scheduler:
  retries: 1
  retry_interval: 100ms
  interval: 1s
  file_refresh_interval: 1h
`, locationHead, location)
	gs := v.groups()
	if len(gs) == 0 {
		return b.String()
	}
	b.WriteString("targets:\n")
	for _, g := range gs {
		fmt.Fprintf(&b, "  - module: http_2xx\n    interval: %s\n    labels: {group: %q}\n    targets:\n", g.interval, g.kind)
		for n := range sizes[g.kind] {
			fmt.Fprintf(&b, "      - %s\n", ts.url(g.kind, n))
		}
	}
	return b.String()
}

// coordinatorConfig renders the coordinator's configuration; its two
// variants differ in the health check interval, so that a reload changes
// something.
func coordinatorConfig(exporterAddrs []string, alternate bool) string {
	var b strings.Builder
	b.WriteString("locations:\n")
	for i, l := range locations {
		fmt.Fprintf(&b, "  - name: %s\n    url: http://%s\n", l, exporterAddrs[i])
	}
	health := time.Second
	if alternate {
		health = 2 * time.Second
	}
	fmt.Fprintf(&b, `confirmation:
  min_failing_locations: 2
  verify_timeout: 2s
  recovery_successes: 2
  reverify_interval: 1s
  # Outages recover as soon as the successes say so: the soak measures the
  # programs' load, not how long a recovery is held.
  recovery_hold: 0s
health_check_interval: %s
`, health)
	return b.String()
}

// writeAtomically replaces path's content in one rename, so that a
// process never reads half a file.
func writeAtomically(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
