package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/vantageprobe/vantage/internal/tracing/otlptest"
)

// Phase spans the checks of each target must have, per attempt: the
// targets are IP addresses, so there is no resolve phase (CONFIGURATION.md:
// a phase that took no time has no span).
var (
	httpsPhases = []string{"connect", "tls", "processing"}
	httpPhases  = []string{"connect", "processing"}
)

// traceOf groups a check span with the spans of its trace.
type traceOf struct {
	root     otlptest.Span
	children []otlptest.Span // spans whose parent is root
}

// checkTraces lists the exporters' check traces: every check span (named
// "check <module>") with its direct children.
func checkTraces(spans []otlptest.Span) []traceOf {
	byParent := map[string][]otlptest.Span{}
	for _, sp := range spans {
		byParent[sp.TraceID()+"/"+sp.ParentSpanID()] = append(byParent[sp.TraceID()+"/"+sp.ParentSpanID()], sp)
	}
	var out []traceOf
	for _, sp := range spans {
		if sp.Resource["service.name"] == "vantage-exporter" && strings.HasPrefix(sp.GetName(), "check ") {
			out = append(out, traceOf{root: sp, children: byParent[sp.TraceID()+"/"+sp.SpanID()]})
		}
	}
	return out
}

// phaseProblem says what is wrong with tr's phase spans, "" when every
// attempt has the wanted phases, each a child of the check span inside its
// time range.
func phaseProblem(tr traceOf, phases []string, attempts int) string {
	if p := childProblem(tr); p != "" {
		return p
	}
	have := map[string]bool{}
	for _, c := range tr.children {
		have[c.Attr("vantage.check.attempt")+"/"+c.GetName()] = true
	}
	for a := 1; a <= attempts; a++ {
		for _, p := range phases {
			if !have[fmt.Sprintf("%d/%s", a, p)] {
				return fmt.Sprintf("no %s span for attempt %d (children %v)", p, a, spanNames(tr.children))
			}
		}
	}
	return ""
}

// childProblem says what is wrong with any phase span of tr: each must lie
// within the check span and name its phase.
func childProblem(tr traceOf) string {
	for _, c := range tr.children {
		if c.GetKind() == tracepb.Span_SPAN_KIND_CLIENT {
			continue // a request of the probe, not a phase
		}
		if c.GetStartTimeUnixNano() < tr.root.GetStartTimeUnixNano() || c.GetEndTimeUnixNano() > tr.root.GetEndTimeUnixNano() {
			return fmt.Sprintf("phase span %s lies outside its check span", c.GetName())
		}
		if c.Attr("vantage.phase") != c.GetName() || c.Attr("vantage.check.attempt") == "" {
			return fmt.Sprintf("phase span %s has vantage.phase %q, vantage.check.attempt %q", c.GetName(), c.Attr("vantage.phase"), c.Attr("vantage.check.attempt"))
		}
	}
	return ""
}

func spanNames(ss []otlptest.Span) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Attr("vantage.check.attempt")+"/"+s.GetName())
	}
	slices.Sort(out)
	return out
}

// verificationProblem says what is missing from the traces of the
// coordinator's verification rounds of target: a "verify <module>" span
// with status Error, a CLIENT child per location asked (naming it), and
// under those the exporters' check spans (source api) of at least two
// locations, which found the target failing and, having answered the
// coordinator 200, have their status unset; "" when all is there.
func verificationProblem(spans []otlptest.Span, target string) string {
	rounds := map[string]bool{} // trace/span ID of the coordinator's rounds of target
	for _, sp := range spans {
		if sp.Resource["service.name"] == "vantage-coordinator" && strings.HasPrefix(sp.GetName(), "verify ") &&
			sp.Attr("vantage.target") == target && sp.Failed() {
			rounds[sp.TraceID()+"/"+sp.SpanID()] = true
		}
	}
	if len(rounds) == 0 {
		return "no failed verification round span from the coordinator"
	}
	calls := map[string]string{} // trace/span ID of a round's client span → location asked
	for _, sp := range spans {
		if sp.Resource["service.name"] == "vantage-coordinator" && sp.GetKind() == tracepb.Span_SPAN_KIND_CLIENT &&
			rounds[sp.TraceID()+"/"+sp.ParentSpanID()] && sp.Attr("http.request.method") == "POST" {
			calls[sp.TraceID()+"/"+sp.SpanID()] = sp.Attr("vantage.location")
		}
	}
	answered := map[string]bool{}
	for _, sp := range spans {
		loc, ok := calls[sp.TraceID()+"/"+sp.ParentSpanID()]
		if !ok || sp.Resource["service.name"] != "vantage-exporter" || sp.Attr("vantage.check.source") != "api" || sp.Attr("vantage.check.success") != "false" {
			continue
		}
		if sp.Failed() || sp.GetKind() != tracepb.Span_SPAN_KIND_SERVER || sp.Attr("http.response.status_code") != "200" {
			return fmt.Sprintf("check span of %s: kind %v, status %v, http.response.status_code %q; want a server span with status unset that answered 200",
				loc, sp.GetKind(), sp.GetStatus().GetCode(), sp.Attr("http.response.status_code"))
		}
		if sp.Attr("vantage.location") != loc {
			return fmt.Sprintf("the coordinator's client span names location %q, the check span under it %q", loc, sp.Attr("vantage.location"))
		}
		answered[loc] = true
	}
	if len(answered) < 2 {
		return fmt.Sprintf("%d verification rounds with %d client spans, with failed checks of %v under them; want two locations or more", len(rounds), len(calls), answered)
	}
	return ""
}

// locationTraces are the traces checkTraces waits for from one location.
type locationTraces struct{ failedOutage, slow traceOf }

// checkTraces waits for the traces of the outage's failed checks and of the
// slow checks from every location, and for the coordinator's verification
// rounds of the outage, and checks them and the other traces received.
func (s *stack) checkTraces(t *testing.T) {
	var found map[string]*locationTraces
	s.procs.waitFor(t, "traces of the outage's failed checks and of the slow checks from every location", 30*time.Second, func() (bool, string) {
		spans := s.otlp.Spans()
		var problems, missing []string
		found, problems = s.findTraces(checkTraces(spans))
		for _, l := range locations {
			if found[l.name].failedOutage.root.Span == nil {
				missing = append(missing, l.name+" failed outage check")
			}
			if found[l.name].slow.root.Span == nil {
				missing = append(missing, l.name+" slow check")
			}
		}
		if p := verificationProblem(spans, s.urls.outage); p != "" {
			missing = append(missing, "coordinator: "+p)
		}
		return len(missing) == 0, fmt.Sprintf("%d spans; missing %v; problems %v", len(spans), missing, problems)
	})
	seen := s.target.tracesSeen(pathOutage)
	for _, l := range locations {
		checkLocationTraces(t, l.name, s.urls.outage, found[l.name], seen)
	}
	s.checkAllTraces(t)
}

// findTraces picks, per location, a trace of a failed scheduled check of
// the outage (with its retry: two attempts) and one of a slow check, each
// with its phase spans; it also returns what was wrong with the others.
func (s *stack) findTraces(traces []traceOf) (map[string]*locationTraces, []string) {
	found := map[string]*locationTraces{}
	for _, l := range locations {
		found[l.name] = &locationTraces{}
	}
	var problems []string
	for _, tr := range traces {
		r := tr.root
		w := found[r.Attr("vantage.location")]
		if w == nil || r.Attr("vantage.check.source") != "scheduler" {
			continue
		}
		switch r.Attr("vantage.target") {
		case s.urls.outage:
			attempts, _ := strconv.Atoi(r.Attr("vantage.check.attempts"))
			if p := phaseProblem(tr, httpsPhases, attempts); p != "" || attempts < 1 {
				problems = append(problems, fmt.Sprintf("outage, %d attempts: %s", attempts, p))
			} else if r.Failed() && attempts == 2 {
				w.failedOutage = tr
			}
		case s.urls.slow:
			if p := phaseProblem(tr, httpPhases, 1); p != "" {
				problems = append(problems, "slow: "+p)
			} else {
				w.slow = tr
			}
		}
	}
	return found, problems
}

// checkLocationTraces checks the failed and the slow check trace of one
// location (outageURL is the outage target); seen holds the trace IDs,
// and trace/parent span IDs, the outage target got in traceparent.
func checkLocationTraces(t *testing.T, name, outageURL string, w *locationTraces, seen map[string]bool) {
	f, sl := w.failedOutage.root, w.slow.root
	if f.Resource["vantage.location"] != name || sl.Resource["vantage.location"] != name {
		t.Errorf("%s: resource vantage.location %q and %q, want %s", name, f.Resource["vantage.location"], sl.Resource["vantage.location"], name)
	}
	if f.GetName() != "check http_2xx" || f.Attr("vantage.check.failure_reason") != "status_code" {
		t.Errorf("%s: failed outage check span %s with reason %q, want check http_2xx, status_code",
			name, f.GetName(), f.Attr("vantage.check.failure_reason"))
	}
	if !seen[f.TraceID()] {
		t.Errorf("%s: trace %s of a failed outage check was not in any traceparent header the target received", name, f.TraceID())
	}
	// Each request is a CLIENT span with the HTTP client conventions'
	// attributes, and the target got it as its parent.
	clients := 0
	for _, c := range w.failedOutage.children {
		if c.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			continue
		}
		clients++
		want := map[string]string{
			"http.request.method": "GET", "url.full": outageURL, "http.response.status_code": "503",
			"server.address": "127.0.0.1", "network.peer.address": "127.0.0.1", "error.type": "503",
		}
		for k, v := range want {
			if got := c.Attr(k); got != v {
				t.Errorf("%s: client span %s: %s = %q, want %q", name, c.GetName(), k, got, v)
			}
		}
		if c.Attr("server.port") == "" || c.Attr("network.peer.port") == "" {
			t.Errorf("%s: client span without server.port or network.peer.port", name)
		}
		if !seen[c.TraceID()+"/"+c.SpanID()] {
			t.Errorf("%s: the target never got client span %s as its parent", name, c.SpanID())
		}
	}
	if clients == 0 {
		t.Errorf("%s: the failed check has no client span (children %v)", name, spanNames(w.failedOutage.children))
	}
	var processing time.Duration
	for _, c := range w.slow.children {
		if c.GetName() == "processing" {
			processing = c.Duration()
		}
	}
	if sl.Failed() || sl.Attr("vantage.check.success") != "true" || sl.Duration() < slowThreshold || processing < slowDelay {
		t.Errorf("%s: slow check span: failed %t, success %q, lasted %s with processing (time to first byte) %s; want a success of at least %s with processing at least %s",
			name, sl.Failed(), sl.Attr("vantage.check.success"), sl.Duration(), processing, slowThreshold, slowDelay)
	}
	t.Logf("%s: failed check trace %s (%s, phases %v); slow check trace %s (%s, processing %s)", name,
		f.TraceID(), f.Duration().Round(time.Millisecond), spanNames(w.failedOutage.children),
		sl.TraceID(), sl.Duration().Round(time.Millisecond), processing.Round(time.Millisecond))
}

// checkFailed reports whether a check span says its check failed: status
// Error (a scheduled check), or, for a server span that answered its
// caller 200 about a failed check (status unset), vantage.check.success.
func checkFailed(s otlptest.Span) bool {
	return s.Failed() || s.Attr("vantage.check.success") == "false"
}

// checkAllTraces checks every check trace received: with
// --tracing.sample-ratio=0 only failed and slow checks are kept, phase
// spans lie within their check, and the one-location target fails from
// fra alone.
func (s *stack) checkAllTraces(t *testing.T) {
	spans, bad := s.otlp.Spans(), s.otlp.Errors()
	for _, b := range bad {
		t.Errorf("bad OTLP request: %s", b)
	}
	traces := checkTraces(spans)
	oneLocation := map[string]int{}
	sources := map[string]int{}
	for _, tr := range traces {
		r := tr.root
		sources[r.Attr("vantage.check.source")]++
		if p := childProblem(tr); p != "" {
			t.Errorf("trace %s (%s of %s from %s): %s", r.TraceID(), r.GetName(), r.Attr("vantage.target"), r.Attr("vantage.location"), p)
		}
		if !checkFailed(r) && r.Duration() < slowThreshold {
			t.Errorf("trace %s of a check that neither failed nor was slow (%s of %s from %s, source %s, %s) was exported",
				r.TraceID(), r.GetName(), r.Attr("vantage.target"), r.Attr("vantage.location"), r.Attr("vantage.check.source"), r.Duration())
		}
		if r.Attr("vantage.target") == s.urls.oneLocation && checkFailed(r) {
			oneLocation[r.Attr("vantage.location")]++
		}
	}
	if len(oneLocation) != 1 || oneLocation["fra"] == 0 {
		t.Errorf("failed checks of the one-location target traced from %v, want fra only", oneLocation)
	}
	t.Logf("%d spans received, %d check traces by source %v", len(spans), len(traces), sources)
}

// alertmanagerInhibited reports whether Alertmanager holds alerts matching
// labels, all inhibited.
func (s *stack) alertmanagerInhibited(labels map[string]string) (bool, string) {
	resp, err := http.Get(s.alertmanager + "/api/v2/alerts")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var list []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return false, err.Error()
	}
	n := 0
	for _, a := range list {
		if !matches(a.Labels, labels) {
			continue
		}
		n++
		if len(a.Status.InhibitedBy) == 0 {
			return false, fmt.Sprintf("%v is %s, not inhibited", a.Labels, a.Status.State)
		}
	}
	return n > 0, fmt.Sprintf("%d matching alerts of %d", n, len(list))
}
