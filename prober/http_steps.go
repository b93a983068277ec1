package prober

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"

	"github.com/vantageprobe/vantage/config"
	"github.com/vantageprobe/vantage/prober/endpoint"
	"github.com/vantageprobe/vantage/prober/result"
)

// httpStepsProber is an http_steps module prepared for probing: one client
// (TLS, authentication, proxy) shared by the steps, and each step's
// request template and checks, built as the http prober builds its own.
type httpStepsProber struct {
	cfg   config.HTTPStepsProbe
	steps []*httpStep
}

// httpStep is one prepared step. Its url, headers and body are expanded
// with the probe's variables before each run.
type httpStep struct {
	cfg      config.HTTPStep
	template httpProber
}

func newHTTPStepsProbe(m config.Module) (probeFunc, error) {
	c := m.HTTPSteps
	if len(c.Steps) == 0 {
		return nil, fmt.Errorf("http_steps.steps: no step")
	}
	client, err := newHTTPClient(c.HTTPProbe(&config.HTTPStep{}), m.Destinations)
	if err != nil {
		return nil, err
	}
	q := &httpStepsProber{cfg: c}
	for i := range c.Steps {
		s := &c.Steps[i]
		h, err := newHTTPProber(c.HTTPProbe(s), client)
		if err != nil {
			return nil, fmt.Errorf("http_steps.steps[%d]: %w", i, err)
		}
		step := &httpStep{cfg: *s, template: *h}
		if err := step.compileCaptures(); err != nil {
			return nil, fmt.Errorf("http_steps.steps[%d]: %w", i, err)
		}
		q.steps = append(q.steps, step)
	}
	return q.probe, nil
}

// compileCaptures compiles the captures' expressions; validation compiles
// them when the configuration is loaded, a module built in code may not be.
func (s *httpStep) compileCaptures() error {
	s.cfg.Capture = slices.Clone(s.cfg.Capture)
	for i := range s.cfg.Capture {
		c := &s.cfg.Capture[i]
		field := fmt.Sprintf("capture[%d]", i)
		if c.Regexp.IsSet() && c.Regexp.Regexp == nil {
			res, err := compileRegexps(field, []config.Regexp{c.Regexp})
			if err != nil {
				return err
			}
			c.Regexp.Regexp = res[0]
		}
		var err error
		if c.CEL, err = compileCEL(field, c.CEL); err != nil {
			return err
		}
	}
	return nil
}

// stepResponse receives the headers and the body of a step's final
// response from the http prober, for the step's captures.
type stepResponse struct {
	header http.Header
	body   []byte
}

type stepResponseKey struct{}

// stepResponseFrom returns the sink of the step a request belongs to, nil
// for a plain http probe.
func stepResponseFrom(ctx context.Context) *stepResponse {
	s, _ := ctx.Value(stepResponseKey{}).(*stepResponse)
	return s
}

func (q *httpStepsProber) probe(ctx context.Context, target string, p Params, r *result.Result) {
	r.InitPhases(httpPhases...)
	d := &result.HTTPStepsDetails{Steps: make([]result.StepDetails, len(q.steps))}
	r.HTTPSteps = d
	for i, s := range q.steps {
		d.Steps[i].Name = s.cfg.Name
	}
	base, err := endpoint.HTTP(target)
	if err != nil {
		r.Fail(result.ReasonInvalidTarget, "%v", err)
		return
	}
	vars, err := q.secrets()
	if err != nil {
		p.Logger.Error("Cannot read a secret", "err", err)
		r.Fail(result.ReasonConfigError, "%v", err)
		return
	}
	vars[config.TargetVariable] = base.String()
	for i, s := range q.steps {
		sd := &d.Steps[i]
		if !s.run(ctx, base, vars, p, r, sd) {
			r.Fail(sd.Reason, "step %q: %s", s.cfg.Name, sd.Error)
			return
		}
	}
}

// secrets reads the module's secrets, at every probe so that a rotated
// file is picked up.
func (q *httpStepsProber) secrets() (map[string]string, error) {
	vars := make(map[string]string, len(q.cfg.Secrets)+4)
	for name, file := range q.cfg.Secrets {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading secret %q: %w", name, err)
		}
		vars[name] = strings.TrimSpace(string(b))
	}
	return vars, nil
}

// run makes the step's request with the http prober, records it in sd and
// in r (phases summed over the steps), and adds its captures to vars. It
// reports whether the step passed.
func (s *httpStep) run(ctx context.Context, base *url.URL, vars map[string]string, p Params, r *result.Result, sd *result.StepDetails) bool {
	value := func(name string) string { return vars[name] }
	h := s.template
	u := base
	if s.cfg.URL != "" {
		ref, err := url.Parse(config.ExpandVariables(s.cfg.URL, value))
		if err != nil {
			sd.Ran, sd.Reason, sd.Error = true, result.ReasonInvalidTarget, fmt.Sprintf("step URL: %v", err)
			return false
		}
		u = base.ResolveReference(ref)
	}
	cfg := h.cfg
	cfg.Headers = make(map[string]string, len(s.cfg.Headers))
	for k, v := range s.cfg.Headers {
		cfg.Headers[k] = config.ExpandVariables(v, value)
	}
	h.header, h.host = requestHeader(cfg)
	if s.cfg.Body != "" {
		h.body = []byte(config.ExpandVariables(s.cfg.Body, value))
	}

	sink := &stepResponse{}
	sr := result.New("http", time.Now(), p.Tracing)
	logger := p.Logger.With("step", s.cfg.Name)
	logger.Info("Beginning step", "method", h.method)
	h.probe(context.WithValue(ctx, stepResponseKey{}, sink), u.String(), Params{Hostname: p.Hostname, Logger: logger, Tracing: p.Tracing}, sr)
	if sr.Reason == result.ReasonNone {
		if err := s.capture(ctx, sink, vars); err != nil {
			logger.Error("Capture failed", "err", err)
			sr.Fail(result.ReasonCaptureFailed, "%v", err)
		}
	}

	sd.Ran, sd.Duration, sd.Phases = true, time.Since(sr.Start), sr.Phases
	sd.Success, sd.Reason, sd.Error = sr.Reason == result.ReasonNone, sr.Reason, sr.Error
	if sr.HTTP != nil {
		sd.StatusCode = sr.HTTP.StatusCode
	}
	for _, ph := range sr.Phases {
		r.SetPhase(ph.Name, ph.Duration)
	}
	offset := sr.Start.Sub(r.Start)
	for _, t := range sr.Timeline {
		t.Start += offset
		r.Timeline = append(r.Timeline, t)
	}
	if r.Resolve == nil {
		r.Resolve = sr.Resolve
	}
	if sr.TLS != nil {
		r.TLS = sr.TLS
	}
	logger.Info("Step done", "success", sd.Success, "duration_seconds", sd.Duration.Seconds())
	return sd.Success
}

// capture evaluates the step's captures on its response into vars.
func (s *httpStep) capture(ctx context.Context, resp *stepResponse, vars map[string]string) error {
	var doc any
	parsed := false
	for _, c := range s.cfg.Capture {
		var v string
		switch {
		case c.CEL != nil:
			if !parsed {
				if err := json.Unmarshal(resp.body, &doc); err != nil {
					return fmt.Errorf("capture %q: body is not JSON: %v", c.Name, err)
				}
				parsed = true
			}
			out, _, err := c.CEL.ContextEval(ctx, map[string]any{"body": doc})
			if err != nil {
				return fmt.Errorf("capture %q: evaluating CEL expression %q: %v", c.Name, c.CEL, err)
			}
			str := out.ConvertToType(types.StringType)
			if types.IsError(str) {
				return fmt.Errorf("capture %q: CEL expression %q gave a %s, not a string, number or boolean", c.Name, c.CEL, out.Type().TypeName())
			}
			v = str.Value().(string)
		case c.Header != "":
			values := resp.header.Values(c.Header)
			if len(values) == 0 {
				return fmt.Errorf("capture %q: no header %q in the response", c.Name, c.Header)
			}
			v = values[0]
			if c.Regexp.IsSet() {
				m := c.Regexp.FindStringSubmatch(v)
				if m == nil {
					return fmt.Errorf("capture %q: header %q does not match regexp %q", c.Name, c.Header, c.Regexp)
				}
				v = firstGroup(m)
			}
		default:
			m := c.Regexp.FindSubmatch(resp.body)
			if m == nil {
				return fmt.Errorf("capture %q: body does not match regexp %q", c.Name, c.Regexp)
			}
			v = string(m[min(1, len(m)-1)]) // the first group, or the whole match
		}
		vars[c.Name] = v
	}
	return nil
}

// firstGroup is a regexp match's first group, or the whole match when the
// regexp has no group.
func firstGroup(m []string) string {
	return m[min(1, len(m)-1)]
}
