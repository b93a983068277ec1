package confirm

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/vantageprobe/vantage/prober/result"
)

// An open incident keeps up to maxEvidence pieces of evidence, and a
// coordinator may hold 100,000 open incidents: evidence is kept compact.
// Its phases are a sorted slice rather than a map, phase names and
// failure reasons are shared constants rather than copies decoded from
// each report, and error texts are interned.

// Phases are a check's phase durations in seconds, sorted by phase name.
// In JSON they are an object of name to seconds, as a map would be.
type Phases []PhaseSeconds

// PhaseSeconds is one phase's duration in seconds. Its name is a pointer
// to a shared copy (16 bytes a phase instead of 24: every piece of
// evidence in memory has about five).
type PhaseSeconds struct {
	name    *string
	Seconds float64
}

// Name is the phase's name.
func (ps PhaseSeconds) Name() string { return *ps.name }

func comparePhase(ps PhaseSeconds, name string) int { return strings.Compare(*ps.name, name) }

// Get returns the phase's duration in seconds, 0 when it was not
// recorded.
func (p Phases) Get(name string) float64 {
	if i, ok := slices.BinarySearchFunc(p, name, comparePhase); ok {
		return p[i].Seconds
	}
	return 0
}

// phasesFrom reads a result's phases, with names shared when known.
func phasesFrom(ps []result.Phase) Phases {
	if len(ps) == 0 {
		return nil
	}
	out := make(Phases, 0, len(ps))
	for _, p := range ps {
		out = out.With(p.Name, p.Duration.Seconds())
	}
	return out
}

// With sets a phase's seconds, keeping the order; a phase named twice
// keeps the later value, as a map would.
func (p Phases) With(name string, seconds float64) Phases {
	i, ok := slices.BinarySearchFunc(p, name, comparePhase)
	if ok {
		p[i].Seconds = seconds
		return p
	}
	return slices.Insert(p, i, PhaseSeconds{name: internPhase(name), Seconds: seconds})
}

// MarshalJSON writes the phases as an object, in name order, with the
// numbers written as encoding/json writes a float64.
func (p Phases) MarshalJSON() ([]byte, error) {
	if p == nil {
		return []byte("null"), nil
	}
	b := append(make([]byte, 0, 24*len(p)+2), '{')
	for i, ps := range p {
		if i > 0 {
			b = append(b, ',')
		}
		if plainName(*ps.name) {
			b = append(append(append(b, '"'), *ps.name...), '"', ':')
		} else {
			name, err := json.Marshal(*ps.name)
			if err != nil {
				return nil, err
			}
			b = append(append(b, name...), ':')
		}
		if math.IsNaN(ps.Seconds) || math.IsInf(ps.Seconds, 0) {
			return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(ps.Seconds, 'g', -1, 64)}
		}
		b = appendJSONFloat(b, ps.Seconds)
	}
	return append(b, '}'), nil
}

// plainName: the name needs no escaping in JSON (the probers' phase
// names).
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// appendJSONFloat formats f as encoding/json does (ES6 number to string).
func appendJSONFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// UnmarshalJSON reads an object of name to seconds.
func (p *Phases) UnmarshalJSON(data []byte) error {
	var m map[string]float64
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	if m == nil {
		*p = nil
		return nil
	}
	out := make(Phases, 0, len(m))
	for name, s := range m {
		out = append(out, PhaseSeconds{name: internPhase(name), Seconds: s})
	}
	slices.SortFunc(out, func(a, b PhaseSeconds) int { return strings.Compare(*a.name, *b.name) })
	*p = out
	return nil
}

// phaseNames are the phase names the probers record.
var phaseNames = []string{"check", "connect", "processing", "request", "resolve", "rtt", "setup", "tls", "transfer"}

// internPhase returns the shared copy of a known phase name, and a copy
// of its own of any other.
func internPhase(name string) *string {
	if i, ok := slices.BinarySearch(phaseNames, name); ok {
		return &phaseNames[i]
	}
	name = strings.Clone(name)
	return &name
}

// internReason returns the shared copy of a known failure reason.
func internReason(r result.Reason) result.Reason {
	if i := slices.Index(result.Reasons, r); i >= 0 {
		return result.Reasons[i]
	}
	return r
}
