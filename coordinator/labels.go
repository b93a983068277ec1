package coordinator

import (
	"slices"
	"strings"
	"sync"

	"github.com/vantageprobe/vantage/api"
	"github.com/vantageprobe/vantage/collector"
)

// targetLabels holds each target's configured labels as the exporters'
// reports carry them (the latest report wins), so that the coordinator's
// series of a target carry them and its alerts route by them (team, …).
// A target whose reports carried no labels renders without.
type targetLabels struct {
	mu     sync.Mutex
	labels map[api.TargetKey][]collector.Label
}

func newTargetLabels() *targetLabels {
	return &targetLabels{labels: map[api.TargetKey][]collector.Label{}}
}

// observe takes the labels of a batch's reports and of its snapshot's;
// labels with an invalid or reserved name (validateBatch refuses such
// reports; snapshots are not refused for them) are not taken.
func (tl *targetLabels) observe(b *api.Batch) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	take := func(reports []api.Report) {
		for i := range reports {
			r := &reports[i]
			if len(r.Labels) > 0 && validLabels(r.Labels) {
				tl.labels[api.TargetKey{Target: r.Target, Module: r.Module}] = sortedLabels(r.Labels)
			}
		}
	}
	take(b.Reports)
	if b.Snapshot != nil {
		take(b.Snapshot.NotUp)
	}
}

// get returns the labels of a target, nil for none.
func (tl *targetLabels) get(k api.TargetKey) []collector.Label {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.labels[k]
}

// fill sets the labels of every target of a scrape, and forgets the
// labels of targets no longer held.
func (tl *targetLabels) fill(targets []collector.TargetState) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	held := 0
	for i := range targets {
		t := &targets[i]
		if t.Labels = tl.labels[api.TargetKey{Target: t.Target, Module: t.Module}]; t.Labels != nil {
			held++
		}
	}
	if held == len(tl.labels) {
		return
	}
	keep := make(map[api.TargetKey][]collector.Label, held)
	for i := range targets {
		if t := &targets[i]; t.Labels != nil {
			keep[api.TargetKey{Target: t.Target, Module: t.Module}] = t.Labels
		}
	}
	tl.labels = keep
}

func sortedLabels(m map[string]string) []collector.Label {
	out := make([]collector.Label, 0, len(m))
	for name, value := range m {
		out = append(out, collector.Label{Name: name, Value: value})
	}
	slices.SortFunc(out, func(a, b collector.Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func validLabels(m map[string]string) bool {
	for name := range m {
		if api.CheckLabelName(name) != nil {
			return false
		}
	}
	return true
}
