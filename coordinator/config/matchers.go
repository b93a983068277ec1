package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// MatchType is how a matcher compares a label's value, as Alertmanager's
// matchers do.
type MatchType string

// The match types.
const (
	MatchEqual     MatchType = "="
	MatchNotEqual  MatchType = "!="
	MatchRegexp    MatchType = "=~"
	MatchNotRegexp MatchType = "!~"
)

// Matcher selects targets by one label, written as Alertmanager's
// matchers are: name="value", name!="value", name=~"regexp",
// name!~"regexp". The labels of a target are target, module and the
// target's own labels; a label a target lacks has the empty value.
// Regular expressions are anchored at both ends.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

var (
	matcherRE     = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(".*")\s*$`)
	matcherNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// ParseMatcher reads one matcher such as target=~"https://.*\.example".
func ParseMatcher(s string) (*Matcher, error) {
	m := matcherRE.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("invalid matcher %q: want name=\"value\", name!=\"value\", name=~\"regexp\" or name!~\"regexp\"", s)
	}
	value, err := strconv.Unquote(m[3])
	if err != nil {
		return nil, fmt.Errorf("invalid matcher %q: the value is not a valid double-quoted string", s)
	}
	out := &Matcher{Name: m[1], Type: MatchType(m[2]), Value: value}
	if out.Name == "location" {
		// A target is checked from every location: a location is no
		// label of it.
		return nil, fmt.Errorf("invalid matcher %q: location is not a label of targets; match on target, module or the targets' labels", s)
	}
	if out.Type == MatchRegexp || out.Type == MatchNotRegexp {
		if out.re, err = regexp.Compile("^(?:" + value + ")$"); err != nil {
			return nil, fmt.Errorf("invalid matcher %q: %w", s, err)
		}
	}
	return out, nil
}

// Matches reports whether value satisfies the matcher.
func (m *Matcher) Matches(value string) bool {
	switch m.Type {
	case MatchEqual:
		return value == m.Value
	case MatchNotEqual:
		return value != m.Value
	case MatchRegexp:
		return m.re.MatchString(value)
	default:
		return !m.re.MatchString(value)
	}
}

func (m *Matcher) String() string { return m.Name + string(m.Type) + strconv.Quote(m.Value) }

// Matchers select a target when every one of them matches.
type Matchers []*Matcher

// ParseMatchers reads a list of matchers; at least one is needed, so that
// a list never selects every target by mistake.
func ParseMatchers(list []string) (Matchers, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("at least one matcher is needed")
	}
	out := make(Matchers, 0, len(list))
	for _, s := range list {
		m, err := ParseMatcher(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// Matches reports whether labels satisfy every matcher; label returns a
// target's value of a label ("" when it has none).
func (ms Matchers) Matches(label func(name string) string) bool {
	for _, m := range ms {
		if !m.Matches(label(m.Name)) {
			return false
		}
	}
	return true
}

func (ms Matchers) String() string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return "{" + strings.Join(s, ", ") + "}"
}
