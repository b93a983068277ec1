// Package compat checks that vantage-exporter's /probe is a drop-in
// replacement for prometheus/blackbox_exporter's.
//
// TestCompat starts loopback targets (HTTP, HTTPS with a CA generated in the
// test, a TCP server sending an SSH banner, a TLS TCP server, a DNS server
// over UDP and TCP, a gRPC health server, ICMP to 127.0.0.1, and failing
// targets: an HTTP 500, a body that does not match, plain HTTP where TLS is
// required, a refused TCP port, an NXDOMAIN answer, a NOT_SERVING gRPC
// service), renders one configuration (testdata/blackbox.yml, limited to the
// options Debian's blackbox_exporter 0.23 accepts), and runs Debian's
// /usr/bin/prometheus-blackbox-exporter and vantage (in-process) on it.
// For every (module, target) pair it probes both and compares their answers:
//
//   - every metric family blackbox_exporter emits must be emitted by vantage;
//   - per family, every label name blackbox uses must be used by vantage;
//   - for the labels in valueLabels (phase, serving_status, version) every
//     label value blackbox emits must be emitted by vantage;
//   - probe_success must be equal, and 0 for the failing cases;
//   - the families in deterministicFamilies (status codes, rr counts,
//     certificate expiry, ...) must have the same values, series matched on
//     the label names both emit.
//
// Series, labels and values that only vantage emits are allowed (vantage
// follows blackbox_exporter 0.28, a superset of 0.23) and are only logged.
// A missing blackbox binary fails the test: install the Debian package
// prometheus-blackbox-exporter.
package compat

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// compatCase is one (module, target) pair probed by both exporters.
type compatCase struct {
	name        string
	module      string
	target      string
	wantSuccess bool
}

func compatCases(tg *targets) []compatCase {
	return []compatCase{
		{"http_2xx/ok", "http_2xx", tg.httpURL + "/", true},
		{"http_2xx/status_500", "http_2xx", tg.httpURL + "/fail", false},
		{"http_checks/ok", "http_checks", tg.httpURL + "/", true},
		{"http_checks/body_mismatch", "http_checks", tg.httpURL + "/nomatch", false},
		{"https_ca/ok", "https_ca", tg.https + "/", true},
		{"https_ca/not_ssl", "https_ca", tg.httpURL + "/", false},
		{"tcp_connect/ok", "tcp_connect", tg.banner, true},
		{"tcp_connect/refused", "tcp_connect", tg.refused, false},
		{"tcp_banner/ok", "tcp_banner", tg.banner, true},
		{"tls_connect/ok", "tls_connect", tg.tlsTCP, true},
		{"dns_udp_a/ok", "dns_udp_a", tg.dnsUDP, true},
		{"dns_tcp_soa/ok", "dns_tcp_soa", tg.dnsTCP, true},
		{"dns_nxdomain/nxdomain", "dns_nxdomain", tg.dnsUDP, false},
		{"grpc_health/serving", "grpc_health", tg.grpc, true},
		{"grpc_not_serving/not_serving", "grpc_not_serving", tg.grpc, false},
		{"icmp/ok", "icmp", "127.0.0.1", true},
	}
}

func TestCompat(t *testing.T) {
	tg := startTargets(t)
	configFile := renderConfig(t, t.TempDir(), tg.caFile)
	blackbox := startBlackbox(t, configFile)
	vantage := startVantage(t, configFile)

	var (
		mu      sync.Mutex
		summary []string
	)
	report := func(c compatCase, kind, what string) {
		mu.Lock()
		defer mu.Unlock()
		summary = append(summary, fmt.Sprintf("%s (module %s): %s %s", c.name, c.module, kind, what))
	}

	t.Run("cases", func(t *testing.T) {
		for _, c := range compatCases(tg) {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				bb, err := probe(t.Context(), blackbox, c.module, c.target, false)
				if err != nil {
					t.Fatalf("blackbox_exporter: %v", err)
				}
				vt, err := probe(t.Context(), vantage, c.module, c.target, false)
				if err != nil {
					report(c, "error", err.Error())
					t.Fatalf("vantage: %v", err)
				}
				ok := true
				bbSuccess, bbOK := familyValue(bb.families, "probe_success")
				vtSuccess, vtOK := familyValue(vt.families, "probe_success")
				switch {
				case !bbOK:
					t.Fatalf("blackbox_exporter answered no probe_success:\n%s", bb.raw)
				case bbSuccess != boolFloat(c.wantSuccess):
					t.Fatalf("test setup: blackbox_exporter's probe_success is %v, want %v; the target or config is wrong:\n%s",
						bbSuccess, boolFloat(c.wantSuccess), bb.raw)
				case !vtOK:
					ok = false
					report(c, "missing", "probe_success")
					t.Errorf("vantage answered no probe_success")
				case vtSuccess != bbSuccess:
					ok = false
					report(c, "wrong", fmt.Sprintf("probe_success %v, blackbox %v", vtSuccess, bbSuccess))
					t.Errorf("probe_success: vantage %v, blackbox_exporter %v", vtSuccess, bbSuccess)
				}

				d := compareFamilies(bb.families, vt.families)
				for _, m := range d.missing {
					ok = false
					report(c, "missing", m)
					t.Errorf("vantage lacks %s", m)
				}
				for _, w := range d.wrong {
					ok = false
					report(c, "wrong", w)
					t.Errorf("vantage differs: %s", w)
				}
				for _, x := range d.extra {
					t.Logf("vantage extra: %s", x)
				}
				if !ok {
					logDebug(t, "blackbox_exporter", blackbox, c)
					logDebug(t, "vantage", vantage, c)
				}
			})
		}
	})

	sort.Strings(summary)
	if len(summary) > 0 {
		t.Errorf("%d differences from blackbox_exporter:\n  %s", len(summary), strings.Join(summary, "\n  "))
	}
}

// logDebug logs an exporter's /probe?debug=true answer for a failing case.
func logDebug(t *testing.T, who, base string, c compatCase) {
	t.Helper()
	dbg, err := probe(t.Context(), base, c.module, c.target, true)
	if err != nil {
		t.Logf("%s debug probe: %v", who, err)
		return
	}
	t.Logf("%s /probe?debug=true:\n%s", who, dbg.raw)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TestCompareFamilies checks the comparison itself on fixed answers, so a
// broken comparison cannot make TestCompat pass vacuously.
func TestCompareFamilies(t *testing.T) {
	const blackbox = `
probe_success 1
probe_http_duration_seconds{phase="connect"} 0.1
probe_http_duration_seconds{phase="tls"} 0
probe_http_status_code 200
probe_ssl_last_chain_info{fingerprint_sha256="ab",subject="CN=x"} 1
probe_dns_lookup_time_seconds 0.001
`
	const vantage = `
probe_success 1
probe_http_duration_seconds{phase="connect"} 0.2
probe_http_duration_seconds{phase="resolve"} 0
probe_http_status_code 500
probe_ssl_last_chain_info{fingerprint_sha256="ab",serialnumber="1"} 1
probe_failure_info{reason="x"} 1
`
	parse := func(s string) map[string]*dto.MetricFamily {
		t.Helper()
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader([]byte(s)))
		if err != nil {
			t.Fatal(err)
		}
		return fams
	}
	d := compareFamilies(parse(blackbox), parse(vantage))
	wantMissing := []string{
		"family probe_dns_lookup_time_seconds (labels [])",
		`family probe_http_duration_seconds: series phase="tls"`,
		"family probe_ssl_last_chain_info: label subject",
	}
	wantWrong := []string{"family probe_http_status_code{}: value 500, blackbox 200"}
	wantExtra := []string{
		`family probe_http_duration_seconds: series phase="resolve"`,
		"family probe_ssl_last_chain_info: label serialnumber",
		"family probe_failure_info",
	}
	check := func(what string, got, want []string) {
		t.Helper()
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s:\n got %q\nwant %q", what, got, want)
		}
	}
	check("missing", d.missing, wantMissing)
	check("wrong", d.wrong, wantWrong)
	check("extra", d.extra, wantExtra)
}
