package confirm

// Verdict is what the locations' answers about a target say, under the
// confirmation rule.
type Verdict int

// The verdicts.
const (
	// VerdictUnknown: too many locations could not tell to decide.
	VerdictUnknown Verdict = iota
	// VerdictDown: at least min_failing_locations saw the target fail.
	VerdictDown
	// VerdictUp: even if every location that could not tell were
	// failing, fewer than min_failing_locations would be.
	VerdictUp
)

// String names the verdict.
func (v Verdict) String() string {
	switch v {
	case VerdictDown:
		return "down"
	case VerdictUp:
		return "up"
	default:
		return "unknown"
	}
}

// Decide is the confirmation rule, the one place it is written: need is
// min_failing_locations, failing and unknown count the locations that saw
// the target fail and those that could not tell. Locations that saw it
// succeed only matter by not being in either count.
func Decide(need, failing, unknown int) Verdict {
	switch {
	case failing >= need:
		return VerdictDown
	case failing+unknown < need:
		return VerdictUp
	default:
		return VerdictUnknown
	}
}
