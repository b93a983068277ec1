package api

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// ReservedLabels are the label names a target's configured labels cannot
// use: the labels of the exporters' and the coordinator's own series
// (target, module, phase, reason, result, location, state), the labels
// Prometheus gives every scraped series (job, instance), and those of
// histograms and summaries (le, quantile). A configured label of one of
// these names would be renamed exported_<name> by Prometheus, or collide
// with the series' own label.
var ReservedLabels = []string{"target", "module", "phase", "reason", "result", "location", "state", "job", "instance", "le", "quantile"}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// CheckLabelName says what is wrong with a configured label's name: not a
// Prometheus label name, reserved to Prometheus (a leading "__"), or one of
// ReservedLabels.
func CheckLabelName(name string) error {
	switch {
	case !labelNameRE.MatchString(name) || strings.HasPrefix(name, "__"):
		return fmt.Errorf("invalid label name %q", name)
	case slices.Contains(ReservedLabels, name):
		return fmt.Errorf("label name %q is reserved (reserved: %s)", name, strings.Join(ReservedLabels, ", "))
	}
	return nil
}
