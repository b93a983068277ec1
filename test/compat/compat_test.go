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
// Where blackbox_exporter 0.28 changed what 0.23 emits (gRPC without TLS
// has no probe_ssl_earliest_cert_expiry), a case lists the family as
// dropped: vantage must not emit it. A case may also ask for exactly
// blackbox's phases (skip_resolve_phase_with_proxy: no resolve phase). A
// module Host header with a different hostname= must be refused by both
// with the same 400. What 0.23 cannot express (the unix and websocket
// probers, expect_bytes, serialnumber, hostname= as the tcp TLS server
// name, enable_http3, probe_timeout_seconds) is tested against in-process
// servers in the prober and exporter packages.
//
// Series, labels and values that only vantage emits are allowed (vantage
// follows blackbox_exporter 0.28, a superset of 0.23) and are only logged.
// A missing blackbox binary fails the test: install the Debian package
// prometheus-blackbox-exporter.
package compat

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	// dropped are families blackbox_exporter 0.23 emits for this case and
	// 0.28 no longer does: vantage, which follows 0.28, must not emit them.
	dropped []string
	// exactPhases: vantage must emit exactly blackbox's phases, no more.
	exactPhases bool
}

// overlongHost is a host name longer than any DNS name (253 bytes).
var overlongHost = strings.Repeat("a", 300) + ".compat.test"

func compatCases(tg *targets) []compatCase {
	return []compatCase{
		{"http_2xx/ok", "http_2xx", tg.httpURL + "/", true, nil, false},
		{"http_2xx/status_500", "http_2xx", tg.httpURL + "/fail", false, nil, false},
		{"http_checks/ok", "http_checks", tg.httpURL + "/", true, nil, false},
		{"http_checks/body_mismatch", "http_checks", tg.httpURL + "/nomatch", false, nil, false},
		{"https_ca/ok", "https_ca", tg.https + "/", true, nil, false},
		{"https_ca/not_ssl", "https_ca", tg.httpURL + "/", false, nil, false},
		{"tcp_connect/ok", "tcp_connect", tg.banner, true, nil, false},
		{"tcp_connect/refused", "tcp_connect", tg.refused, false, nil, false},
		{"tcp_banner/ok", "tcp_banner", tg.banner, true, nil, false},
		{"tls_connect/ok", "tls_connect", tg.tlsTCP, true, nil, false},
		{"dns_udp_a/ok", "dns_udp_a", tg.dnsUDP, true, nil, false},
		{"dns_tcp_soa/ok", "dns_tcp_soa", tg.dnsTCP, true, nil, false},
		{"dns_nxdomain/nxdomain", "dns_nxdomain", tg.dnsUDP, false, nil, false},
		// blackbox_exporter 0.28 exports TLS series for gRPC only after a
		// handshake; 0.23 exported probe_ssl_earliest_cert_expiry 0 without.
		{name: "grpc_health/serving", module: "grpc_health", target: tg.grpc, wantSuccess: true, dropped: []string{"probe_ssl_earliest_cert_expiry"}},
		{name: "grpc_not_serving/not_serving", module: "grpc_not_serving", target: tg.grpc, dropped: []string{"probe_ssl_earliest_cert_expiry"}},
		{"icmp/ok", "icmp", "127.0.0.1", true, nil, false},
		// The proxy resolves the name; neither exporter has a resolve phase.
		{name: "http_proxy_skip_resolve/ok", module: "http_proxy_skip_resolve", target: "http://only-via-proxy.compat.test/", wantSuccess: true, exactPhases: true},
		{"http_2xx/overlong_host", "http_2xx", "http://" + overlongHost + "/", false, nil, false},
	}
}

func TestCompat(t *testing.T) {
	tg := startTargets(t)
	configFile := renderConfig(t, t.TempDir(), tg)
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

				for _, name := range c.dropped {
					delete(bb.families, name)
					if _, present := vt.families[name]; present {
						ok = false
						report(c, "extra", name+" (blackbox_exporter 0.28 no longer emits it here)")
						t.Errorf("vantage emits %s, which blackbox_exporter 0.28 does not here", name)
					}
				}
				if c.exactPhases {
					bp, vp := phases(bb.families), phases(vt.families)
					if bp != vp {
						ok = false
						report(c, "wrong", fmt.Sprintf("phases %s, blackbox %s", vp, bp))
						t.Errorf("phases: vantage %s, blackbox_exporter %s", vp, bp)
					}
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

	// hostname= and a module Host header that differs: both refuse the
	// probe with 400 and the same explanation.
	t.Run("hostname_with_module_host", func(t *testing.T) {
		q := "/probe?module=http_vhost&target=" + url.QueryEscape(tg.httpURL+"/") + "&hostname=other.compat.test"
		bbCode, bbBody := mustGet(t, blackbox+q)
		vtCode, vtBody := mustGet(t, vantage+q)
		if bbCode != http.StatusBadRequest {
			t.Fatalf("test setup: blackbox_exporter answered %d %q, want 400", bbCode, bbBody)
		}
		if vtCode != bbCode || strings.TrimSpace(vtBody) != strings.TrimSpace(bbBody) {
			report(compatCase{name: "hostname_with_module_host", module: "http_vhost"}, "wrong", fmt.Sprintf("answer %d %q, blackbox %d %q", vtCode, vtBody, bbCode, bbBody))
			t.Errorf("vantage answered %d %q, blackbox_exporter %d %q", vtCode, vtBody, bbCode, bbBody)
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

// phases lists the phase label values of the duration families, sorted.
func phases(fams map[string]*dto.MetricFamily) string {
	var out []string
	for name, f := range fams {
		if !strings.HasSuffix(name, "_duration_seconds") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "phase" {
					out = append(out, name+"/"+l.GetValue())
				}
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// mustGet answers a GET's status and body.
func mustGet(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
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
