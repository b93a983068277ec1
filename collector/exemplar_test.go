package collector

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

const testTraceID = "0af7651916cd43dd8448eb211c80319c"

// tracedTable holds a check of module "traced" whose trace was kept and one
// of module "untraced" whose was not.
func tracedTable(t *testing.T) (*prometheus.Registry, *Table) {
	t.Helper()
	reg := prometheus.NewRegistry()
	tab := NewTable(reg)
	a := Row{Module: "traced", Target: "https://a.example"}
	b := Row{Module: "untraced", Target: "https://b.example"}
	tab.Sync([]Row{a, b})
	tab.Record(checkOf(a, Check{Result: httpResult(false, 503), Attempts: 1, Planned: time.Unix(1000, 0), TraceID: testTraceID}))
	tab.Record(checkOf(b, Check{Result: httpResult(true, 200), Attempts: 1, Planned: time.Unix(1000, 0)}))
	return reg, tab
}

// exemplars returns the trace_id exemplars of the phase histogram's
// buckets, by module and phase.
func exemplars(mfs []*dto.MetricFamily) map[string][]string {
	out := map[string][]string{}
	for _, mf := range mfs {
		if mf.GetName() != "vantage_probe_phase_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var key string
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			for _, b := range m.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					for _, l := range ex.GetLabel() {
						out[strings.TrimSpace(key)] = append(out[strings.TrimSpace(key)], l.GetName()+"="+l.GetValue())
					}
				}
			}
		}
	}
	return out
}

func TestPhaseHistogramsCarryTraceExemplars(t *testing.T) {
	reg, _ := tracedTable(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := exemplars(mfs)
	for _, key := range []string{"module=traced phase=resolve", "module=traced phase=connect"} {
		if len(got[key]) != 1 || got[key][0] != "trace_id="+testTraceID {
			t.Errorf("%s: exemplars %v, want one with the check's trace_id", key, got[key])
		}
	}
	for key, ex := range got {
		if strings.Contains(key, "untraced") {
			t.Errorf("%s: exemplars %v for a check whose trace was not kept", key, ex)
		}
	}
}

// writeOpenMetrics renders what /metrics serves in OpenMetrics: the
// registry's families, the table, "# EOF".
func writeOpenMetrics(t *testing.T, reg *prometheus.Registry, tab *Table) []byte {
	t.Helper()
	var b bytes.Buffer
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	enc := expfmt.NewEncoder(&b, expfmt.FmtOpenMetrics_1_0_0)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tab.WriteFormat(&b, FormatOpenMetrics); err != nil {
		t.Fatal(err)
	}
	if _, err := expfmt.FinalizeOpenMetrics(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeOpenMetrics parses an OpenMetrics exposition strictly.
func decodeOpenMetrics(t *testing.T, data []byte) map[string]*dto.MetricFamily {
	t.Helper()
	dec := expfmt.NewDecoder(bytes.NewReader(data), expfmt.FmtOpenMetrics_1_0_0)
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		err := dec.Decode(mf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("OpenMetrics does not parse: %v\n%s", err, data)
		}
		out[mf.GetName()] = mf
	}
}

// The table renders valid OpenMetrics (counter families named without
// _total), and the registry's histograms keep their exemplars in it.
func TestTableRendersOpenMetrics(t *testing.T) {
	reg, tab := tracedTable(t)
	data := writeOpenMetrics(t, reg, tab)
	if !bytes.Contains(data, []byte("# TYPE vantage_probe_checks counter\n")) {
		t.Errorf("no OpenMetrics counter family vantage_probe_checks in:\n%s", data)
	}
	fams := decodeOpenMetrics(t, data)
	for _, name := range []string{"probe_success", "probe_http_status_code", "vantage_probe_attempts", "vantage_probe_phase_duration_seconds"} {
		if fams[name] == nil {
			t.Errorf("family %s missing from the OpenMetrics exposition", name)
		}
	}
	var checks *dto.MetricFamily
	for name, mf := range fams {
		if strings.HasPrefix(name, "vantage_probe_checks") {
			checks = mf
		}
	}
	if checks == nil || checks.GetType() != dto.MetricType_COUNTER || len(checks.GetMetric()) != 4 {
		t.Errorf("vantage_probe_checks family: %v", checks)
	}
	ex := exemplars([]*dto.MetricFamily{fams["vantage_probe_phase_duration_seconds"]})
	if got := ex["module=traced phase=connect"]; len(got) != 1 || got[0] != "trace_id="+testTraceID {
		t.Errorf("exemplars after an OpenMetrics round trip: %v", ex)
	}

	// The gzip rendering is the same text.
	var plain, z bytes.Buffer
	if _, err := tab.WriteFormat(&plain, FormatOpenMetrics); err != nil {
		t.Fatal(err)
	}
	if err := tab.WriteGzipFormat(&z, 2, FormatOpenMetrics); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&z)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, plain.Bytes()) {
		t.Error("gzip OpenMetrics rendering differs from WriteFormat's")
	}
}
