package compat

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// valueLabels are labels whose set of values is part of the contract: every
// value blackbox_exporter emits must be emitted by vantage too.
var valueLabels = []string{"phase", "serving_status", "version"}

// deterministicFamilies have values that do not depend on timing, so both
// exporters must agree on them for the same target (matched per series on
// the label names both emit).
var deterministicFamilies = []string{
	"probe_success",
	"probe_ip_protocol",
	"probe_ip_addr_hash",
	"probe_failed_due_to_regex",
	"probe_http_status_code",
	"probe_http_version",
	"probe_http_ssl",
	"probe_http_redirects",
	"probe_http_content_length",
	"probe_http_uncompressed_body_length",
	"probe_ssl_earliest_cert_expiry",
	"probe_ssl_last_chain_expiry_timestamp_seconds",
	"probe_ssl_last_chain_info",
	"probe_tls_version_info",
	"probe_dns_answer_rrs",
	"probe_dns_authority_rrs",
	"probe_dns_additional_rrs",
	"probe_dns_query_succeeded",
	"probe_dns_serial",
	"probe_grpc_status_code",
	"probe_grpc_ssl",
	"probe_grpc_healthcheck_response",
	"probe_icmp_reply_hop_limit",
}

// differences is what vantage's answer lacks or gets wrong compared with
// blackbox_exporter's (missing, wrong: failures) and what it has on top
// (extra: allowed, only reported).
type differences struct {
	missing []string
	wrong   []string
	extra   []string
}

// compareFamilies compares the families blackbox_exporter (bb) and vantage
// (vt) answered for the same module and target.
func compareFamilies(bb, vt map[string]*dto.MetricFamily) differences {
	var d differences
	for _, name := range sortedKeys(bb) {
		bf := bb[name]
		vf, ok := vt[name]
		if !ok {
			d.missing = append(d.missing, fmt.Sprintf("family %s (labels %s)", name, setString(labelNames(bf))))
			continue
		}
		bn, vn := labelNames(bf), labelNames(vf)
		for _, l := range minus(bn, vn) {
			d.missing = append(d.missing, fmt.Sprintf("family %s: label %s", name, l))
		}
		for _, l := range minus(vn, bn) {
			d.extra = append(d.extra, fmt.Sprintf("family %s: label %s", name, l))
		}
		for _, l := range valueLabels {
			if !bn[l] || !vn[l] {
				continue
			}
			bv, vv := labelValues(bf, l), labelValues(vf, l)
			for _, v := range minus(bv, vv) {
				d.missing = append(d.missing, fmt.Sprintf("family %s: series %s=%q", name, l, v))
			}
			for _, v := range minus(vv, bv) {
				d.extra = append(d.extra, fmt.Sprintf("family %s: series %s=%q", name, l, v))
			}
		}
		if slices.Contains(deterministicFamilies, name) {
			d.wrong = append(d.wrong, compareValues(bf, vf, intersect(bn, vn))...)
		}
	}
	for _, name := range sortedKeys(vt) {
		if _, ok := bb[name]; !ok {
			d.extra = append(d.extra, fmt.Sprintf("family %s", name))
		}
	}
	return d
}

// compareValues matches the series of two families on the given label names
// and reports every blackbox series whose value vantage does not reproduce.
func compareValues(bf, vf *dto.MetricFamily, common map[string]bool) []string {
	vseries := map[string]float64{}
	for _, m := range vf.GetMetric() {
		vseries[seriesKey(m, common)] = value(m)
	}
	var wrong []string
	for _, m := range bf.GetMetric() {
		key := seriesKey(m, common)
		want := value(m)
		got, ok := vseries[key]
		switch {
		case !ok:
			wrong = append(wrong, fmt.Sprintf("family %s: no series {%s} (blackbox value %v)", bf.GetName(), key, want))
		case !sameValue(want, got):
			wrong = append(wrong, fmt.Sprintf("family %s{%s}: value %v, blackbox %v", bf.GetName(), key, got, want))
		}
	}
	return wrong
}

func sameValue(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

// value reads a sample whatever its declared type.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return math.NaN()
}

// familyValue is the value of a family's only (or first) series.
func familyValue(fams map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf, ok := fams[name]
	if !ok || len(mf.GetMetric()) == 0 {
		return 0, false
	}
	return value(mf.GetMetric()[0]), true
}

func seriesKey(m *dto.Metric, names map[string]bool) string {
	var parts []string
	for _, lp := range m.GetLabel() {
		if names[lp.GetName()] {
			parts = append(parts, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func labelNames(mf *dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			names[lp.GetName()] = true
		}
	}
	return names
}

func labelValues(mf *dto.MetricFamily, name string) map[string]bool {
	values := map[string]bool{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name {
				values[lp.GetValue()] = true
			}
		}
	}
	return values
}

// minus returns the sorted members of a that are not in b.
func minus(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func intersect(a, b map[string]bool) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		if b[k] {
			out[k] = true
		}
	}
	return out
}

func setString(s map[string]bool) string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return "[" + strings.Join(keys, " ") + "]"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
