package collector

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A target's series carry its configured labels; targets without labels
// render beside them in the same families.
func TestCoordinatorRendersStatesAndHealth(t *testing.T) {
	down := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	c := NewCoordinator([]string{"up", "seems_down", "down", "unknown"},
		func() []TargetState {
			return []TargetState{
				{Target: "https://a.example", Module: "http_2xx", State: "down", DownSince: down,
					Labels:    []Label{{Name: "env", Value: "prod"}, {Name: "team", Value: "web"}},
					Locations: []LocationVerdict{{Location: "ams", Success: false}, {Location: "fra", Success: true}}},
				{Target: "https://b.example", Module: "http_2xx", State: "up"},
			}
		},
		func() []LocationHealth {
			return []LocationHealth{{Location: "ams", Healthy: true}, {Location: "sfo", Healthy: false}}
		})
	want := `
# HELP vantage_location_healthy Whether the location's exporter answers and its connectivity canary passes; while 0 its verdicts count as unknown.
# TYPE vantage_location_healthy gauge
vantage_location_healthy{location="ams"} 1
vantage_location_healthy{location="sfo"} 0
# HELP vantage_target_confirmed_down 1 while enough locations agree the target is down.
# TYPE vantage_target_confirmed_down gauge
vantage_target_confirmed_down{env="prod",module="http_2xx",target="https://a.example",team="web"} 1
vantage_target_confirmed_down{module="http_2xx",target="https://b.example"} 0
# HELP vantage_target_down_since_timestamp_seconds Start of the target's confirmed outage (its first failed check), while it lasts.
# TYPE vantage_target_down_since_timestamp_seconds gauge
vantage_target_down_since_timestamp_seconds{env="prod",module="http_2xx",target="https://a.example",team="web"} 1.7954352e+09
# HELP vantage_target_location_success Latest verdict of each location about the target: 1 success, 0 failure; absent while the location cannot tell.
# TYPE vantage_target_location_success gauge
vantage_target_location_success{env="prod",location="ams",module="http_2xx",target="https://a.example",team="web"} 0
vantage_target_location_success{env="prod",location="fra",module="http_2xx",target="https://a.example",team="web"} 1
# HELP vantage_target_state State of each target at the coordinator, one-hot: up, seems_down (a location reported a failure; the others are being asked), down (confirmed by enough locations), unknown (too few locations could tell).
# TYPE vantage_target_state gauge
vantage_target_state{env="prod",module="http_2xx",state="down",target="https://a.example",team="web"} 1
vantage_target_state{env="prod",module="http_2xx",state="seems_down",target="https://a.example",team="web"} 0
vantage_target_state{env="prod",module="http_2xx",state="unknown",target="https://a.example",team="web"} 0
vantage_target_state{env="prod",module="http_2xx",state="up",target="https://a.example",team="web"} 0
vantage_target_state{module="http_2xx",state="down",target="https://b.example"} 0
vantage_target_state{module="http_2xx",state="seems_down",target="https://b.example"} 0
vantage_target_state{module="http_2xx",state="unknown",target="https://b.example"} 0
vantage_target_state{module="http_2xx",state="up",target="https://b.example"} 1
`
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if err := testutil.GatherAndCompare(prometheus.Gatherers{reg, c.Gatherer()}, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// The text carries the labels sorted by name, as client_golang writes
	// them, and the gzip stream holds the same text.
	var plain bytes.Buffer
	if _, err := c.WriteFormat(&plain, FormatText); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`vantage_target_state{env="prod",module="http_2xx",state="down",target="https://a.example",team="web"} 1` + "\n",
		`vantage_target_location_success{env="prod",location="fra",module="http_2xx",target="https://a.example",team="web"} 1` + "\n",
		`vantage_target_confirmed_down{module="http_2xx",target="https://b.example"} 0` + "\n",
	} {
		if !strings.Contains(plain.String(), line) {
			t.Errorf("text lacks %q:\n%s", line, plain.String())
		}
	}
	var gz bytes.Buffer
	if err := c.WriteGzipFormat(&gz, 2, FormatText); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&gz)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if string(unzipped) != plain.String() {
		t.Errorf("gzip stream differs from the text:\n%s\nwant\n%s", unzipped, plain.String())
	}
}

// A compressed scrape keeps the members of chunks whose targets did not
// change, and compresses again those that did.
func TestCoordinatorGzipFollowsChanges(t *testing.T) {
	targets := make([]TargetState, 2*gzipChunk+10)
	for i := range targets {
		targets[i] = TargetState{Target: fmt.Sprintf("https://t%05d.example", i), Module: "http_2xx", State: "up",
			Locations: []LocationVerdict{{Location: "ams", Success: true}}}
	}
	c := NewCoordinator([]string{"up", "down"}, func() []TargetState { return slices.Clone(targets) }, func() []LocationHealth { return nil })
	check := func(when string) {
		t.Helper()
		var plain, gz bytes.Buffer
		if _, err := c.WriteFormat(&plain, FormatText); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteGzipFormat(&gz, 2, FormatText); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&gz)
		if err != nil {
			t.Fatal(err)
		}
		unzipped, _ := io.ReadAll(zr)
		if string(unzipped) != plain.String() {
			t.Fatalf("%s: the gzip stream differs from the text (%d vs %d bytes)", when, len(unzipped), plain.Len())
		}
	}
	check("first scrape")
	kept := c.gz.cache.chunks[0].members[0]
	targets[gzipChunk+1].State = "down"
	targets[gzipChunk+2].DownSince = time.Unix(1e9, 0) // a new family
	check("a target of the second chunk changed")
	targets[len(targets)-1].Locations = []LocationVerdict{{Location: "ams", Success: false}}
	check("a location's verdict changed")
	if &c.gz.cache.chunks[0].members[0][0] == &kept[0] {
		t.Error("the first chunk was not compressed again though a family was added")
	}
	kept = c.gz.cache.chunks[0].members[0]
	check("nothing changed")
	if &c.gz.cache.chunks[0].members[0][0] != &kept[0] {
		t.Error("an unchanged chunk was compressed again")
	}
}

// Without targets, no target family is written, not even its header.
func TestCoordinatorWithoutTargetsWritesNothing(t *testing.T) {
	c := NewCoordinator([]string{"up"}, func() []TargetState { return nil }, func() []LocationHealth { return nil })
	var b bytes.Buffer
	if _, err := c.WriteFormat(&b, FormatText); err != nil || b.Len() != 0 {
		t.Errorf("WriteTo = %q, %v; want nothing", b.String(), err)
	}
}

// BenchmarkCoordinatorScrape100k renders 100,000 targets known in three
// locations, a third of them down, as a scrape does: plain, gzip on two
// cores, and gzip again when no target changed since the previous
// compressed scrape.
func BenchmarkCoordinatorScrape100k(b *testing.B) {
	const n = 100000
	down := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	targets := make([]TargetState, n)
	for i := range targets {
		t := TargetState{Target: fmt.Sprintf("https://svc-%06d.example.test/healthz", i), Module: "http_2xx", State: "up",
			Labels:    []Label{{Name: "team", Value: fmt.Sprintf("team-%d", i%20)}},
			Locations: []LocationVerdict{{"ams", true}, {"fra", true}, {"sfo", true}}}
		if i%3 == 0 {
			t.State, t.DownSince = "down", down
			t.Locations = []LocationVerdict{{"ams", false}, {"fra", false}, {"sfo", false}}
		}
		targets[i] = t
	}
	c := NewCoordinator([]string{"up", "seems_down", "down", "unknown"}, func() []TargetState { return targets }, func() []LocationHealth { return nil })
	for _, kind := range []string{"plain", "gzip", "gzip-unchanged"} {
		b.Run(kind, func(b *testing.B) {
			var size int64
			for b.Loop() {
				cw := &byteCounter{}
				switch kind {
				case "plain":
					_, _ = c.WriteFormat(cw, FormatText)
				case "gzip":
					c.gz.cache = nil // every chunk compressed
					_ = c.WriteGzipFormat(cw, 2, FormatText)
				default:
					_ = c.WriteGzipFormat(cw, 2, FormatText)
				}
				size = cw.n
			}
			b.ReportMetric(float64(size)/(1<<20), "MiB")
		})
	}
}

// byteCounter counts the bytes written to it.
type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
