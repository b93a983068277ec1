// Package config holds the YAML schema of vantage: probe modules (a superset of
// blackbox_exporter's), with strict loading, defaults and validation.
package config

import (
	"regexp"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/alecthomas/units"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/prober/endpoint"
)

// Probers lists the prober names a module may use.
var Probers = endpoint.Probers

// Defaults, matching blackbox_exporter's.
var (
	DefaultModule = Module{
		HTTP: DefaultHTTPProbe,
		TCP:  DefaultTCPProbe,
		ICMP: DefaultICMPProbe,
		DNS:  DefaultDNSProbe,
		GRPC: DefaultGRPCProbe,

		HTTPSteps: DefaultHTTPStepsProbe,
	}
	DefaultHTTPProbe = HTTPProbe{
		IPProtocolFallback: true,
		HTTPClientConfig:   promconfig.DefaultHTTPClientConfig,
	}
	DefaultTCPProbe  = TCPProbe{IPProtocolFallback: true}
	DefaultICMPProbe = ICMPProbe{IPProtocolFallback: true, TTL: 64}
	DefaultDNSProbe  = DNSProbe{IPProtocolFallback: true, Recursion: true}
	DefaultGRPCProbe = GRPCProbe{IPProtocolFallback: true}
)

// Config is the whole configuration file.
type Config struct {
	Modules map[string]Module `yaml:"modules"`
	// Scheduler configures continuous checking of Targets and TargetFiles.
	Scheduler SchedulerConfig `yaml:"scheduler"`
	// Cluster configures how the exporters of a location share its
	// targets when they run as a cluster.
	Cluster     ClusterConfig `yaml:"cluster"`
	Targets     []TargetGroup `yaml:"targets,omitempty"`
	TargetFiles []string      `yaml:"target_files,omitempty"`
	// Canary is the connectivity canary of this location, if any.
	Canary *CanaryConfig `yaml:"canary,omitempty"`

	// inline and canary are resolved (and located) during validation.
	inline []ScheduledTarget
	canary *ScheduledTarget
	// discovery holds the groups with discovery by name; discoveryNames
	// lists them in file order.
	discovery      map[string]*discoveryGroup
	discoveryNames []string
}

// Module is one named way of probing a target.
type Module struct {
	Prober  string        `yaml:"prober,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty"`
	HTTP    HTTPProbe     `yaml:"http,omitempty"`
	TCP     TCPProbe      `yaml:"tcp,omitempty"`
	ICMP    ICMPProbe     `yaml:"icmp,omitempty"`
	DNS     DNSProbe      `yaml:"dns,omitempty"`
	GRPC    GRPCProbe     `yaml:"grpc,omitempty"`
	Unix    UnixProbe     `yaml:"unix,omitempty"`
	// Websocket configures the websocket prober (blackbox_exporter's,
	// from after v0.28).
	Websocket WebsocketProbe `yaml:"websocket,omitempty"`
	// HTTPSteps configures the http_steps prober (vantage).
	HTTPSteps HTTPStepsProbe `yaml:"http_steps,omitempty"`
	// Destinations restricts the hosts and addresses the module may probe
	// (vantage); nil, as without the section, restricts nothing.
	Destinations *Destinations `yaml:"destinations,omitempty"`
}

// HTTPProbe configures the http prober.
type HTTPProbe struct {
	ValidStatusCodes             []int                       `yaml:"valid_status_codes,omitempty"`
	ValidHTTPVersions            []string                    `yaml:"valid_http_versions,omitempty"`
	IPProtocol                   string                      `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback           bool                        `yaml:"ip_protocol_fallback"`
	SourceIPAddress              string                      `yaml:"source_ip_address,omitempty"`
	SkipResolvePhaseWithProxy    bool                        `yaml:"skip_resolve_phase_with_proxy,omitempty"`
	NoFollowRedirects            *bool                       `yaml:"no_follow_redirects,omitempty"`
	FailIfSSL                    bool                        `yaml:"fail_if_ssl,omitempty"`
	FailIfNotSSL                 bool                        `yaml:"fail_if_not_ssl,omitempty"`
	Method                       string                      `yaml:"method,omitempty"`
	Headers                      map[string]string           `yaml:"headers,omitempty"`
	FailIfBodyMatchesRegexp      []Regexp                    `yaml:"fail_if_body_matches_regexp,omitempty"`
	FailIfBodyNotMatchesRegexp   []Regexp                    `yaml:"fail_if_body_not_matches_regexp,omitempty"`
	FailIfBodyJSONMatchesCEL     *CELProgram                 `yaml:"fail_if_body_json_matches_cel,omitempty"`
	FailIfBodyJSONNotMatchesCEL  *CELProgram                 `yaml:"fail_if_body_json_not_matches_cel,omitempty"`
	FailIfHeaderMatchesRegexp    []HeaderMatch               `yaml:"fail_if_header_matches,omitempty"`
	FailIfHeaderNotMatchesRegexp []HeaderMatch               `yaml:"fail_if_header_not_matches,omitempty"`
	Body                         string                      `yaml:"body,omitempty"`
	BodyFile                     string                      `yaml:"body_file,omitempty"`
	Compression                  string                      `yaml:"compression,omitempty"`
	BodySizeLimit                units.Base2Bytes            `yaml:"body_size_limit,omitempty"`
	EnableHTTP3                  bool                        `yaml:"enable_http3,omitempty"`
	HTTPClientConfig             promconfig.HTTPClientConfig `yaml:",inline"`
}

// HeaderMatch matches a response header against a regular expression.
type HeaderMatch struct {
	Header       string `yaml:"header,omitempty"`
	Regexp       Regexp `yaml:"regexp,omitempty"`
	AllowMissing bool   `yaml:"allow_missing,omitempty"`
}

// Label is a name/value pair exported on probe_expect_info; the value may
// reference the expect regexp's groups (${1}).
type Label struct {
	Name  string `yaml:"name,omitempty"`
	Value string `yaml:"value,omitempty"`
}

// QueryResponse is one step of a TCP conversation.
type QueryResponse struct {
	Expect      Regexp  `yaml:"expect,omitempty"`
	ExpectBytes string  `yaml:"expect_bytes,omitempty"`
	Labels      []Label `yaml:"labels,omitempty"`
	Send        string  `yaml:"send,omitempty"`
	StartTLS    bool    `yaml:"starttls,omitempty"`
}

// TCPProbe configures the tcp prober.
type TCPProbe struct {
	IPProtocol         string               `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool                 `yaml:"ip_protocol_fallback"`
	SourceIPAddress    string               `yaml:"source_ip_address,omitempty"`
	QueryResponse      []QueryResponse      `yaml:"query_response,omitempty"`
	TLS                bool                 `yaml:"tls,omitempty"`
	TLSConfig          promconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// ICMPProbe configures the icmp prober.
type ICMPProbe struct {
	IPProtocol         string `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool   `yaml:"ip_protocol_fallback"`
	SourceIPAddress    string `yaml:"source_ip_address,omitempty"`
	PayloadSize        int    `yaml:"payload_size,omitempty"`
	DontFragment       bool   `yaml:"dont_fragment,omitempty"`
	TTL                int    `yaml:"ttl,omitempty"`
	// Packets is how many echo requests a probe sends (vantage); 0 or 1
	// sends one, as blackbox_exporter.
	Packets int `yaml:"packets,omitempty"`
	// PacketInterval is the wait between two echo requests of a probe
	// (vantage); 0 means DefaultPacketInterval.
	PacketInterval time.Duration `yaml:"packet_interval,omitempty"`
}

// DNSProbe configures the dns prober.
type DNSProbe struct {
	IPProtocol         string               `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool                 `yaml:"ip_protocol_fallback"`
	DNSOverTLS         bool                 `yaml:"dns_over_tls,omitempty"`
	TLSConfig          promconfig.TLSConfig `yaml:"tls_config,omitempty"`
	SourceIPAddress    string               `yaml:"source_ip_address,omitempty"`
	TransportProtocol  string               `yaml:"transport_protocol,omitempty"`
	QueryClass         string               `yaml:"query_class,omitempty"`
	QueryName          string               `yaml:"query_name,omitempty"`
	QueryType          string               `yaml:"query_type,omitempty"`
	Recursion          bool                 `yaml:"recursion_desired"`
	ValidRcodes        []string             `yaml:"valid_rcodes,omitempty"`
	ValidateAnswer     DNSRRValidator       `yaml:"validate_answer_rrs,omitempty"`
	ValidateAuthority  DNSRRValidator       `yaml:"validate_authority_rrs,omitempty"`
	ValidateAdditional DNSRRValidator       `yaml:"validate_additional_rrs,omitempty"`
	// RetryTruncatedOverTCP repeats a query over TCP when the UDP answer
	// has the TC (truncated) bit set (vantage).
	RetryTruncatedOverTCP bool `yaml:"retry_truncated_over_tcp,omitempty"`
}

// DNSRRValidator checks the records of one section of a DNS answer.
type DNSRRValidator struct {
	FailIfMatchesRegexp     []Regexp `yaml:"fail_if_matches_regexp,omitempty"`
	FailIfAllMatchRegexp    []Regexp `yaml:"fail_if_all_match_regexp,omitempty"`
	FailIfNotMatchesRegexp  []Regexp `yaml:"fail_if_not_matches_regexp,omitempty"`
	FailIfNoneMatchesRegexp []Regexp `yaml:"fail_if_none_matches_regexp,omitempty"`
}

// GRPCProbe configures the grpc prober.
type GRPCProbe struct {
	Service             string               `yaml:"service,omitempty"`
	TLS                 bool                 `yaml:"tls,omitempty"`
	TLSConfig           promconfig.TLSConfig `yaml:"tls_config,omitempty"`
	IPProtocolFallback  bool                 `yaml:"ip_protocol_fallback"`
	PreferredIPProtocol string               `yaml:"preferred_ip_protocol,omitempty"`
	SourceIPAddress     string               `yaml:"source_ip_address,omitempty"`
	Metadata            map[string]Strings   `yaml:"metadata,omitempty"`
}

// UnixProbe configures the unix prober: a conversation over a unix
// domain socket, as the tcp prober has over TCP.
type UnixProbe struct {
	QueryResponse []QueryResponse      `yaml:"query_response,omitempty"`
	TLS           bool                 `yaml:"tls,omitempty"`
	TLSConfig     promconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// WebsocketProbe configures the websocket prober: an upgrade handshake,
// then messages sent and expected in order.
type WebsocketProbe struct {
	HTTPClientConfig WebsocketHTTPConfig `yaml:"http_config,omitempty"`
	QueryResponse    []QueryResponse     `yaml:"query_response,omitempty"`
}

// WebsocketHTTPConfig is the handshake request's authentication, headers
// and TLS.
type WebsocketHTTPConfig struct {
	BasicAuth   *promconfig.BasicAuth `yaml:"basic_auth,omitempty"`
	BearerToken promconfig.Secret     `yaml:"bearer_token,omitempty"`
	// Headers are sent with the handshake; a header may have one value or
	// a list of them.
	Headers   map[string]Strings   `yaml:"headers,omitempty"`
	TLSConfig promconfig.TLSConfig `yaml:"tls_config,omitempty"`
}

// UnmarshalYAML sets the module defaults before decoding.
func (m *Module) UnmarshalYAML(unmarshal func(any) error) error {
	*m = DefaultModule
	type plain Module
	return unmarshal((*plain)(m))
}

// UnmarshalYAML sets the http defaults before decoding.
func (p *HTTPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultHTTPProbe
	type plain HTTPProbe
	if err := unmarshal((*plain)(p)); err != nil {
		return err
	}
	if p.NoFollowRedirects != nil {
		p.HTTPClientConfig.FollowRedirects = !*p.NoFollowRedirects
	}
	return nil
}

// UnmarshalYAML sets the tcp defaults before decoding.
func (p *TCPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultTCPProbe
	type plain TCPProbe
	return unmarshal((*plain)(p))
}

// UnmarshalYAML sets the icmp defaults before decoding.
func (p *ICMPProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultICMPProbe
	type plain ICMPProbe
	return unmarshal((*plain)(p))
}

// UnmarshalYAML sets the dns defaults before decoding.
func (p *DNSProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultDNSProbe
	type plain DNSProbe
	return unmarshal((*plain)(p))
}

// UnmarshalYAML sets the grpc defaults before decoding.
func (p *GRPCProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultGRPCProbe
	type plain GRPCProbe
	return unmarshal((*plain)(p))
}

// Regexp is a regular expression kept with its source text so the loaded
// config can be shown as written. It is compiled during validation.
type Regexp struct {
	*regexp.Regexp
	original string
}

// NewRegexp compiles s.
func NewRegexp(s string) (Regexp, error) {
	re, err := regexp.Compile(s)
	return Regexp{Regexp: re, original: s}, err
}

// String returns the expression as written.
func (re Regexp) String() string { return re.original }

// IsSet reports whether an expression was configured.
func (re Regexp) IsSet() bool { return re.original != "" }

// UnmarshalYAML keeps the source text; validate compiles it, so the error can
// name the field and line.
func (re *Regexp) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	*re = Regexp{original: s}
	return nil
}

// MarshalYAML shows the expression as written. An empty expression is a
// valid one (it matches everything) and stays "" rather than null, which
// would drop it from a list; unset fields are left out by omitempty.
func (re Regexp) MarshalYAML() (any, error) {
	return re.original, nil
}

func (re *Regexp) compile() error {
	c, err := regexp.Compile(re.original)
	if err != nil {
		return err
	}
	re.Regexp = c
	return nil
}

// CELProgram is a CEL expression evaluated against a JSON response body,
// bound to the variable "body". It is compiled during validation.
type CELProgram struct {
	cel.Program
	expression string
}

// NewCELProgram compiles expr.
func NewCELProgram(expr string) (CELProgram, error) {
	p := CELProgram{expression: expr}
	return p, p.compile()
}

// String returns the expression as written.
func (c CELProgram) String() string { return c.expression }

// UnmarshalYAML keeps the source text; validate compiles it.
func (c *CELProgram) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	*c = CELProgram{expression: s}
	return nil
}

// MarshalYAML shows the expression as written.
func (c CELProgram) MarshalYAML() (any, error) { return c.expression, nil }

func (c *CELProgram) compile() error {
	env, err := cel.NewEnv(cel.Variable("body", cel.DynType))
	if err != nil {
		return err
	}
	ast, iss := env.Compile(c.expression)
	if iss != nil && iss.Err() != nil {
		return iss.Err()
	}
	prg, err := env.Program(ast, cel.InterruptCheckFrequency(100))
	if err != nil {
		return err
	}
	c.Program = prg
	return nil
}

// Strings accepts either one string or a list of strings.
type Strings []string

// UnmarshalYAML accepts a scalar or a sequence.
func (s *Strings) UnmarshalYAML(unmarshal func(any) error) error {
	var one string
	if err := unmarshal(&one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := unmarshal(&many); err != nil {
		return err
	}
	*s = many
	return nil
}
