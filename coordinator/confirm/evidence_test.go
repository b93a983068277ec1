package confirm

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/vantageprobe/vantage/prober/result"
)

// Phases are written and read as the map they replace was: an object of
// name to seconds, keys in order, numbers as encoding/json writes them.
func TestPhasesJSONIsTheMapsJSON(t *testing.T) {
	m := map[string]float64{"transfer": 2.5e-7, "connect": 0.002, "resolve": 0, "tls": 1e21, "processing": 12.000001, `a"<b>&`: 1}
	var p Phases
	for name, s := range m {
		p = p.With(name, s)
	}
	got, err := json.Marshal(Evidence{Phases: p})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(struct {
		Location string             `json:"location"`
		Time     time.Time          `json:"time"`
		Source   string             `json:"source"`
		Result   Outcome            `json:"result"`
		Phases   map[string]float64 `json:"phases,omitempty"`
	}{Phases: m})
	if string(got) != string(want) {
		t.Fatalf("Marshal = %s\nwant      %s", got, want)
	}
	var back Evidence
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	for name, s := range m {
		if back.Phases.Get(name) != s {
			t.Errorf("%s: read back %v, want %v", name, back.Phases.Get(name), s)
		}
	}
	if len(back.Phases) != len(m) || back.Phases.Get("rtt") != 0 {
		t.Errorf("read back %v", back.Phases)
	}
	if out, _ := json.Marshal(Evidence{}); string(out) != `{"location":"","time":"0001-01-01T00:00:00Z","source":"","result":""}` {
		t.Errorf("no phases: %s", out)
	}
}

// Repeated evidence of a location shares its error text, and evidence
// read from a result shares the phase names and the reason.
func TestEvidenceSharesRepeatedText(t *testing.T) {
	r := result.New("http", time.Unix(100, 0), false)
	r.SetPhase(string([]byte("connect")), time.Millisecond)
	r.Fail(result.Reason([]byte("connect_refused")), "dial: %s", "connection refused")
	e1 := EvidenceFrom("ams", SourceReport, r, time.Time{})
	if e1.Phases[0].Name() != phaseNames[1] || unsafeData(e1.Phases[0].Name()) != unsafeData(phaseNames[1]) {
		t.Errorf("phase name %q is a copy", e1.Phases[0].Name())
	}
	if unsafeData(string(e1.Reason)) != unsafeData(string(result.ReasonConnectRefused)) {
		t.Errorf("reason %q is a copy", e1.Reason)
	}
	r2 := *r
	r2.Error = string([]byte(r.Error)) // the same text, decoded again
	e2 := EvidenceFrom("ams", SourceCheck, &r2, time.Time{})
	var ls locState
	ls.see(&e1)
	ls.see(&e2)
	if unsafeData(e2.Error) != unsafeData(e1.Error) || unsafeData(ls.detail.Error) != unsafeData(e1.Error) {
		t.Errorf("repeated error text is not shared: %q, %q", e1.Error, e2.Error)
	}
}

func unsafeData(s string) *byte { return unsafe.StringData(s) }

// A confirmed outage re-verified again and again holds no evidence in the
// machine: each record carries the round's answers, numbered after the
// ones saved before, and the incident keeps only which locations failed.
func TestOpenIncidentHoldsNoEvidence(t *testing.T) {
	m := NewMachine(testConfig("ams", "fra", "sfo"), 0)
	r := mustOneRound(t, m.Report("ams", failing(t0, t0), t0))
	now := t0.Add(time.Second)
	m.RoundDone(key, r.ID, []Evidence{answer("fra", OutcomeFailure, now), answer("sfo", OutcomeSuccess, now)}, now)
	saved := 3
	for i := range 50 {
		now = now.Add(time.Minute)
		eff := m.Due(now)
		if len(eff.Rounds) != 1 {
			t.Fatalf("re-verification %d: %d rounds due, want 1", i, len(eff.Rounds))
		}
		eff = m.RoundDone(key, eff.Rounds[0].ID, []Evidence{answer("fra", OutcomeFailure, now), answer("sfo", OutcomeSuccess, now)}, now)
		rec := lastSaved(t, eff)
		saved += len(rec.Evidence)
		if rec.State != StateDown || rec.EvidenceCount != saved || len(rec.Evidence) == 0 {
			t.Fatalf("re-verification %d saved %+v, want down with the new answers, %d pieces in all", i, rec, saved)
		}
		if inc := m.targets[key].incident; len(inc.Evidence) != 0 || cap(inc.Evidence) != 0 || inc.EvidenceCount != saved {
			t.Fatalf("re-verification %d: the machine's incident holds %d pieces of evidence (count %d), want none (count %d)",
				i, len(inc.Evidence), inc.EvidenceCount, saved)
		}
	}
	if failed := m.targets[key].incident.failedLocations(); !slices.Equal(failed, []string{"ams", "fra"}) {
		t.Errorf("failed locations %v, want ams and fra", failed)
	}
}
