package config

import (
	"mime"
	"net"
	"net/textproto"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vantageprobe/vantage/internal/yamldoc"

	"github.com/miekg/dns"
	"golang.org/x/net/http/httpguts"
)

// validate checks the configuration, compiles its regexps and CEL programs,
// and resolves the inline scheduled targets and the canary; locateFn names
// where a path of the document is.
func (c *Config) validate(locateFn func([]any) string) error {
	names := make([]string, 0, len(c.Modules))
	for name := range c.Modules {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		m := c.Modules[name]
		if err := m.validate([]any{"modules", name}); err != nil {
			return err
		}
		c.Modules[name] = m
	}
	if err := c.Scheduler.validate([]any{"scheduler"}); err != nil {
		return err
	}
	if err := c.Cluster.validate([]any{"cluster"}); err != nil {
		return err
	}
	if err := c.resolveCanary([]any{"canary"}, locateFn); err != nil {
		return err
	}
	if err := c.validateGroups(locateFn); err != nil {
		return err
	}
	for i, p := range c.TargetFiles {
		if _, err := filepath.Match(p, ""); err != nil {
			return yamldoc.Fail([]any{"target_files", i}, "invalid pattern %q: %v", p, err)
		}
	}
	return nil
}

func (m *Module) validate(path []any) error {
	if !slices.Contains(Probers, m.Prober) {
		if m.Prober == "" {
			return yamldoc.Fail(yamldoc.At(path, "prober"), "prober must be set (one of %s)", strings.Join(Probers, ", "))
		}
		return yamldoc.Fail(yamldoc.At(path, "prober"), "unknown prober %q (known: %s)", m.Prober, strings.Join(Probers, ", "))
	}
	if m.Timeout < 0 {
		return yamldoc.Fail(yamldoc.At(path, "timeout"), "timeout must not be negative, got %s", m.Timeout)
	}
	if m.Destinations != nil {
		if err := m.Destinations.validate(yamldoc.At(path, "destinations")); err != nil {
			return err
		}
	}
	switch m.Prober {
	case "http":
		return m.HTTP.validate(yamldoc.At(path, "http"))
	case "tcp":
		return m.TCP.validate(yamldoc.At(path, "tcp"))
	case "dns":
		return m.DNS.validate(yamldoc.At(path, "dns"))
	case "icmp":
		if err := m.ICMP.validate(yamldoc.At(path, "icmp")); err != nil {
			return err
		}
		return m.ICMP.validatePackets(yamldoc.At(path, "icmp"), m.Timeout)
	case "grpc":
		return m.GRPC.validate(yamldoc.At(path, "grpc"))
	case "unix":
		return validateQueryResponses(yamldoc.At(path, "unix"), m.Unix.QueryResponse)
	case "websocket":
		return m.Websocket.validate(yamldoc.At(path, "websocket"))
	case "http_steps":
		return m.HTTPSteps.validate(yamldoc.At(path, "http_steps"))
	}
	return nil
}

func validateIPProtocol(path []any, v string) error {
	switch v {
	case "", "ip4", "ip6":
		return nil
	}
	return yamldoc.Fail(yamldoc.At(path, "preferred_ip_protocol"), "unknown IP protocol %q (use ip4 or ip6)", v)
}

func validateSourceIP(path []any, v string) error {
	if v == "" || net.ParseIP(v) != nil {
		return nil
	}
	return yamldoc.Fail(yamldoc.At(path, "source_ip_address"), "%q is not an IP address", v)
}

func compileAll(path []any, res []Regexp) error {
	for i := range res {
		if err := res[i].compile(); err != nil {
			return yamldoc.Fail(yamldoc.At(path, i), "regexp %q does not compile: %w", res[i].original, err)
		}
	}
	return nil
}

var knownHTTPVersions = []string{"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"}

func (p *HTTPProbe) validate(path []any) error {
	if err := validateIPProtocol(path, p.IPProtocol); err != nil {
		return err
	}
	if err := validateSourceIP(path, p.SourceIPAddress); err != nil {
		return err
	}
	if p.HTTPClientConfig.BearerToken != "" && p.HTTPClientConfig.BearerTokenFile != "" {
		return yamldoc.Fail(yamldoc.At(path, "bearer_token_file"), "bearer_token and bearer_token_file are both set; use one")
	}
	if err := p.HTTPClientConfig.Validate(); err != nil {
		return &yamldoc.FieldError{Path: path, Err: err}
	}
	if p.Body != "" && p.BodyFile != "" {
		return yamldoc.Fail(yamldoc.At(path, "body_file"), "body and body_file are both set; use one")
	}
	if p.BodySizeLimit < 0 {
		return yamldoc.Fail(yamldoc.At(path, "body_size_limit"), "body_size_limit must not be negative")
	}
	for i, code := range p.ValidStatusCodes {
		if code < 100 || code > 999 {
			return yamldoc.Fail(yamldoc.At(path, "valid_status_codes", i), "%d is not an HTTP status code", code)
		}
	}
	for i, v := range p.ValidHTTPVersions {
		// "HTTP/2" and "HTTP/3", as blackbox_exporter's example.yml writes
		// them, name the versions responses report as HTTP/2.0 and HTTP/3.0.
		if v == "HTTP/2" || v == "HTTP/3" {
			v += ".0"
			p.ValidHTTPVersions[i] = v
		}
		if !slices.Contains(knownHTTPVersions, v) {
			return yamldoc.Fail(yamldoc.At(path, "valid_http_versions", i), "unknown HTTP version %q (known: %s)", v, strings.Join(knownHTTPVersions, ", "))
		}
	}
	if err := p.validateHTTP3(path); err != nil {
		return err
	}
	if err := validateCompression(path, p.Compression, p.Headers); err != nil {
		return err
	}
	if err := compileAll(yamldoc.At(path, "fail_if_body_matches_regexp"), p.FailIfBodyMatchesRegexp); err != nil {
		return err
	}
	if err := compileAll(yamldoc.At(path, "fail_if_body_not_matches_regexp"), p.FailIfBodyNotMatchesRegexp); err != nil {
		return err
	}
	for key, matchers := range orderedPairs(
		"fail_if_header_matches", p.FailIfHeaderMatchesRegexp,
		"fail_if_header_not_matches", p.FailIfHeaderNotMatchesRegexp,
	) {
		for i := range matchers {
			if err := matchers[i].validate(yamldoc.At(path, key, i)); err != nil {
				return err
			}
		}
	}
	for key, prog := range orderedPairs(
		"fail_if_body_json_matches_cel", p.FailIfBodyJSONMatchesCEL,
		"fail_if_body_json_not_matches_cel", p.FailIfBodyJSONNotMatchesCEL,
	) {
		if prog == nil {
			continue
		}
		if err := prog.compile(); err != nil {
			return yamldoc.Fail(yamldoc.At(path, key), "CEL expression %q does not compile: %w", prog.expression, err)
		}
	}
	return nil
}

// orderedPairs yields two keyed values in order, so that validation reports
// the first error of a document deterministically.
func orderedPairs[V any](k1 string, v1 V, k2 string, v2 V) func(func(string, V) bool) {
	return func(yield func(string, V) bool) {
		_ = yield(k1, v1) && yield(k2, v2)
	}
}

func (p *HTTPProbe) validateHTTP3(path []any) error {
	wantsHTTP3 := slices.Contains(p.ValidHTTPVersions, "HTTP/3.0")
	switch {
	case p.EnableHTTP3 && p.HTTPClientConfig.EnableHTTP2:
		return yamldoc.Fail(yamldoc.At(path, "enable_http3"), "enable_http3 needs enable_http2: false (enable_http2 defaults to true)")
	case p.EnableHTTP3 && !wantsHTTP3:
		return yamldoc.Fail(yamldoc.At(path, "valid_http_versions"), `enable_http3 needs valid_http_versions: ["HTTP/3.0"]`)
	case p.EnableHTTP3 && len(p.ValidHTTPVersions) > 1:
		return yamldoc.Fail(yamldoc.At(path, "valid_http_versions"), "with enable_http3, HTTP/3.0 must be the only valid HTTP version, got %s", strings.Join(p.ValidHTTPVersions, ", "))
	case !p.EnableHTTP3 && wantsHTTP3:
		return yamldoc.Fail(yamldoc.At(path, "valid_http_versions"), "HTTP/3.0 is a valid version but enable_http3 is not set")
	}
	return nil
}

func (h *HeaderMatch) validate(path []any) error {
	if h.Header == "" {
		return yamldoc.Fail(yamldoc.At(path, "header"), "header name must be set for an HTTP header matcher")
	}
	if !h.Regexp.IsSet() {
		return yamldoc.Fail(yamldoc.At(path, "regexp"), "regexp must be set for the HTTP header matcher of %q", h.Header)
	}
	if err := h.Regexp.compile(); err != nil {
		return yamldoc.Fail(yamldoc.At(path, "regexp"), "regexp %q does not compile: %w", h.Regexp.original, err)
	}
	return nil
}

var compressions = []string{"gzip", "br", "deflate", "identity"}

// validateCompression checks that the configured decompression is one the
// Accept-Encoding header (if any) lets the server choose.
func validateCompression(path []any, compression string, headers map[string]string) error {
	if compression == "" {
		return nil
	}
	if !slices.Contains(compressions, compression) {
		return yamldoc.Fail(yamldoc.At(path, "compression"), "unknown compression %q (known: %s)", compression, strings.Join(compressions, ", "))
	}
	for key, value := range headers {
		// An empty Accept-Encoding constrains nothing here, as in
		// blackbox_exporter.
		if textproto.CanonicalMIMEHeaderKey(key) != "Accept-Encoding" || strings.TrimSpace(value) == "" {
			continue
		}
		if !acceptsEncoding(value, compression) {
			return yamldoc.Fail(yamldoc.At(path, "headers", key), "compression %q contradicts the header \"%s: %s\": the server may not send %s", compression, key, value, compression)
		}
	}
	return nil
}

// acceptsEncoding reports whether an Accept-Encoding value allows enc with a
// non-zero quality, directly or through "*".
func acceptsEncoding(header, enc string) bool {
	wildcard := false
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, params, err := mime.ParseMediaType("x/" + part)
		q := 1.0
		if err == nil {
			name = strings.TrimPrefix(name, "x/")
			if v, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		} else {
			name, _, _ = strings.Cut(part, ";")
			name = strings.TrimSpace(name)
		}
		name = strings.ToLower(name)
		switch name {
		case enc:
			return q > 0
		case "*":
			wildcard = q > 0
		}
	}
	return wildcard
}

func (p *TCPProbe) validate(path []any) error {
	if err := validateIPProtocol(path, p.IPProtocol); err != nil {
		return err
	}
	if err := validateSourceIP(path, p.SourceIPAddress); err != nil {
		return err
	}
	return validateQueryResponses(path, p.QueryResponse)
}

// validateQueryResponses checks the query_response steps of a tcp or
// unix module and compiles their expect regexps.
func validateQueryResponses(path []any, qrs []QueryResponse) error {
	for i := range qrs {
		qr := &qrs[i]
		qpath := yamldoc.At(path, "query_response", i)
		if qr.Expect.IsSet() && qr.ExpectBytes != "" {
			return yamldoc.Fail(qpath, "expect and expect_bytes are both set; use one")
		}
		if qr.Expect.IsSet() {
			if err := qr.Expect.compile(); err != nil {
				return yamldoc.Fail(yamldoc.At(qpath, "expect"), "regexp %q does not compile: %w", qr.Expect.original, err)
			}
		}
		for j, l := range qr.Labels {
			if l.Name == "" {
				return yamldoc.Fail(yamldoc.At(qpath, "labels", j, "name"), "label name must be set")
			}
		}
	}
	return nil
}

func (p *ICMPProbe) validate(path []any) error {
	if err := validateIPProtocol(path, p.IPProtocol); err != nil {
		return err
	}
	if err := validateSourceIP(path, p.SourceIPAddress); err != nil {
		return err
	}
	if p.TTL < 0 {
		return yamldoc.Fail(yamldoc.At(path, "ttl"), "ttl must not be negative, got %d", p.TTL)
	}
	if p.TTL > 255 {
		return yamldoc.Fail(yamldoc.At(path, "ttl"), "ttl must not exceed 255, got %d", p.TTL)
	}
	if p.PayloadSize < 0 || p.PayloadSize > 65000 {
		return yamldoc.Fail(yamldoc.At(path, "payload_size"), "payload_size must be between 0 and 65000, got %d", p.PayloadSize)
	}
	return nil
}

func (p *DNSProbe) validate(path []any) error {
	if err := validateIPProtocol(path, p.IPProtocol); err != nil {
		return err
	}
	if err := validateSourceIP(path, p.SourceIPAddress); err != nil {
		return err
	}
	if p.QueryName == "" {
		return yamldoc.Fail(yamldoc.At(path, "query_name"), "query_name must be set for a dns module")
	}
	if _, ok := dns.StringToClass[p.QueryClass]; p.QueryClass != "" && !ok {
		return yamldoc.Fail(yamldoc.At(path, "query_class"), "unknown DNS class %q", p.QueryClass)
	}
	if _, ok := dns.StringToType[p.QueryType]; p.QueryType != "" && !ok {
		return yamldoc.Fail(yamldoc.At(path, "query_type"), "unknown DNS type %q", p.QueryType)
	}
	switch p.TransportProtocol {
	case "", "udp", "tcp":
	default:
		return yamldoc.Fail(yamldoc.At(path, "transport_protocol"), "unknown transport protocol %q (use udp or tcp)", p.TransportProtocol)
	}
	if p.RetryTruncatedOverTCP && p.TransportProtocol == "tcp" {
		return yamldoc.Fail(yamldoc.At(path, "retry_truncated_over_tcp"), "retry_truncated_over_tcp applies to transport_protocol: udp only")
	}
	if p.DNSOverTLS && p.TransportProtocol != "tcp" {
		return yamldoc.Fail(yamldoc.At(path, "dns_over_tls"), "dns_over_tls needs transport_protocol: tcp")
	}
	for i, rc := range p.ValidRcodes {
		if _, ok := dns.StringToRcode[rc]; !ok {
			return yamldoc.Fail(yamldoc.At(path, "valid_rcodes", i), "unknown DNS rcode %q", rc)
		}
	}
	if err := p.ValidateAnswer.validate(yamldoc.At(path, "validate_answer_rrs")); err != nil {
		return err
	}
	if err := p.ValidateAuthority.validate(yamldoc.At(path, "validate_authority_rrs")); err != nil {
		return err
	}
	return p.ValidateAdditional.validate(yamldoc.At(path, "validate_additional_rrs"))
}

func (v *DNSRRValidator) validate(path []any) error {
	for key, res := range orderedPairs(
		"fail_if_matches_regexp", v.FailIfMatchesRegexp,
		"fail_if_all_match_regexp", v.FailIfAllMatchRegexp,
	) {
		if err := compileAll(yamldoc.At(path, key), res); err != nil {
			return err
		}
	}
	for key, res := range orderedPairs(
		"fail_if_not_matches_regexp", v.FailIfNotMatchesRegexp,
		"fail_if_none_matches_regexp", v.FailIfNoneMatchesRegexp,
	) {
		if err := compileAll(yamldoc.At(path, key), res); err != nil {
			return err
		}
	}
	return nil
}

func (p *GRPCProbe) validate(path []any) error {
	if err := validateIPProtocol(path, p.PreferredIPProtocol); err != nil {
		return err
	}
	return validateSourceIP(path, p.SourceIPAddress)
}

func (p *WebsocketProbe) validate(path []any) error {
	hpath := yamldoc.At(path, "http_config")
	hc := &p.HTTPClientConfig
	if b := hc.BasicAuth; b != nil && (b.Username == "" || (b.Password == "" && b.PasswordFile == "")) {
		return yamldoc.Fail(yamldoc.At(hpath, "basic_auth"), "basic_auth needs both username and password")
	}
	if hc.BearerToken != "" && strings.TrimSpace(string(hc.BearerToken)) == "" {
		return yamldoc.Fail(yamldoc.At(hpath, "bearer_token"), "bearer_token is only whitespace")
	}
	for name, values := range hc.Headers {
		if !httpguts.ValidHeaderFieldName(name) {
			return yamldoc.Fail(yamldoc.At(hpath, "headers"), "header name %q is not valid", name)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return yamldoc.Fail(yamldoc.At(hpath, "headers", name), "value of header %q has a control character or line break", name)
			}
		}
	}
	for i, qr := range p.QueryResponse {
		qpath := yamldoc.At(path, "query_response", i)
		switch {
		case qr.ExpectBytes != "":
			return yamldoc.Fail(yamldoc.At(qpath, "expect_bytes"), "the websocket prober matches messages with expect; expect_bytes is for tcp and unix")
		case qr.StartTLS:
			return yamldoc.Fail(yamldoc.At(qpath, "starttls"), "the websocket prober has no starttls; use a wss:// target")
		case len(qr.Labels) > 0:
			return yamldoc.Fail(yamldoc.At(qpath, "labels"), "the websocket prober exports no probe_expect_info; labels are for tcp and unix")
		}
	}
	return validateQueryResponses(path, p.QueryResponse)
}
