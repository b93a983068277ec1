package collector

import (
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TargetState is the coordinator's view of one (target, module) at a
// scrape.
type TargetState struct {
	Target, Module string
	// Labels are the target's configured labels (team, …), sorted by
	// name; every series of the target carries them.
	Labels []Label
	// State is one of States.
	State string
	// DownSince is the start of a confirmed outage still open; zero
	// otherwise.
	DownSince time.Time
	// Locations holds each location's latest verdict; a location whose
	// latest outcome is unknown is left out.
	Locations []LocationVerdict
	// Flapping: the target fails and succeeds in turn.
	Flapping bool
}

// LocationVerdict is what one location last saw of a target.
type LocationVerdict struct {
	Location string
	Success  bool
}

// LocationHealth is whether a location can be relied on.
type LocationHealth struct {
	Location string
	Healthy  bool
}

// Coordinator renders the coordinator's state as series at scrape time:
// one-hot target states, confirmed-down flags, per-location verdicts and
// location health. A target's series carry its configured labels, so
// alerts on them route by those labels (team, …) as the exporters' do.
//
// Location health is a prometheus.Collector. The target series, nine or
// so per target, are written by hand as the exporter's Table writes its
// rows (WriteTo, WriteGzip): client_golang's const metrics cost seconds
// and hundreds of MiB at 100,000 targets. Unlike the Table's rows, a
// target's lines are rendered at each scrape, straight into the output,
// from the compact TargetState: a coordinator's targets change state
// rarely, and keeping their text (a KiB each) would cost more memory than
// rendering it costs time.
type Coordinator struct {
	states    []string
	targets   func() []TargetState
	locations func() []LocationHealth

	healthy *prometheus.Desc

	// gz holds the latest compressed scrape (see WriteGzipFormat).
	gz struct {
		sync.Mutex
		cache *gzipCache
	}
}

// Target series: name, help, and the target's own label (empty for none).
var (
	stateFamily = targetFamily{"vantage_target_state",
		"State of each target at the coordinator, one-hot: up, seems_down (a location reported a failure; the others are being asked), down (confirmed by enough locations), unknown (too few locations could tell).",
		"state"}
	confirmedDownFamily = targetFamily{"vantage_target_confirmed_down",
		"1 while enough locations agree the target is down.", ""}
	locationSuccessFamily = targetFamily{"vantage_target_location_success",
		"Latest verdict of each location about the target: 1 success, 0 failure; absent while the location cannot tell.",
		"location"}
	downSinceFamily = targetFamily{"vantage_target_down_since_timestamp_seconds",
		"Start of the target's confirmed outage (its first failed check), while it lasts.", ""}
	flappingFamily = targetFamily{"vantage_target_flapping",
		"1 while the target fails and succeeds in turn (its incident is held open until it is stable); absent otherwise.", ""}
)

type targetFamily struct {
	name, help string
	own        string
}

// NewCoordinator builds the collector. states lists every state, so each
// target renders one series per state; targets and locations are called
// once per scrape.
func NewCoordinator(states []string, targets func() []TargetState, locations func() []LocationHealth) *Coordinator {
	return &Coordinator{
		states: states, targets: targets, locations: locations,
		healthy: prometheus.NewDesc("vantage_location_healthy",
			"Whether the location's exporter answers and its connectivity canary passes; while 0 its verdicts count as unknown.",
			[]string{"location"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Coordinator) Describe(ch chan<- *prometheus.Desc) { ch <- c.healthy }

// Collect implements prometheus.Collector: the locations' health. The
// target series are written by WriteFormat and WriteGzipFormat
// (ServeMetrics writes both).
func (c *Coordinator) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.locations() {
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, boolValue(l.Healthy), l.Location)
	}
}

// targetScrape is one scrape's targets and the families they render.
type targetScrape struct {
	states  []string
	targets []TargetState
	fams    []targetFamily
	sc      scrape // renders the families' headers
}

func (c *Coordinator) scrape(format Format) *targetScrape {
	ts := &targetScrape{states: slices.Sorted(slices.Values(c.states)), targets: c.targets(), sc: scrape{format: format}}
	var downSince, flapping, locations bool
	for i := range ts.targets {
		t := &ts.targets[i]
		downSince = downSince || !t.DownSince.IsZero()
		flapping = flapping || t.Flapping
		locations = locations || len(t.Locations) > 0
	}
	if len(ts.targets) == 0 {
		return ts
	}
	// Families in name order, those without series left out, as
	// client_golang's registry writes them.
	ts.fams = append(ts.fams, confirmedDownFamily)
	if downSince {
		ts.fams = append(ts.fams, downSinceFamily)
	}
	if flapping {
		ts.fams = append(ts.fams, flappingFamily)
	}
	if locations {
		ts.fams = append(ts.fams, locationSuccessFamily)
	}
	ts.fams = append(ts.fams, stateFamily)
	return ts
}

// WriteFormat writes the target series in format.
func (c *Coordinator) WriteFormat(w io.Writer, format Format) (int64, error) {
	ts := c.scrape(format)
	bw := newBatchWriter(w)
	for i := range ts.fams {
		ts.writeFamily(bw, i, ts.targets, true)
		if bw.err != nil {
			break
		}
	}
	err := bw.release()
	return bw.n, err
}

// WriteGzipFormat writes what WriteFormat writes, gzip-compressed by up
// to workers goroutines, as Table.WriteGzip does: a gzip member per chunk
// of gzipChunk targets and family. A chunk whose targets are as they were
// at the previous compressed scrape is not compressed again: its members
// are kept (a few MiB at 100,000 targets, with the targets' states they
// render), so a scrape of a coordinator whose targets hardly change costs
// little more than reading the state.
func (c *Coordinator) WriteGzipFormat(w io.Writer, workers int, format Format) error {
	ts := c.scrape(format)
	c.gz.Lock()
	defer c.gz.Unlock()
	prev := c.gz.cache
	if prev == nil || prev.format != format || !slices.Equal(prev.fams, ts.fams) {
		prev = &gzipCache{}
	}
	next := &gzipCache{format: format, fams: ts.fams}
	var stale []int
	for k := 0; k*gzipChunk < len(ts.targets); k++ {
		part := ts.targets[k*gzipChunk : min(len(ts.targets), (k+1)*gzipChunk)]
		ch := gzipChunkOf{targets: part}
		if k < len(prev.chunks) && sameTargets(prev.chunks[k].targets, part) {
			ch.members = prev.chunks[k].members
		} else {
			stale = append(stale, k)
		}
		next.chunks = append(next.chunks, ch)
	}
	var wg sync.WaitGroup
	work := make(chan int, len(stale))
	for _, k := range stale {
		work <- k
	}
	close(work)
	for range max(1, min(workers, len(stale))) {
		wg.Go(func() {
			for k := range work {
				ch := &next.chunks[k]
				ch.members = gzipMembers(len(ts.fams), func(i int, bw *batchWriter) { ts.writeFamily(bw, i, ch.targets, k == 0) })
			}
		})
	}
	wg.Wait()
	c.gz.cache = next
	for i := range ts.fams {
		for _, ch := range next.chunks {
			if _, err := w.Write(ch.members[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// gzipChunk is how many targets share the gzip members of a chunk.
const gzipChunk = 2000

// gzipCache is the latest compressed scrape, chunk by chunk.
type gzipCache struct {
	format Format
	fams   []targetFamily
	chunks []gzipChunkOf
}

// gzipChunkOf is the targets of one chunk, as rendered, and their
// members, one per family.
type gzipChunkOf struct {
	targets []TargetState
	members [][]byte
}

// sameTargets reports whether a and b render the same lines.
func sameTargets(a, b []TargetState) bool {
	return slices.EqualFunc(a, b, func(x, y TargetState) bool {
		return x.Target == y.Target && x.Module == y.Module && x.State == y.State && x.DownSince.Equal(y.DownSince) &&
			x.Flapping == y.Flapping && slices.Equal(x.Labels, y.Labels) && slices.Equal(x.Locations, y.Locations)
	})
}

// Gatherer returns the target series as a prometheus.Gatherer (parsed
// back from the text), for programs and tests that gather a registry
// beside them.
func (c *Coordinator) Gatherer() prometheus.Gatherer {
	return prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var b strings.Builder
		if _, err := c.WriteFormat(&b, FormatText); err != nil {
			return nil, err
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		byName, err := parser.TextToMetricFamilies(strings.NewReader(b.String()))
		if err != nil {
			return nil, err
		}
		out := make([]*dto.MetricFamily, 0, len(byName))
		for _, mf := range byName {
			out = append(out, mf)
		}
		slices.SortFunc(out, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
		return out, nil
	})
}

// writeFamily writes the lines of the i-th family of targets, after its
// HELP and TYPE lines when header is set.
func (ts *targetScrape) writeFamily(cw *batchWriter, i int, targets []TargetState, header bool) {
	f := ts.fams[i]
	if header {
		cw.write(ts.sc.header(family{name: f.name, help: escapeHelp(f.help), omHelp: escapeOpenMetricsHelp(f.help), typ: "gauge"}))
	}
	buf := make([]byte, 0, 32<<10)
	var pairs []Label
	for j := range targets {
		t := &targets[j]
		pairs = targetLabelPairs(pairs[:0], t)
		line := func(own string, value float64) {
			buf = appendTargetLine(buf, f.name, pairs, f.own, own, value)
		}
		switch f {
		case stateFamily:
			// One series per state, in label-value order.
			for _, s := range ts.states {
				line(s, boolValue(s == t.State))
			}
		case confirmedDownFamily:
			line("", boolValue(!t.DownSince.IsZero()))
		case downSinceFamily:
			if !t.DownSince.IsZero() {
				line("", float64(t.DownSince.UnixNano())/1e9)
			}
		case flappingFamily:
			if t.Flapping {
				line("", 1)
			}
		case locationSuccessFamily:
			for _, l := range t.Locations {
				line(l.Location, boolValue(l.Success))
			}
		}
		if len(buf) >= 16<<10 {
			cw.write(buf)
			buf = buf[:0]
		}
	}
	cw.write(buf)
}

// targetLabelPairs returns a target's labels (target, module and its
// configured ones) sorted by name, appended to pairs.
func targetLabelPairs(pairs []Label, t *TargetState) []Label {
	pairs = append(pairs, Label{"module", t.Module}, Label{"target", t.Target})
	pairs = append(pairs, t.Labels...)
	slices.SortFunc(pairs, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return pairs
}

// appendTargetLine appends one sample line: the labels sorted by name, as
// client_golang writes them, with the family's own label (when ownName is
// set) in its place among them.
func appendTargetLine(b []byte, name string, pairs []Label, ownName, ownValue string, value float64) []byte {
	b = append(b, name...)
	b = append(b, '{')
	own := ownName != ""
	written := 0
	for _, p := range pairs {
		if own && ownName < p.Name {
			b = appendLabelPair(b, ownName, ownValue, written > 0)
			written++
			own = false
		}
		b = appendLabelPair(b, p.Name, p.Value, written > 0)
		written++
	}
	if own {
		b = appendLabelPair(b, ownName, ownValue, written > 0)
	}
	b = append(b, '}', ' ')
	switch value {
	case 0:
		b = append(b, '0')
	case 1:
		b = append(b, '1')
	default:
		b = appendFloat(b, value)
	}
	return append(b, '\n')
}

func appendLabelPair(b []byte, name, value string, comma bool) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, value)
	return append(b, '"')
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
