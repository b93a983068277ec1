package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/units"
)

// TestLoadInvalidExtraProbers asserts the messages of the rules of the
// probers and options blackbox_exporter does not have: multi-packet icmp,
// the TCP retry of truncated DNS answers, and http_steps.
func TestLoadInvalidExtraProbers(t *testing.T) {
	for file, want := range map[string]string{
		"icmp-packets-too-many":             `:5: modules.icmp.icmp.packets: packets must be between 1 and 1000, got 5000`,
		"icmp-packet-interval-single":       `:5: modules.icmp.icmp.packet_interval: packet_interval needs packets greater than 1`,
		"icmp-packet-interval-short":        `:6: modules.icmp.icmp.packet_interval: packet_interval must be at least 10ms, got 1ms`,
		"icmp-packets-timeout":              `:6: modules.icmp.icmp.packets: 5 packets 1s apart take 4s to send, not less than the module's timeout of 3s`,
		"icmp-packet-interval-timeout":      `:7: modules.icmp.icmp.packet_interval: 11 packets 500ms apart take 5s to send, not less than the module's timeout of 5s`,
		"http-steps-unknown-variable":       `:17: modules.api_flow.http_steps.steps[1].headers.Authorization: variable ${tokn} is not captured by an earlier step nor a secret (defined here: password, target, token)`,
		"http-steps-later-capture":          `:7: modules.api_flow.http_steps.steps[0].url: variable ${id} is not captured by an earlier step nor a secret (defined here: target)`,
		"http-steps-no-steps":               `:4: modules.api_flow.http_steps.steps: steps must list at least one request`,
		"http-steps-duplicate-name":         `:8: modules.api_flow.http_steps.steps[1].name: step name "get" is used twice`,
		"http-steps-capture-sources":        `:9: modules.api_flow.http_steps.steps[0].capture[0]: capture "token" needs exactly one of cel (on the JSON body), regexp (on the body) or header (optionally with regexp)`,
		"http-steps-capture-shadows-secret": `:11: modules.api_flow.http_steps.steps[0].capture[0].name: variable "token" is already defined (a secret)`,
		"http-steps-unclosed-variable":      `:8: modules.api_flow.http_steps.steps[0].body: "user=${target" has a ${ without its closing }`,
		"http-steps-capture-cel": ":9: modules.api_flow.http_steps.steps[0].capture[0].cel: CEL expression \"body.token +\" does not compile: " +
			"ERROR: <input>:1:13: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n" +
			" | body.token +\n" +
			" | ............^",
		"http-steps-status-code":  `:8: modules.api_flow.http_steps.steps[0].valid_status_codes[1]: 20 is not an HTTP status code`,
		"http-steps-unknown-key":  `:8: modules.api_flow.http_steps.steps[0]: unknown key "captures"`,
		"dns-retry-truncated-tcp": `:7: modules.dns_tcp.dns.retry_truncated_over_tcp: retry_truncated_over_tcp applies to transport_protocol: udp only`,
	} {
		t.Run(file, func(t *testing.T) { checkInvalidFile(t, file, want) })
	}
}

// docExample returns the first yml block after marker in CONFIGURATION.md.
func docExample(t *testing.T, marker string) string {
	t.Helper()
	doc, err := os.ReadFile("../CONFIGURATION.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("CONFIGURATION.md has no %q", marker)
	}
	_, block, ok := strings.Cut(after, "```yml\n")
	if !ok {
		t.Fatalf("no example after %q", marker)
	}
	block, _, _ = strings.Cut(block, "```")
	return block
}

// TestLoadDocumentedExamples loads CONFIGURATION.md's examples of the
// multi-packet icmp, dns retry and http_steps options as written.
func TestLoadDocumentedExamples(t *testing.T) {
	indent := func(s string) string { return "  " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  ") + "\n" }
	dnsModule := "dns_big:\n  prober: dns\n  " + strings.ReplaceAll(docExample(t, "retry_truncated_over_tcp: <boolean>"), "\n", "\n  ")
	c, err := Parse([]byte("modules:\n"+
		indent(docExample(t, "90th percentile."))+
		indent(docExample(t, "Example: log in, then use the token"))+
		indent(dnsModule)), "CONFIGURATION.md examples")
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Modules["icmp_smoke"].ICMP; p.Packets != 20 || p.Interval() != 250*time.Millisecond {
		t.Errorf("icmp = %+v", p)
	}
	if d := c.Modules["dns_big"].DNS; !d.RetryTruncatedOverTCP || d.QueryType != "TXT" {
		t.Errorf("dns = %+v", d)
	}
	s := c.Modules["api_flow"].HTTPSteps
	if len(s.Steps) != 2 || s.Steps[1].Limit() != 64*units.KiB || s.Steps[0].Limit() != DefaultStepBodySizeLimit ||
		s.Secrets["password"] != "/etc/vantage/api-password" || !s.IPProtocolFallback ||
		s.Steps[0].Capture[2].Regexp.Regexp == nil || s.Steps[0].Capture[0].CEL.Program == nil ||
		s.Steps[1].Headers["Cookie"] != "session=${session}" {
		t.Errorf("http_steps = %+v", s)
	}
	if got := (ICMPProbe{}).Interval(); got != DefaultPacketInterval {
		t.Errorf("default interval %v", got)
	}
}

func TestExpandVariables(t *testing.T) {
	vars := map[string]string{"a": "1", "b_2": "two"}
	value := func(n string) string { return vars[n] }
	for in, want := range map[string]string{
		"":                       "",
		"plain $a {a}":           "plain $a {a}",
		"${a}/${b_2}${a}":        "1/two1",
		"$${a} and ${a}":         "${a} and 1",
		"open ${a":               "open ${a",
		"${a}${missing}end":      "1end",
		"json {\"k\": \"${a}\"}": "json {\"k\": \"1\"}",
	} {
		if got := ExpandVariables(in, value); got != want {
			t.Errorf("ExpandVariables(%q) = %q, want %q", in, got, want)
		}
	}
	if vs, err := Variables("${a}-$${b}-${c_3}"); err != nil || strings.Join(vs, ",") != "a,c_3" {
		t.Errorf("Variables = %v, %v", vs, err)
	}
	for _, bad := range []string{"${1a}", "${a b}", "${}", "x ${a"} {
		if _, err := Variables(bad); err == nil {
			t.Errorf("Variables(%q) accepted", bad)
		}
	}
}
