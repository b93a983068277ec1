package exporter

import (
	"sync"
	"time"

	"github.com/vantageprobe/vantage/prober/result"
)

// probeRecord is one recent probe, kept for the landing page and for
// /probe debug output after the fact.
type probeRecord struct {
	ID      int64
	Module  string
	Target  string
	Time    time.Time
	Result  *result.Result
	Debug   string
	Success bool
}

// history is a bounded ring of recent probes.
type history struct {
	mu     sync.Mutex
	limit  int
	nextID int64
	items  []*probeRecord
}

func newHistory(limit int) *history { return &history{limit: limit} }

func (h *history) add(rec *probeRecord) {
	if h.limit == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	rec.ID = h.nextID
	h.nextID++
	if len(h.items) >= h.limit {
		copy(h.items, h.items[1:])
		h.items = h.items[:len(h.items)-1]
	}
	h.items = append(h.items, rec)
}

// list returns the probes, newest first.
func (h *history) list() []*probeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*probeRecord, len(h.items))
	for i, it := range h.items {
		out[len(h.items)-1-i] = it
	}
	return out
}

func (h *history) get(id int64) *probeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range h.items {
		if it.ID == id {
			return it
		}
	}
	return nil
}

// latestFor returns the newest probe of target, nil when none is kept.
func (h *history) latestFor(target string) *probeRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.items) - 1; i >= 0; i-- {
		if h.items[i].Target == target {
			return h.items[i]
		}
	}
	return nil
}
