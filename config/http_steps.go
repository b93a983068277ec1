package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/alecthomas/units"
	promconfig "github.com/prometheus/common/config"

	"github.com/vantageprobe/vantage/internal/yamldoc"
)

// DefaultStepBodySizeLimit bounds each step's response body when the step
// sets no body_size_limit: the body is held in memory for the step's
// assertions and captures.
const DefaultStepBodySizeLimit = units.MiB

// TargetVariable is the variable every step may use: the probe's target.
const TargetVariable = "target"

// DefaultHTTPStepsProbe holds the http_steps defaults, those of http.
var DefaultHTTPStepsProbe = HTTPStepsProbe{
	IPProtocolFallback: true,
	HTTPClientConfig:   promconfig.DefaultHTTPClientConfig,
}

// HTTPStepsProbe configures the http_steps prober: requests made in order,
// each with its assertions, passing values captured from one response to
// the requests after it (vantage).
type HTTPStepsProbe struct {
	IPProtocol         string `yaml:"preferred_ip_protocol,omitempty"`
	IPProtocolFallback bool   `yaml:"ip_protocol_fallback"`
	SourceIPAddress    string `yaml:"source_ip_address,omitempty"`
	// Secrets are variables read from files, by name, at every probe.
	Secrets map[string]string `yaml:"secrets,omitempty"`
	Steps   []HTTPStep        `yaml:"steps,omitempty"`
	// HTTPClientConfig is shared by every step: TLS, authentication,
	// proxy, redirects, HTTP/2.
	HTTPClientConfig promconfig.HTTPClientConfig `yaml:",inline"`
}

// HTTPStep is one request of an http_steps module. url, headers and body
// may use ${name} variables: target, a secret, or a capture of an earlier
// step; $${ stands for a literal ${.
type HTTPStep struct {
	Name    string            `yaml:"name,omitempty"`
	Method  string            `yaml:"method,omitempty"`
	URL     string            `yaml:"url,omitempty"`
	Headers map[string]string `yaml:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty"`

	ValidStatusCodes             []int            `yaml:"valid_status_codes,omitempty"`
	FailIfBodyMatchesRegexp      []Regexp         `yaml:"fail_if_body_matches_regexp,omitempty"`
	FailIfBodyNotMatchesRegexp   []Regexp         `yaml:"fail_if_body_not_matches_regexp,omitempty"`
	FailIfBodyJSONMatchesCEL     *CELProgram      `yaml:"fail_if_body_json_matches_cel,omitempty"`
	FailIfBodyJSONNotMatchesCEL  *CELProgram      `yaml:"fail_if_body_json_not_matches_cel,omitempty"`
	FailIfHeaderMatchesRegexp    []HeaderMatch    `yaml:"fail_if_header_matches,omitempty"`
	FailIfHeaderNotMatchesRegexp []HeaderMatch    `yaml:"fail_if_header_not_matches,omitempty"`
	BodySizeLimit                units.Base2Bytes `yaml:"body_size_limit,omitempty"`

	Capture []StepCapture `yaml:"capture,omitempty"`
}

// StepCapture takes a value from a step's response into a variable: the
// result of a CEL expression on the JSON body (cel), the first group of a
// regexp on the body (regexp), or a header's value (header), optionally
// narrowed by regexp.
type StepCapture struct {
	Name   string      `yaml:"name,omitempty"`
	CEL    *CELProgram `yaml:"cel,omitempty"`
	Regexp Regexp      `yaml:"regexp,omitempty"`
	Header string      `yaml:"header,omitempty"`
}

// UnmarshalYAML sets the http_steps defaults before decoding.
func (p *HTTPStepsProbe) UnmarshalYAML(unmarshal func(any) error) error {
	*p = DefaultHTTPStepsProbe
	type plain HTTPStepsProbe
	return unmarshal((*plain)(p))
}

// Limit is the step's body size limit, DefaultStepBodySizeLimit unless set.
func (s HTTPStep) Limit() units.Base2Bytes {
	if s.BodySizeLimit > 0 {
		return s.BodySizeLimit
	}
	return DefaultStepBodySizeLimit
}

// HTTPProbe is the http prober configuration one step runs with: the
// module's client settings with the step's request and assertions.
// Headers and body are the step's templates, expanded per probe.
func (p *HTTPStepsProbe) HTTPProbe(s *HTTPStep) HTTPProbe {
	h := DefaultHTTPProbe
	h.IPProtocol, h.IPProtocolFallback, h.SourceIPAddress = p.IPProtocol, p.IPProtocolFallback, p.SourceIPAddress
	h.HTTPClientConfig = p.HTTPClientConfig
	h.Method, h.Headers, h.Body = s.Method, s.Headers, s.Body
	h.ValidStatusCodes = s.ValidStatusCodes
	h.FailIfBodyMatchesRegexp, h.FailIfBodyNotMatchesRegexp = s.FailIfBodyMatchesRegexp, s.FailIfBodyNotMatchesRegexp
	h.FailIfBodyJSONMatchesCEL, h.FailIfBodyJSONNotMatchesCEL = s.FailIfBodyJSONMatchesCEL, s.FailIfBodyJSONNotMatchesCEL
	h.FailIfHeaderMatchesRegexp, h.FailIfHeaderNotMatchesRegexp = s.FailIfHeaderMatchesRegexp, s.FailIfHeaderNotMatchesRegexp
	h.BodySizeLimit = s.Limit()
	return h
}

// validate checks the module's client settings and every step, each step's
// variables against the target, the secrets and the captures of the steps
// before it.
func (p *HTTPStepsProbe) validate(path []any) error {
	if len(p.Steps) == 0 {
		return yamldoc.Fail(yamldoc.At(path, "steps"), "steps must list at least one request")
	}
	client := p.HTTPProbe(&HTTPStep{})
	if err := client.validate(path); err != nil {
		return err
	}
	known := map[string]string{TargetVariable: "the probe's target"}
	for _, name := range sortedKeys(p.Secrets) {
		if err := validateVariableName(yamldoc.At(path, "secrets", name), name, known); err != nil {
			return err
		}
		if p.Secrets[name] == "" {
			return yamldoc.Fail(yamldoc.At(path, "secrets", name), "secret %q names no file", name)
		}
		known[name] = "a secret"
	}
	names := map[string]bool{}
	for i := range p.Steps {
		s := &p.Steps[i]
		spath := yamldoc.At(path, "steps", i)
		if s.Name == "" {
			return yamldoc.Fail(yamldoc.At(spath, "name"), "every step needs a name (the step label of its series)")
		}
		if names[s.Name] {
			return yamldoc.Fail(yamldoc.At(spath, "name"), "step name %q is used twice", s.Name)
		}
		names[s.Name] = true
		if err := s.validate(spath, p, known); err != nil {
			return err
		}
		for j, c := range s.Capture {
			if err := validateVariableName(yamldoc.At(spath, "capture", j, "name"), c.Name, known); err != nil {
				return err
			}
			known[c.Name] = fmt.Sprintf("captured by step %q", s.Name)
		}
	}
	return nil
}

func (s *HTTPStep) validate(path []any, p *HTTPStepsProbe, known map[string]string) error {
	h := p.HTTPProbe(s)
	// h shares the assertions' storage with s: validating h compiles them.
	if err := h.validate(path); err != nil {
		return err
	}
	if err := checkVariables(yamldoc.At(path, "url"), s.URL, known); err != nil {
		return err
	}
	if u := ExpandVariables(s.URL, func(string) string { return "x" }); s.URL != "" {
		if _, err := url.Parse(u); err != nil {
			return yamldoc.Fail(yamldoc.At(path, "url"), "%q is not a URL: %v", s.URL, err)
		}
	}
	for _, k := range sortedKeys(s.Headers) {
		if err := checkVariables(yamldoc.At(path, "headers", k), s.Headers[k], known); err != nil {
			return err
		}
	}
	if err := checkVariables(yamldoc.At(path, "body"), s.Body, known); err != nil {
		return err
	}
	for j := range s.Capture {
		if err := s.Capture[j].validate(yamldoc.At(path, "capture", j)); err != nil {
			return err
		}
	}
	return nil
}

func (c *StepCapture) validate(path []any) error {
	sources := 0
	for _, set := range []bool{c.CEL != nil, c.Header != "", c.Regexp.IsSet() && c.Header == ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return yamldoc.Fail(path, "capture %q needs exactly one of cel (on the JSON body), regexp (on the body) or header (optionally with regexp)", c.Name)
	}
	if c.CEL != nil {
		if err := c.CEL.compile(); err != nil {
			return yamldoc.Fail(yamldoc.At(path, "cel"), "CEL expression %q does not compile: %w", c.CEL.expression, err)
		}
	}
	if c.Regexp.IsSet() {
		if err := c.Regexp.compile(); err != nil {
			return yamldoc.Fail(yamldoc.At(path, "regexp"), "regexp %q does not compile: %w", c.Regexp.original, err)
		}
	}
	return nil
}

// isVariableName reports whether s may name a variable: a letter or _,
// then letters, digits or _.
func isVariableName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && (i == 0 || !(r >= '0' && r <= '9')) {
			return false
		}
	}
	return true
}

func validateVariableName(path []any, name string, known map[string]string) error {
	if !isVariableName(name) {
		return yamldoc.Fail(path, "%q is not a variable name (a letter or _, then letters, digits or _)", name)
	}
	if what, ok := known[name]; ok {
		return yamldoc.Fail(path, "variable %q is already defined (%s)", name, what)
	}
	return nil
}

// checkVariables checks that every variable s uses is known.
func checkVariables(path []any, s string, known map[string]string) error {
	vars, err := Variables(s)
	if err != nil {
		return yamldoc.Fail(path, "%v", err)
	}
	for _, v := range vars {
		if _, ok := known[v]; !ok {
			defined := make([]string, 0, len(known))
			for k := range known {
				defined = append(defined, k)
			}
			slices.Sort(defined)
			return yamldoc.Fail(path, "variable ${%s} is not captured by an earlier step nor a secret (defined here: %s)", v, strings.Join(defined, ", "))
		}
	}
	return nil
}

// Variables lists the ${name} variables s uses, in order.
func Variables(s string) ([]string, error) {
	var out []string
	var bad error
	_, closed := expandVariables(s, func(name string) string {
		if !isVariableName(name) && bad == nil {
			bad = fmt.Errorf("${%s} is not a variable (names are a letter or _, then letters, digits or _; write $${ for a literal ${)", name)
		}
		out = append(out, name)
		return ""
	})
	if bad == nil && !closed {
		bad = fmt.Errorf("%q has a ${ without its closing }", s)
	}
	return out, bad
}

// ExpandVariables replaces every ${name} of s with value(name) and $${
// with ${; an unclosed ${ stays as it is.
func ExpandVariables(s string, value func(string) string) string {
	out, _ := expandVariables(s, value)
	return out
}

// expandVariables expands s; closed is false when a ${ has no closing }.
func expandVariables(s string, value func(string) string) (out string, closed bool) {
	if !strings.Contains(s, "${") {
		return s, true
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			b.WriteString(s)
			return b.String(), false
		}
		b.WriteString(s[:i])
		b.WriteString(value(s[i+2 : i+2+end]))
		s = s[i+2+end+1:]
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
