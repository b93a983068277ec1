package result

import "time"

// HTTPStepsDetails holds what an http_steps probe found, step by step, in
// the configured order.
type HTTPStepsDetails struct {
	Steps []StepDetails `json:"steps"`
}

// StepDetails is one step of an http_steps probe. A step that did not run
// (an earlier one failed, or the deadline passed) has Ran unset.
type StepDetails struct {
	Name       string        `json:"name"`
	Ran        bool          `json:"ran"`
	Success    bool          `json:"success"`
	Reason     Reason        `json:"reason,omitempty"`
	Error      string        `json:"error,omitempty"`
	StatusCode int           `json:"status_code,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	Phases     []Phase       `json:"phases,omitempty"`
}

func (d *HTTPStepsDetails) samples(e emitter) {
	for _, s := range d.Steps {
		e.gauge("probe_step_success", "Whether the step ran and passed its assertions and captures (0 for steps after a failed one, which do not run)", boolValue(s.Success), "step", s.Name)
	}
	for _, s := range d.Steps {
		if s.Ran {
			e.gauge("probe_step_duration_seconds", "How long the step took", s.Duration.Seconds(), "step", s.Name)
		}
	}
	for _, s := range d.Steps {
		if s.Ran && s.StatusCode != 0 {
			e.gauge("probe_step_http_status_code", "Response HTTP status code of the step", float64(s.StatusCode), "step", s.Name)
		}
	}
	for _, s := range d.Steps {
		for _, p := range s.Phases {
			e.gauge("probe_step_phase_duration_seconds", "Duration of the step's http request by phase, summed over its redirects", p.Duration.Seconds(), "step", s.Name, "phase", p.Name)
		}
	}
}
