package config

import (
	"crypto/tls"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/units"
	promconfig "github.com/prometheus/common/config"
)

func mustLoad(tb testing.TB, path string) *Config {
	tb.Helper()
	c, err := LoadFile(path)
	if err != nil {
		tb.Fatalf("loading %s: %v", path, err)
	}
	return c
}

func mustModule(tb testing.TB, c *Config, name string) Module {
	tb.Helper()
	m, ok := c.Modules[name]
	if !ok {
		tb.Fatalf("module %q is missing", name)
	}
	return m
}

func equal(tb testing.TB, what string, got, want any) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

func compiled(tb testing.TB, what string, re Regexp, src string) {
	tb.Helper()
	if re.Regexp == nil {
		tb.Errorf("%s: regexp %q was not compiled", what, re)
	}
	if re.String() != src {
		tb.Errorf("%s = %q, want %q", what, re.String(), src)
	}
}

func TestLoadGoodHTTP(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")

	m := mustModule(t, c, "http_all")
	equal(t, "prober", m.Prober, "http")
	equal(t, "timeout", m.Timeout, 7*time.Second)
	h := m.HTTP
	equal(t, "valid_status_codes", h.ValidStatusCodes, []int{200, 204})
	equal(t, "valid_http_versions", h.ValidHTTPVersions, []string{"HTTP/1.1", "HTTP/2.0"})
	equal(t, "preferred_ip_protocol", h.IPProtocol, "ip4")
	equal(t, "ip_protocol_fallback", h.IPProtocolFallback, false)
	equal(t, "source_ip_address", h.SourceIPAddress, "127.0.0.1")
	equal(t, "skip_resolve_phase_with_proxy", h.SkipResolvePhaseWithProxy, true)
	if h.NoFollowRedirects == nil || !*h.NoFollowRedirects {
		t.Errorf("no_follow_redirects = %v, want true", h.NoFollowRedirects)
	}
	equal(t, "follow_redirects (from no_follow_redirects: true)", h.HTTPClientConfig.FollowRedirects, false)
	equal(t, "fail_if_ssl", h.FailIfSSL, false)
	equal(t, "fail_if_not_ssl", h.FailIfNotSSL, true)
	equal(t, "method", h.Method, "POST")
	equal(t, "headers", h.Headers, map[string]string{
		"Content-Type":    "application/json",
		"Accept-Encoding": "br;q=1.0, gzip;q=0.9",
	})
	equal(t, "compression", h.Compression, "gzip")
	equal(t, "body", h.Body, `{"ping": true}`)
	equal(t, "body_size_limit", h.BodySizeLimit, units.MiB)

	if len(h.FailIfBodyMatchesRegexp) != 1 || len(h.FailIfBodyNotMatchesRegexp) != 2 {
		t.Fatalf("body regexps: got %d and %d, want 1 and 2", len(h.FailIfBodyMatchesRegexp), len(h.FailIfBodyNotMatchesRegexp))
	}
	compiled(t, "fail_if_body_matches_regexp[0]", h.FailIfBodyMatchesRegexp[0], "error|fail")
	compiled(t, "fail_if_body_not_matches_regexp[0]", h.FailIfBodyNotMatchesRegexp[0], "^ok")
	compiled(t, "fail_if_body_not_matches_regexp[1]", h.FailIfBodyNotMatchesRegexp[1], "status: (up|degraded)")
	if !h.FailIfBodyNotMatchesRegexp[1].MatchString("status: degraded") {
		t.Error("fail_if_body_not_matches_regexp[1] does not match what it should")
	}

	if len(h.FailIfHeaderMatchesRegexp) != 1 || len(h.FailIfHeaderNotMatchesRegexp) != 1 {
		t.Fatalf("header matchers: got %d and %d, want 1 and 1", len(h.FailIfHeaderMatchesRegexp), len(h.FailIfHeaderNotMatchesRegexp))
	}
	hm := h.FailIfHeaderMatchesRegexp[0]
	equal(t, "fail_if_header_matches[0].header", hm.Header, "Server")
	equal(t, "fail_if_header_matches[0].allow_missing", hm.AllowMissing, true)
	compiled(t, "fail_if_header_matches[0].regexp", hm.Regexp, "^Apache/1")
	hn := h.FailIfHeaderNotMatchesRegexp[0]
	equal(t, "fail_if_header_not_matches[0].header", hn.Header, "Content-Type")
	equal(t, "fail_if_header_not_matches[0].allow_missing", hn.AllowMissing, false)
	compiled(t, "fail_if_header_not_matches[0].regexp", hn.Regexp, "^application/json")

	for key, tc := range map[string]struct {
		prog *CELProgram
		src  string
		body map[string]any
	}{
		"fail_if_body_json_matches_cel": {
			h.FailIfBodyJSONMatchesCEL, `body.status == "down"`,
			map[string]any{"status": "down"},
		},
		"fail_if_body_json_not_matches_cel": {
			h.FailIfBodyJSONNotMatchesCEL, `body.healthy == true && size(body.items) > 0`,
			map[string]any{"healthy": true, "items": []any{1}},
		},
	} {
		if tc.prog == nil || tc.prog.Program == nil {
			t.Errorf("%s was not compiled", key)
			continue
		}
		equal(t, key, tc.prog.String(), tc.src)
		out, _, err := tc.prog.Eval(map[string]any{"body": tc.body})
		if err != nil || out.Value() != true {
			t.Errorf("%s on %v = %v, %v; want true", key, tc.body, out, err)
		}
	}

	hc := h.HTTPClientConfig
	equal(t, "basic_auth", hc.BasicAuth, &promconfig.BasicAuth{Username: "prober", Password: "basic-secret-text"})
	equal(t, "tls_config", hc.TLSConfig, promconfig.TLSConfig{
		CAFile:             "/etc/vantage/ca.pem",
		CertFile:           "/etc/vantage/client.pem",
		KeyFile:            "/etc/vantage/client-key.pem",
		ServerName:         "www.example.com",
		InsecureSkipVerify: true,
		MinVersion:         promconfig.TLSVersion(tls.VersionTLS12),
		MaxVersion:         promconfig.TLSVersion(tls.VersionTLS13),
	})
	if hc.ProxyURL.URL == nil || hc.ProxyURL.String() != "http://proxy.example.com:3128" {
		t.Errorf("proxy_url = %v, want http://proxy.example.com:3128", hc.ProxyURL.URL)
	}
	equal(t, "no_proxy", hc.NoProxy, "localhost,127.0.0.1,10.0.0.0/8")
	equal(t, "proxy_connect_header", hc.ProxyConnectHeader, promconfig.ProxyHeader{
		"Proxy-Authorization": {"proxy-secret-text"},
	})
	equal(t, "enable_http2", hc.EnableHTTP2, false)
	if hc.HTTPHeaders == nil {
		t.Fatal("http_headers not decoded")
	}
	equal(t, "http_headers", hc.HTTPHeaders.Headers, map[string]promconfig.Header{
		"X-Team":      {Values: []string{"sre"}},
		"X-Api-Key":   {Secrets: []promconfig.Secret{"header-secret-text"}},
		"X-From-File": {Files: []string{"/etc/vantage/header.txt"}},
	})

	m = mustModule(t, c, "http_bearer_file")
	equal(t, "bearer_token_file becomes authorization", m.HTTP.HTTPClientConfig.Authorization,
		&promconfig.Authorization{Type: "Bearer", CredentialsFile: "/etc/vantage/token"})
	equal(t, "body_file", m.HTTP.BodyFile, "/etc/vantage/body.json")
	equal(t, "follow_redirects: false", m.HTTP.HTTPClientConfig.FollowRedirects, false)
	equal(t, "no_follow_redirects unset", m.HTTP.NoFollowRedirects, (*bool)(nil))

	m = mustModule(t, c, "http_bearer")
	equal(t, "bearer_token becomes authorization", m.HTTP.HTTPClientConfig.Authorization,
		&promconfig.Authorization{Type: "Bearer", Credentials: "bearer-secret-text"})

	m = mustModule(t, c, "http_authorization")
	equal(t, "authorization", m.HTTP.HTTPClientConfig.Authorization,
		&promconfig.Authorization{Type: "Token", Credentials: "authorization-secret-text"})

	m = mustModule(t, c, "http_basic_files")
	equal(t, "basic_auth files", m.HTTP.HTTPClientConfig.BasicAuth,
		&promconfig.BasicAuth{UsernameFile: "/etc/vantage/user", PasswordFile: "/etc/vantage/password"})
	equal(t, "proxy_from_environment", m.HTTP.HTTPClientConfig.ProxyFromEnvironment, true)

	m = mustModule(t, c, "http_oauth2")
	o := m.HTTP.HTTPClientConfig.OAuth2
	if o == nil {
		t.Fatal("oauth2 not decoded")
	}
	equal(t, "oauth2.client_id", o.ClientID, "vantage")
	equal(t, "oauth2.client_secret", o.ClientSecret, promconfig.Secret("oauth2-secret-text"))
	equal(t, "oauth2.token_url", o.TokenURL, "https://auth.example.com/token")
	equal(t, "oauth2.scopes", o.Scopes, []string{"probe", "read"})
	equal(t, "oauth2.endpoint_params", o.EndpointParams, map[string]string{"audience": "monitoring"})

	m = mustModule(t, c, "http_3")
	equal(t, "enable_http3", m.HTTP.EnableHTTP3, true)
	equal(t, "enable_http2", m.HTTP.HTTPClientConfig.EnableHTTP2, false)
	equal(t, "valid_http_versions", m.HTTP.ValidHTTPVersions, []string{"HTTP/3.0"})
}

func TestLoadGoodDefaults(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")

	m := mustModule(t, c, "http_defaults")
	equal(t, "timeout", m.Timeout, time.Duration(0))
	equal(t, "ip_protocol_fallback", m.HTTP.IPProtocolFallback, true)
	equal(t, "preferred_ip_protocol", m.HTTP.IPProtocol, "")
	equal(t, "follow_redirects", m.HTTP.HTTPClientConfig.FollowRedirects, true)
	equal(t, "enable_http2", m.HTTP.HTTPClientConfig.EnableHTTP2, true)
	equal(t, "no_follow_redirects", m.HTTP.NoFollowRedirects, (*bool)(nil))
	equal(t, "method", m.HTTP.Method, "")
	equal(t, "enable_http3", m.HTTP.EnableHTTP3, false)
	equal(t, "body_size_limit", m.HTTP.BodySizeLimit, units.Base2Bytes(0))

	m = mustModule(t, c, "dns_defaults")
	equal(t, "dns", m.DNS, DNSProbe{IPProtocolFallback: true, Recursion: true, QueryName: "example.org"})

	m = mustModule(t, c, "icmp_defaults")
	equal(t, "icmp", m.ICMP, ICMPProbe{IPProtocolFallback: true, TTL: 64})

	// Sections a module does not use still hold their defaults.
	equal(t, "tcp of an icmp module", m.TCP, DefaultTCPProbe)
	equal(t, "grpc of an icmp module", m.GRPC, DefaultGRPCProbe)
}

func TestLoadGoodTCP(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")
	m := mustModule(t, c, "tcp_all")
	equal(t, "prober", m.Prober, "tcp")
	equal(t, "timeout", m.Timeout, 3*time.Second)
	p := m.TCP
	equal(t, "preferred_ip_protocol", p.IPProtocol, "ip6")
	equal(t, "ip_protocol_fallback", p.IPProtocolFallback, false)
	equal(t, "source_ip_address", p.SourceIPAddress, "::1")
	equal(t, "tls", p.TLS, true)
	equal(t, "tls_config", p.TLSConfig, promconfig.TLSConfig{
		ServerName: "mail.example.com",
		MinVersion: promconfig.TLSVersion(tls.VersionTLS13),
	})
	qr := p.QueryResponse
	if len(qr) != 5 {
		t.Fatalf("query_response has %d steps, want 5", len(qr))
	}
	compiled(t, "query_response[0].expect", qr[0].Expect, "^220 ([^ ]+) ESMTP (.+)$")
	if got := qr[0].Expect.FindStringSubmatch("220 mx.example.com ESMTP Postfix"); len(got) != 3 || got[1] != "mx.example.com" {
		t.Errorf("query_response[0].expect groups = %q", got)
	}
	equal(t, "query_response[0].labels", qr[0].Labels, []Label{{Name: "host", Value: "${1}"}, {Name: "banner", Value: "${2}"}})
	equal(t, "query_response[0].send", qr[0].Send, "EHLO prober\r")
	compiled(t, "query_response[1].expect", qr[1].Expect, "^250-STARTTLS")
	equal(t, "query_response[2].send", qr[2].Send, "STARTTLS\r")
	equal(t, "query_response[2].expect set", qr[2].Expect.IsSet(), false)
	equal(t, "query_response[3].starttls", qr[3].StartTLS, true)
	equal(t, "query_response[4].expect_bytes", qr[4].ExpectBytes, "\x16\x03")
	equal(t, "query_response[4].expect set", qr[4].Expect.IsSet(), false)
}

func TestLoadGoodDNS(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")
	m := mustModule(t, c, "dns_all")
	p := m.DNS
	equal(t, "preferred_ip_protocol", p.IPProtocol, "ip4")
	equal(t, "ip_protocol_fallback", p.IPProtocolFallback, false)
	equal(t, "source_ip_address", p.SourceIPAddress, "127.0.0.1")
	equal(t, "transport_protocol", p.TransportProtocol, "tcp")
	equal(t, "dns_over_tls", p.DNSOverTLS, true)
	equal(t, "tls_config.server_name", p.TLSConfig.ServerName, "dns.example.com")
	equal(t, "query_name", p.QueryName, "example.com")
	equal(t, "query_type", p.QueryType, "MX")
	equal(t, "query_class", p.QueryClass, "CH")
	equal(t, "recursion_desired", p.Recursion, false)
	equal(t, "valid_rcodes", p.ValidRcodes, []string{"NOERROR", "NXDOMAIN"})

	for section, v := range map[string]DNSRRValidator{
		"validate_answer_rrs":     p.ValidateAnswer,
		"validate_authority_rrs":  p.ValidateAuthority,
		"validate_additional_rrs": p.ValidateAdditional,
	} {
		for key, res := range map[string][]Regexp{
			"fail_if_matches_regexp":      v.FailIfMatchesRegexp,
			"fail_if_all_match_regexp":    v.FailIfAllMatchRegexp,
			"fail_if_not_matches_regexp":  v.FailIfNotMatchesRegexp,
			"fail_if_none_matches_regexp": v.FailIfNoneMatchesRegexp,
		} {
			if len(res) != 1 || res[0].Regexp == nil {
				t.Errorf("%s.%s = %v, want one compiled regexp", section, key, res)
			}
		}
	}
	rr := "example.com.\t300\tIN\tMX\t10 mx.bad.example.com."
	if !p.ValidateAnswer.FailIfMatchesRegexp[0].MatchString(rr) {
		t.Errorf("validate_answer_rrs.fail_if_matches_regexp[0] does not match %q", rr)
	}
	equal(t, "validate_authority_rrs.fail_if_none_matches_regexp[0]", p.ValidateAuthority.FailIfNoneMatchesRegexp[0].String(), "authority-none")
	equal(t, "validate_additional_rrs.fail_if_all_match_regexp[0]", p.ValidateAdditional.FailIfAllMatchRegexp[0].String(), "additional-all")
}

func TestLoadGoodICMPAndGRPC(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")
	m := mustModule(t, c, "icmp_all")
	equal(t, "timeout", m.Timeout, 2*time.Second)
	equal(t, "icmp", m.ICMP, ICMPProbe{
		IPProtocol:         "ip4",
		IPProtocolFallback: false,
		SourceIPAddress:    "127.0.0.1",
		PayloadSize:        56,
		DontFragment:       true,
		TTL:                12,
	})

	m = mustModule(t, c, "grpc_all")
	equal(t, "timeout", m.Timeout, 4*time.Second)
	equal(t, "grpc", m.GRPC, GRPCProbe{
		Service:             "helloworld.Greeter",
		TLS:                 true,
		TLSConfig:           promconfig.TLSConfig{InsecureSkipVerify: true},
		IPProtocolFallback:  false,
		PreferredIPProtocol: "ip6",
		SourceIPAddress:     "::1",
		Metadata: map[string]Strings{
			"authorization": {"Bearer grpc-token"},
			"x-tenant":      {"blue", "green"},
		},
	})
}

func TestLoadInvalid(t *testing.T) {
	for file, want := range map[string]string{
		"unknown-key-top":        `:4: (top level): unknown key "timeout"`,
		"unknown-key-module":     `:4: modules.http_2xx: unknown key "timout"`,
		"unknown-key-http":       `:6: modules.http_2xx.http: unknown key "follow_redirect"`,
		"unknown-key-tls-config": `:8: modules.tls_connect.tcp.tls_config: unknown key "ca_fle"`,
		"unknown-prober":         `:3: modules.ssh_banner.prober: unknown prober "ssh" (known: http, tcp, dns, icmp, grpc, unix, websocket, http_steps)`,
		"missing-prober":         `:2: modules.http_2xx.prober: prober must be set (one of http, tcp, dns, icmp, grpc, unix, websocket, http_steps)`,
		"dns-missing-query-name": `:4: modules.dns_udp.dns.query_name: query_name must be set for a dns module`,
		"dns-query-class":        `:6: modules.dns_udp.dns.query_class: unknown DNS class "XX"`,
		"dns-query-type":         `:6: modules.dns_udp.dns.query_type: unknown DNS type "AAAAA"`,
		"dns-rcode":              `:8: modules.dns_udp.dns.valid_rcodes[1]: unknown DNS rcode "NOSUCHRCODE"`,
		"dns-over-tls-udp":       `:7: modules.dns_tls.dns.dns_over_tls: dns_over_tls needs transport_protocol: tcp`,
		"header-match-no-header": `:6: modules.http_2xx.http.fail_if_header_matches[0].header: header name must be set for an HTTP header matcher`,
		"header-match-no-regexp": `:6: modules.http_2xx.http.fail_if_header_not_matches[0].regexp: regexp must be set for the HTTP header matcher of "Content-Type"`,
		"body-regexp":            ":7: modules.http_2xx.http.fail_if_body_not_matches_regexp[1]: regexp \"(unclosed\" does not compile: error parsing regexp: missing closing ): `(unclosed`",
		"header-regexp":          ":7: modules.http_2xx.http.fail_if_header_matches[0].regexp: regexp \"[a-\" does not compile: error parsing regexp: missing closing ]: `[a-`",
		"tcp-expect-regexp":      ":8: modules.smtp.tcp.query_response[2].expect: regexp \"^250 (?P<x\" does not compile: error parsing regexp: invalid named capture: `(?P<x`",
		"dns-validator-regexp":   ":8: modules.dns_udp.dns.validate_authority_rrs.fail_if_none_matches_regexp[0]: regexp \"a**\" does not compile: error parsing regexp: invalid nested repetition operator: `**`",
		"cel": `:5: modules.http_json.http.fail_if_body_json_not_matches_cel: CEL expression "body.status ==" does not compile: ` +
			"ERROR: <input>:1:15: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}\n" +
			" | body.status ==\n" +
			" | ..............^",
		"compression-accept-encoding":       `:7: modules.http_gzip.http.headers.Accept-Encoding: compression "gzip" contradicts the header "Accept-Encoding: br, identity": the server may not send gzip`,
		"compression-reject-all":            `:6: modules.http_gzip.http.headers.accept-encoding: compression "gzip" contradicts the header "accept-encoding: *;q=0": the server may not send gzip`,
		"compression-unknown":               `:5: modules.http_zstd.http.compression: unknown compression "zstd" (known: gzip, br, deflate, identity)`,
		"http3-http2":                       `:5: modules.http3.http.enable_http3: enable_http3 needs enable_http2: false (enable_http2 defaults to true)`,
		"http3-other-versions":              `:7: modules.http3.http.valid_http_versions: with enable_http3, HTTP/3.0 must be the only valid HTTP version, got HTTP/2.0, HTTP/3.0`,
		"http3-no-versions":                 `:4: modules.http3.http.valid_http_versions: enable_http3 needs valid_http_versions: ["HTTP/3.0"]`,
		"http3-not-enabled":                 `:5: modules.http3.http.valid_http_versions: HTTP/3.0 is a valid version but enable_http3 is not set`,
		"icmp-ttl-negative":                 `:5: modules.icmp.icmp.ttl: ttl must not be negative, got -1`,
		"icmp-ttl-too-big":                  `:5: modules.icmp.icmp.ttl: ttl must not exceed 255, got 256`,
		"body-and-body-file":                `:7: modules.http_post.http.body_file: body and body_file are both set; use one`,
		"expect-and-expect-bytes":           `:7: modules.tcp_banner.tcp.query_response[1]: expect and expect_bytes are both set; use one`,
		"unix-query-response-regexp":        ":7: modules.unix_ping.unix.query_response[1].expect: regexp \"PONG(\" does not compile: error parsing regexp: missing closing ): `PONG(`",
		"websocket-incomplete-basic-auth":   `:7: modules.websocket_test.websocket.http_config.basic_auth: basic_auth needs both username and password`,
		"websocket-whitespace-bearer-token": `:6: modules.websocket_test.websocket.http_config.bearer_token: bearer_token is only whitespace`,
		"websocket-header-newline-value":    `:7: modules.websocket_test.websocket.http_config.headers.X-Test: value of header "X-Test" has a control character or line break`,
		"websocket-query-response-regexp":   ":6: modules.websocket_test.websocket.query_response[0].expect: regexp \":[\" does not compile: error parsing regexp: missing closing ]: `[`",
		"websocket-expect-bytes":            `:6: modules.websocket_test.websocket.query_response[0].expect_bytes: the websocket prober matches messages with expect; expect_bytes is for tcp and unix`,
		"bearer-token-and-file":             `:6: modules.http_auth.http.bearer_token_file: bearer_token and bearer_token_file are both set; use one`,
		"preferred-ip-protocol":             `:5: modules.tcp_connect.tcp.preferred_ip_protocol: unknown IP protocol "ipv4" (use ip4 or ip6)`,
		"source-ip-address":                 `:5: modules.grpc_health.grpc.source_ip_address: "10.0.0.300" is not an IP address`,
		"duration":                          ":4: modules.http_2xx.timeout: cannot unmarshal !!str `5 seconds` into time.Duration",
		"status-code-type":                  ":7: modules.http_2xx.http.valid_status_codes[1]: cannot unmarshal !!str `2xx` into int",
		"http-section-type":                 ":4: modules.http_2xx.http: unexpected !!str `GET`",
		"duplicate-key":                     `:6: modules.http_2xx.http: duplicate key "method" (first set at line 5)`,
		"tls-version":                       `:8: modules.http_2xx.http.tls_config.min_version: unknown TLS version: TLS99`,
		"tls-ca-and-ca-file":                `:6: modules.grpc_tls.grpc.tls_config: at most one of ca, ca_file & ca_ref must be configured`,
		"oauth2-token-url":                  `:4: modules.http_oauth2.http: oauth2 token_url must be configured`,
		"grpc-metadata-type":                `:7: modules.grpc_health.grpc.metadata.x-tenant: cannot unmarshal !!map into []string`,
		"yaml-syntax":                       `:4: did not find expected key`,
		"yaml-tab":                          `:3: found character that cannot start any token`,
		"yaml-flow":                         `:7: did not find expected ',' or ']'`,

		// destinations
		"destinations-network":                ":7: modules.http_2xx.destinations.denied_networks[1]: \"10.0.0.0/33\" is not an IP network (write 10.0.0.0/8, fd00::/8, or a single address)",
		"destinations-network-host-bits":      `:6: modules.tcp_connect.destinations.allowed_networks[0]: "10.1.2.3/16" has address bits set beyond its /16 prefix; write 10.1.0.0/16`,
		"destinations-network-mapped":         `:5: modules.icmp.destinations.denied_networks[0]: "::ffff:10.0.0.0/104" is an IPv4-mapped IPv6 network; addresses are checked in their IPv4 form, so write 10.0.0.0/8`,
		"destinations-host-wildcard":          `:7: modules.http_2xx.destinations.allowed_hosts[1]: host pattern "api.*.example.com": "*" may only be the whole first label, as in "*.example.com"`,
		"destinations-host-ip":                `:7: modules.http_2xx.destinations.denied_hosts[0]: host pattern "169.254.169.254" is an IP address; list addresses under allowed_networks or denied_networks`,
		"destinations-host-name":              `:6: modules.grpc_health.destinations.denied_hosts[0]: host pattern "metadata internal" is not a host name (dot-separated labels of letters, digits, "-" and "_", optionally after "*.")`,
		"destinations-allowed-within-denied":  `:7: modules.http_2xx.destinations.allowed_networks[1]: allowed network 198.51.100.64/26 lies within denied_networks[0] 198.51.100.0/24; deny wins, so it would allow nothing`,
		"destinations-allowed-within-private": `:9: modules.dns_udp.destinations.allowed_networks[0]: allowed network 10.53.0.0/16 lies within 10.0.0.0/8 (private-use, RFC 1918), which deny_private denies; deny wins, so it would allow nothing (list the networks to deny under denied_networks instead of deny_private)`,
		"destinations-allowed-host-covered":   `:7: modules.http_2xx.destinations.allowed_hosts[1]: allowed host pattern "API.Corp.Example.com" is covered by denied_hosts[0] "*.corp.example.com"; deny wins, so it would allow nothing`,
		"destinations-empty":                  `:4: modules.http_2xx.destinations: no rule is set; set deny_private or list allowed or denied networks or hosts, or remove the section`,
		"destinations-type":                   ":5: modules.http_2xx.destinations.allowed_hosts: cannot unmarshal !!str `*.examp...` into []config.HostPattern",
		"unknown-key-destinations":            `:6: modules.http_2xx.destinations: unknown key "allowed_network"`,
		"cluster-replicas":                    `:2: cluster.replicas: replicas must be at least 1, got 0`,
		"cluster-expected-members":            `:3: cluster.expected_members: expected_members must not be negative, got -2`,
	} {
		t.Run(file, func(t *testing.T) { checkInvalidFile(t, file, want) })
	}
}

// checkInvalidFile loads testdata/invalid-<file>.yml and checks that it
// fails with the message want after the file's name.
func checkInvalidFile(t *testing.T, file, want string) {
	t.Helper()
	path := "testdata/invalid-" + file + ".yml"
	_, err := LoadFile(path)
	if err == nil {
		t.Fatalf("%s loaded without error", path)
	}
	if got, want := err.Error(), path+want; got != want {
		t.Errorf("wrong error\n got: %s\nwant: %s", got, want)
	}
}

// TestLoadInvalidCovered keeps the table above and testdata/ in step.
func TestLoadInvalidCovered(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 40 {
		t.Fatalf("found %d invalid-*.yml files, want at least 40", len(files))
	}
	for _, f := range files {
		if _, err := LoadFile(f); err == nil {
			t.Errorf("%s loads without error", f)
		} else if !strings.HasPrefix(err.Error(), f+":") {
			t.Errorf("%s: error does not start with %q: %v", f, f+":", err)
		}
	}
}

// TestParseErrorsInline covers messages for documents written in flow style,
// where many nodes share a line.
func TestParseErrorsInline(t *testing.T) {
	for doc, want := range map[string]string{
		"modules: {m: {prober: grpc, grpc: {metadata: {a: {b: c}}}}}":                  "modules.m.grpc.metadata.a: cannot unmarshal !!map into []string",
		"modules: {m: {prober: http, timeout: 5}}":                                     "modules.m.timeout: cannot unmarshal !!int `5` into time.Duration",
		"modules: {m: {prober: http, timeout: -1s}}":                                   "modules.m.timeout: timeout must not be negative, got -1s",
		"modules: {m: {prober: http}, m: {prober: tcp}}":                               `modules: duplicate key "m" (first set at line 1)`,
		"modules: {m: {prober: http, http: {valid_status_codes: [200, 99]}}}":          "modules.m.http.valid_status_codes[1]: 99 is not an HTTP status code",
		"modules: {m: {prober: http, http: {valid_http_versions: [HTTP/2.1]}}}":        `modules.m.http.valid_http_versions[0]: unknown HTTP version "HTTP/2.1" (known: HTTP/1.0, HTTP/1.1, HTTP/2.0, HTTP/3.0)`,
		"modules: {m: {prober: dns, dns: {query_name: x, transport_protocol: q}}}":     `modules.m.dns.transport_protocol: unknown transport protocol "q" (use udp or tcp)`,
		"modules: {m: {prober: icmp, icmp: {payload_size: 70000}}}":                    "modules.m.icmp.payload_size: payload_size must be between 0 and 65000, got 70000",
		"modules: {m: {prober: tcp, tcp: {query_response: [{labels: [{value: x}]}]}}}": "modules.m.tcp.query_response[0].labels[0].name: label name must be set",
		"modules: {m: {prober: http, http: {http_headers: {Host: {values: [x]}}}}}":    `modules.m.http: setting header "Host" is not allowed`,
		"modules: {m: {prober: http, http: {proxy_url: 'http://[::1'}}}":               `modules.m.http.proxy_url: parse "http://[::1": missing ']' in host`,
		"- a": "(top level): cannot unmarshal !!seq into config.Config",
		"modules: {m: {prober: http, timeout: \"5\\nx\"}}": "modules.m.timeout: cannot unmarshal !!str `5\nx` into time.Duration",
	} {
		_, err := Parse([]byte(doc), "t.yml")
		if err == nil {
			t.Errorf("%s: loaded without error", doc)
			continue
		}
		if got := err.Error(); got != "t.yml:1: "+want {
			t.Errorf("%s:\n got: %s\nwant: t.yml:1: %s", doc, got, want)
		}
	}
}

func TestLoadValidCompression(t *testing.T) {
	c := mustLoad(t, "testdata/valid-compression.yml")
	equal(t, "compression", mustModule(t, c, "http_gzip").HTTP.Compression, "gzip")
}

func TestAcceptsEncoding(t *testing.T) {
	for _, tc := range []struct {
		header, enc string
		want        bool
	}{
		{"gzip", "gzip", true},
		{"GZip", "gzip", true},
		{"br, gzip", "gzip", true},
		{"br;q=1.0, gzip;q=0.9", "gzip", true},
		{"br ; q=1.0 , gzip ; q=0.1", "gzip", true},
		{"br, identity", "gzip", false},
		{"gzip;q=0", "gzip", false},
		{"gzip;q=0.0, *", "gzip", false},
		{"*", "br", true},
		{"*;q=0", "gzip", false},
		{"*;q=0, deflate", "deflate", true},
		{"identity", "identity", true},
		{"br", "identity", false},
		{",, gzip", "gzip", true},
	} {
		if got := acceptsEncoding(tc.header, tc.enc); got != tc.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v, want %v", tc.header, tc.enc, got, tc.want)
		}
	}
}

func TestEmptyAcceptEncodingAllowsAnyCompression(t *testing.T) {
	_, err := Parse([]byte(`
modules:
  m:
    prober: http
    http:
      compression: br
      headers:
        Accept-Encoding: ""
`), "inline.yml")
	if err != nil {
		t.Fatal(err)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	want := map[string]string{
		"http_2xx":      "http",
		"http_post_2xx": "http",
		"tcp_connect":   "tcp",
		"tls_connect":   "tcp",
		"icmp":          "icmp",
		"dns_udp":       "dns",
		"grpc_health":   "grpc",
	}
	got := map[string]string{}
	for name, m := range c.Modules {
		got[name] = m.Prober
	}
	equal(t, "default modules", got, want)
	equal(t, "http_post_2xx method", c.Modules["http_post_2xx"].HTTP.Method, "POST")
	equal(t, "tls_connect tls", c.Modules["tls_connect"].TCP.TLS, true)
	equal(t, "dns_udp query_name", c.Modules["dns_udp"].DNS.QueryName, "example.com")
	equal(t, "dns_udp transport_protocol", c.Modules["dns_udp"].DNS.TransportProtocol, "udp")
	for name, m := range c.Modules {
		if m.Timeout != 5*time.Second {
			t.Errorf("%s: timeout = %s, want 5s", name, m.Timeout)
		}
	}

	fromFile, err := LoadFile("")
	if err != nil {
		t.Fatalf("LoadFile(\"\"): %v", err)
	}
	if len(fromFile.Modules) != len(want) {
		t.Errorf("LoadFile(\"\") has %d modules, want %d", len(fromFile.Modules), len(want))
	}
	if _, err := Parse(DefaultYAML(), "default.yml"); err != nil {
		t.Errorf("DefaultYAML() does not parse: %v", err)
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "missing.yml"))
	if err == nil || !strings.HasPrefix(err.Error(), "reading config file: ") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v", err)
	}
}

func TestParseEmpty(t *testing.T) {
	c, err := Parse(nil, "empty.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Modules) != 0 {
		t.Errorf("empty document has modules: %v", c.Modules)
	}
}

var secretTexts = []string{
	"basic-secret-text", "bearer-secret-text", "authorization-secret-text",
	"oauth2-secret-text", "proxy-secret-text", "header-secret-text",
}

func TestMarshalHidesSecrets(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")
	// A bearer_token that validation has not yet moved to authorization.
	raw := DefaultModule
	raw.Prober = "http"
	raw.HTTP.HTTPClientConfig.BearerToken = "raw-bearer-secret-text"
	c.Modules["raw_bearer"] = raw

	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, s := range append(secretTexts, "raw-bearer-secret-text") {
		if strings.Contains(text, s) {
			t.Errorf("Marshal shows the secret %q", s)
		}
	}
	for _, line := range []string{
		"password: <secret>",            // basic_auth
		"client_secret: <secret>",       // oauth2
		"credentials: <secret>",         // authorization, and bearer_token moved there
		"bearer_token: <secret>",        // bearer_token as written
		"- <secret>",                    // proxy_connect_header and http_headers secrets
		"username: prober",              // not a secret
		"client_id: vantage",            // not a secret
		"key_file: /etc/vantage/client", // a file name, not a secret
	} {
		if !strings.Contains(text, line) {
			t.Errorf("Marshal output lacks %q", line)
		}
	}
	if n := strings.Count(text, "credentials: <secret>"); n != 2 {
		t.Errorf("credentials: <secret> appears %d times, want 2 (authorization, bearer_token)", n)
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	c := mustLoad(t, "testdata/good.yml")
	first, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(first, "marshalled.yml")
	if err != nil {
		t.Fatalf("marshalled config does not parse: %v\n%s", err, first)
	}
	second, err := again.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(first) != string(second) {
		t.Errorf("marshal, parse, marshal changed the config:\nfirst:\n%s\nsecond:\n%s", first, second)
	}

	names := func(c *Config) []string {
		var n []string
		for name := range c.Modules {
			n = append(n, name)
		}
		slices.Sort(n)
		return n
	}
	equal(t, "module names", names(again), names(c))
	for name, m := range c.Modules {
		m2 := again.Modules[name]
		equal(t, name+" prober", m2.Prober, m.Prober)
		equal(t, name+" timeout", m2.Timeout, m.Timeout)
		equal(t, name+" icmp", m2.ICMP, m.ICMP)
		equal(t, name+" query_response steps", len(m2.TCP.QueryResponse), len(m.TCP.QueryResponse))
	}
	h, h2 := c.Modules["http_all"].HTTP, again.Modules["http_all"].HTTP
	equal(t, "http_all headers", h2.Headers, h.Headers)
	equal(t, "http_all follow_redirects", h2.HTTPClientConfig.FollowRedirects, false)
	equal(t, "http_all tls_config", h2.HTTPClientConfig.TLSConfig, h.HTTPClientConfig.TLSConfig)
	equal(t, "http_all body_size_limit", h2.BodySizeLimit, h.BodySizeLimit)
	equal(t, "http_all basic_auth password", h2.HTTPClientConfig.BasicAuth.Password, promconfig.Secret("<secret>"))
	compiled(t, "http_all fail_if_header_matches[0].regexp", h2.FailIfHeaderMatchesRegexp[0].Regexp, "^Apache/1")
	if h2.FailIfBodyJSONMatchesCEL == nil || h2.FailIfBodyJSONMatchesCEL.Program == nil {
		t.Error("CEL program not compiled after the round trip")
	}
	equal(t, "grpc_all metadata", again.Modules["grpc_all"].GRPC.Metadata, c.Modules["grpc_all"].GRPC.Metadata)
	equal(t, "tcp_all expect_bytes", again.Modules["tcp_all"].TCP.QueryResponse[4].ExpectBytes, "\x16\x03")
}

// An empty regular expression is valid (it matches everything) and must
// survive marshalling: rendered as null it would drop out of its list.
func TestMarshalKeepsEmptyRegexp(t *testing.T) {
	c, err := Parse([]byte(`
modules:
  m:
    prober: http
    http:
      fail_if_body_matches_regexp: [""]
`), "inline.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out, "marshalled.yml")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := again.Modules["m"].HTTP.FailIfBodyMatchesRegexp; len(got) != 1 || got[0].Regexp == nil {
		t.Errorf("after a round trip fail_if_body_matches_regexp = %v, want one compiled empty regexp\n%s", got, out)
	}
}
