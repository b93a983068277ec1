package webserver

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/alecthomas/kingpin/v2"
)

// SecondsVar makes a flag take a duration as blackbox_exporter's flags
// take one, in seconds ("0.5", "30"), or as a Go duration ("500ms").
func SecondsVar(s *kingpin.FlagClause, d *time.Duration) {
	s.SetValue(&secondsValue{flag: s.Model().Name, d: d})
}

type secondsValue struct {
	flag string
	d    *time.Duration
}

func (v *secondsValue) Set(s string) error {
	d, err := ParseSeconds(s)
	if err != nil {
		return fmt.Errorf("--%s: %w", v.flag, err)
	}
	*v.d = d
	return nil
}

func (v *secondsValue) String() string { return strconv.FormatFloat(v.d.Seconds(), 'f', -1, 64) }

// ParseSeconds parses a duration given in seconds ("0.5") or as a Go
// duration ("500ms").
func ParseSeconds(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%q is not a number of seconds", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither seconds (0.5) nor a duration (500ms)", s)
	}
	return d, nil
}
