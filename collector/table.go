// Package collector renders probe results and coordinator state as series at
// scrape time.
package collector

import (
	"bytes"
	"compress/gzip"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/vantageprobe/vantage/prober/result"
)

// Row describes one target the table holds.
type Row struct {
	Module, Target string
	// Labels are the target's configured labels, sorted by name; its
	// series carry them after target and module.
	Labels []Label
	// FailureThreshold, when set, is rendered as
	// vantage_probe_failure_threshold.
	FailureThreshold *float64
	// Interval, when set, is rendered as vantage_probe_interval_seconds,
	// so a dashboard can tell a late check from a target checked rarely.
	Interval time.Duration
}

// Label is one configured label of a target.
type Label struct{ Name, Value string }

// Check is the outcome of one scheduled check of a target, after local
// retries.
type Check struct {
	Module, Target string
	Result         *result.Result
	// Attempts is how many attempts the check took.
	Attempts int
	// Planned is when the check was planned to start.
	Planned time.Time
	// TraceID is the hex ID of the check's kept trace, "" for none; the
	// phase histograms carry it as an exemplar.
	TraceID string
}

// Table holds the latest result of every scheduled target and renders them
// on /metrics with the /probe series names plus target, module and the
// target's configured labels.
//
// A scrape over 100,000 targets writes millions of samples, more than
// client_golang's registry can gather in a second, so each result is
// rendered into exposition lines once, when it arrives, and a scrape only
// concatenates them family by family. Series of removed targets disappear
// with their rows.
type Table struct {
	// syncMu serialises Sync; mu guards the swap of rows and sorted.
	syncMu sync.Mutex
	mu     sync.RWMutex
	rows   map[rowKey]*row
	// sorted holds the rows in key order; rebuilt by Sync.
	sorted []*row

	families familyIndex
	phases   *prometheus.HistogramVec
	// minimal leaves out the series minimalOmits names (SetMinimal).
	minimal atomic.Bool
}

// minimalOmits are the series a minimal table leaves out: settings of the
// module or target, which a check cannot change (probe_timeout_seconds,
// vantage_probe_interval_seconds, probe_ip_protocol: the module's
// preferred_ip_protocol unless it fell back), and series another one
// repeats (probe_failed_due_to_regex and probe_failed_due_to_cel:
// probe_failure_info{reason}; probe_dns_lookup_time_seconds: the resolve
// phase of the prober's duration series, when it has one).
var minimalOmits = map[string]bool{
	"probe_timeout_seconds":          true,
	"vantage_probe_interval_seconds": true,
	"probe_ip_protocol":              true,
	"probe_failed_due_to_regex":      true,
	"probe_failed_due_to_cel":        true,
}

// SetMinimal chooses between every series (false, the default) and the
// minimal set, which leaves out the series minimalOmits names. Rows that
// hold a result are rendered again when the choice changes.
func (t *Table) SetMinimal(minimal bool) {
	if t.minimal.Swap(minimal) == minimal {
		return
	}
	t.mu.RLock()
	rows := t.sorted
	t.mu.RUnlock()
	for _, r := range rows {
		// A check recorded meanwhile renders itself, in the new choice:
		// its rendering stays.
		rd := r.rendered.Load()
		if c := r.latest.Load(); c != nil {
			r.rendered.CompareAndSwap(rd, t.render(r, c))
		}
	}
}

type rowKey struct{ module, target string }

type row struct {
	key    rowKey
	labels []byte // `target="…",module="…",team="…"`, rendered once
	// threshold is the target's failure threshold, when it has one.
	threshold    float64
	hasThreshold bool
	interval     atomic.Int64 // time.Duration; a kept row takes the new one
	latest       atomic.Pointer[Check]
	successes    atomic.Uint64
	failures     atomic.Uint64
	rendered     atomic.Pointer[rendering]
}

// rendering is one row's exposition lines, family by family in
// family-name order: segment i holds the lines of family segs[i].family,
// buf[segs[i-1].end:segs[i].end] (from 0 for the first). Each family
// has one segment at most.
type rendering struct {
	buf  []byte
	segs []segment
}

type segment struct{ family, end uint32 }

// NewTable builds an empty table. The phase histograms are registered with reg.
func NewTable(reg prometheus.Registerer) *Table {
	return &Table{
		rows: map[rowKey]*row{},
		phases: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name: "vantage_probe_phase_duration_seconds",
			Help: "Duration of each phase of scheduled checks, across all targets of a module. " +
				"Checks whose trace was kept leave its trace_id as an exemplar (OpenMetrics).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"module", "phase"}),
	}
}

// Sync makes the table hold exactly the given rows: new ones get no series
// until their first check, removed ones are dropped. The new rows are
// built beside the old ones and swapped in at once, so results recorded
// and scrapes served meanwhile wait for the swap only, not for the build.
func (t *Table) Sync(rows []Row) {
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	// Only Sync replaces t.rows and t.sorted, and never changes them in
	// place: under syncMu they can be read without t.mu.
	old, oldSorted := t.rows, t.sorted
	held := make(map[rowKey]*row, len(rows))
	var labels []byte // scratch: a kept row allocates nothing
	for i := range rows {
		rw := &rows[i]
		key := rowKey{rw.Module, rw.Target}
		labels = appendTargetLabels(labels[:0], rw)
		if r, ok := old[key]; ok && r.renders(labels, rw.FailureThreshold) {
			r.interval.Store(int64(rw.Interval))
			held[key] = r
			continue
		}
		held[key] = newRow(rw)
	}
	sorted := oldSorted
	if !sameRows(held, old) {
		// Rows came or went: sort again. An unchanged set keeps its order.
		sorted = make([]*row, 0, len(held))
		for _, r := range held {
			sorted = append(sorted, r)
		}
		slices.SortFunc(sorted, func(a, b *row) int {
			if c := strings.Compare(a.key.module, b.key.module); c != 0 {
				return c
			}
			return strings.Compare(a.key.target, b.key.target)
		})
	}
	t.mu.Lock()
	t.rows, t.sorted = held, sorted
	t.mu.Unlock()
}

// sameRows reports whether a and b hold the same rows under the same keys.
func sameRows(a, b map[rowKey]*row) bool {
	if len(a) != len(b) {
		return false
	}
	for k, r := range a {
		if b[k] != r {
			return false
		}
	}
	return true
}

func newRow(rw *Row) *row {
	r := &row{key: rowKey{rw.Module, rw.Target}, labels: renderTargetLabels(rw)}
	r.interval.Store(int64(rw.Interval))
	if rw.FailureThreshold != nil {
		r.threshold, r.hasThreshold = *rw.FailureThreshold, true
	}
	return r
}

// renders reports whether r renders these labels and failure threshold,
// so a kept target keeps its row and counters.
func (r *row) renders(labels []byte, threshold *float64) bool {
	if !bytes.Equal(r.labels, labels) || r.hasThreshold != (threshold != nil) {
		return false
	}
	return threshold == nil || r.threshold == *threshold
}

// Latest returns the latest check recorded of a target and the target's
// interval; ok is false when the table does not hold the target or holds
// no check of it yet.
func (t *Table) Latest(module, target string) (c Check, interval time.Duration, ok bool) {
	t.mu.RLock()
	r := t.rows[rowKey{module, target}]
	t.mu.RUnlock()
	if r == nil {
		return Check{}, 0, false
	}
	p := r.latest.Load()
	if p == nil {
		return Check{}, 0, false
	}
	return *p, time.Duration(r.interval.Load()), true
}

// Record stores a check's outcome. Outcomes of targets the table does not
// hold (removed meanwhile) are ignored.
func (t *Table) Record(c Check) {
	t.mu.RLock()
	r := t.rows[rowKey{c.Module, c.Target}]
	t.mu.RUnlock()
	if r == nil {
		return
	}
	if c.Result.Success {
		r.successes.Add(1)
	} else {
		r.failures.Add(1)
	}
	var exemplar prometheus.Labels
	if c.TraceID != "" {
		exemplar = prometheus.Labels{"trace_id": c.TraceID}
	}
	for _, p := range c.Result.Phases {
		obs := t.phases.WithLabelValues(c.Module, p.Name)
		if eo, ok := obs.(prometheus.ExemplarObserver); ok && exemplar != nil {
			eo.ObserveWithExemplar(p.Duration.Seconds(), exemplar)
			continue
		}
		obs.Observe(p.Duration.Seconds())
	}
	r.latest.Store(&c)
	r.rendered.Store(t.render(r, &c))
}

func (t *Table) render(r *row, c *Check) *rendering {
	sc := renderScratch.Get().(*renderBuffers)
	buf, spans := sc.buf[:0], sc.spans[:0]
	// line adds one line of family name: the series name+suffix, with le
	// (a histogram bucket's) after the other labels when set.
	line := func(name, help, typ, suffix string, labelNames, labelValues []string, le string, value float64) {
		fam := t.families.index(name, help, typ)
		start := len(buf)
		buf = append(buf, name...)
		buf = append(buf, suffix...)
		buf = append(buf, '{')
		buf = append(buf, r.labels...)
		for i, n := range labelNames {
			buf = append(buf, ',')
			buf = append(buf, n...)
			buf = append(buf, '=', '"')
			buf = appendEscaped(buf, labelValues[i])
			buf = append(buf, '"')
		}
		if le != "" {
			buf = append(buf, `,le="`...)
			buf = append(buf, le...)
			buf = append(buf, '"')
		}
		buf = append(buf, '}', ' ')
		buf = appendFloat(buf, value)
		buf = append(buf, '\n')
		if n := len(spans); n > 0 && spans[n-1].family == fam {
			spans[n-1].end = len(buf)
			return
		}
		spans = append(spans, span{family: fam, start: start, end: len(buf)})
	}
	add := func(name, help, typ string, labelNames, labelValues []string, value float64) {
		line(name, help, typ, "", labelNames, labelValues, "", value)
	}
	minimal := t.minimal.Load()
	resolvePhase := false // the result has a "resolve" phase series
	c.Result.Samples(func(s result.Sample) {
		if minimal {
			if len(s.LabelNames) == 1 && s.LabelNames[0] == "phase" && s.LabelValues[0] == "resolve" {
				resolvePhase = true
			}
			if minimalOmits[s.Name] || (resolvePhase && s.Name == "probe_dns_lookup_time_seconds") {
				return
			}
		}
		h := s.Histogram
		if s.Type != result.HistogramType || h == nil {
			add(s.Name, s.Help, typeName(s.Type), s.LabelNames, s.LabelValues, s.Value)
			return
		}
		for i, ub := range h.UpperBounds {
			line(s.Name, s.Help, "histogram", "_bucket", s.LabelNames, s.LabelValues, string(appendFloat(nil, ub)), float64(h.Cumulative[i]))
		}
		line(s.Name, s.Help, "histogram", "_bucket", s.LabelNames, s.LabelValues, "+Inf", float64(h.Count))
		line(s.Name, s.Help, "histogram", "_sum", s.LabelNames, s.LabelValues, "", h.Sum)
		line(s.Name, s.Help, "histogram", "_count", s.LabelNames, s.LabelValues, "", float64(h.Count))
	})
	add("vantage_probe_attempts", "Attempts the latest scheduled check took, local retries included.", "gauge", nil, nil, float64(c.Attempts))
	add("vantage_probe_last_check_timestamp_seconds", "When the latest scheduled check was planned to start.", "gauge", nil, nil, float64(c.Planned.UnixNano())/1e9)
	checks := "vantage_probe_checks_total"
	checksHelp := "Scheduled checks by result, after local retries."
	add(checks, checksHelp, "counter", []string{"result"}, []string{"success"}, float64(r.successes.Load()))
	add(checks, checksHelp, "counter", []string{"result"}, []string{"failure"}, float64(r.failures.Load()))
	if r.hasThreshold {
		add("vantage_probe_failure_threshold", "Failed checks in the failure-ratio alert's window this target tolerates, from its failure_threshold label.", "gauge", nil, nil, r.threshold)
	}
	if iv := time.Duration(r.interval.Load()); iv > 0 && !minimal {
		add("vantage_probe_interval_seconds", "Configured interval between the scheduled checks of the target.", "gauge", nil, nil, iv.Seconds())
	}
	rd := packRendering(buf, spans, t.families.snapshot())
	sc.buf, sc.spans = buf[:0], spans[:0]
	renderScratch.Put(sc)
	return rd
}

// packRendering copies the lines of a render buffer out into the rendering
// a row holds until its next check: family by family in name order, so a
// scrape merges all rows in one pass (spans of one family emitted apart
// become one segment), and without the spare capacity of the buffer's
// growth. It sorts spans.
func packRendering(buf []byte, spans []span, fams []family) *rendering {
	slices.SortStableFunc(spans, func(a, b span) int { return strings.Compare(fams[a.family].name, fams[b.family].name) })
	nsegs := 0
	for i, sp := range spans {
		if i == 0 || sp.family != spans[i-1].family {
			nsegs++
		}
	}
	rd := &rendering{buf: make([]byte, 0, len(buf)), segs: make([]segment, 0, nsegs)}
	for i, sp := range spans {
		rd.buf = append(rd.buf, buf[sp.start:sp.end]...)
		if i > 0 && sp.family == spans[i-1].family {
			rd.segs[len(rd.segs)-1].end = uint32(len(rd.buf))
			continue
		}
		rd.segs = append(rd.segs, segment{family: uint32(sp.family), end: uint32(len(rd.buf))})
	}
	return rd
}

// span is a run of one family's lines in the render buffer.
type span struct{ family, start, end int }

// renderBuffers are the buffers a row is rendered in before its lines
// are copied out at their size.
type renderBuffers struct {
	buf   []byte
	spans []span
}

var renderScratch = sync.Pool{New: func() any { return &renderBuffers{buf: make([]byte, 0, 4096)} }}

// Format is an exposition format the table renders in.
type Format int

const (
	// FormatText is the Prometheus text format 0.0.4.
	FormatText Format = iota
	// FormatOpenMetrics is OpenMetrics 1.0. The table's lines are a part
	// of an exposition; the caller writes the final "# EOF" line.
	FormatOpenMetrics
)

// scrape is a consistent view of the table for one scrape.
type scrape struct {
	format Format
	fams   []family
	order  []int // indexes of the families present, in name order
	rows   []cursor
}

// cursor is where a scrape is in one row's rendering. It holds the
// rendering's slices themselves, so the scrape's walk over 100,000 rows,
// family after family, reads its cursors in order and each row's lines
// where they begin, without a pointer to follow first.
type cursor struct {
	buf  []byte
	segs []segment
	next int    // the next segment to write
	off  uint32 // where it begins in buf
}

func (t *Table) snapshot(format Format) *scrape {
	// Sync replaces sorted and never changes it in place: the scrape
	// reads the slice it got without copying it.
	t.mu.RLock()
	rows := t.sorted
	t.mu.RUnlock()
	sc := &scrape{format: format, rows: make([]cursor, 0, len(rows))}
	for _, r := range rows {
		if rd := r.rendered.Load(); rd != nil {
			sc.rows = append(sc.rows, cursor{buf: rd.buf, segs: rd.segs})
		}
	}
	// Families only grow: taken after the renderings, the list names
	// every family they refer to, also one a check added meanwhile.
	sc.fams = t.families.snapshot()
	present := make([]bool, len(sc.fams))
	for i := range sc.rows {
		for _, s := range sc.rows[i].segs {
			present[s.family] = true
		}
	}
	for i, ok := range present {
		if ok {
			sc.order = append(sc.order, i)
		}
	}
	slices.SortFunc(sc.order, func(a, b int) int { return strings.Compare(sc.fams[a].name, sc.fams[b].name) })
	return sc
}

// writeFamily writes family f's lines of rows, with the family's HELP and
// TYPE lines first when header is set. Each row's segments are in
// family-name order, so the rows' cursors, advanced family by family in
// name order, walk every row once.
func (sc *scrape) writeFamily(w *batchWriter, f int, rows []cursor, header bool) {
	if header {
		w.write(sc.header(sc.fams[f]))
	}
	fam := uint32(f)
	for i := range rows {
		c := &rows[i]
		if c.next < len(c.segs) && c.segs[c.next].family == fam {
			end := c.segs[c.next].end
			w.write(c.buf[c.off:end])
			c.next++
			c.off = end
		}
	}
}

// header renders a family's HELP and TYPE lines. OpenMetrics names a
// counter family without its _total suffix and escapes quotes in HELP.
func (sc *scrape) header(fam family) []byte {
	name, help := fam.name, fam.help
	if sc.format == FormatOpenMetrics {
		help = fam.omHelp
		if fam.typ == "counter" {
			name = strings.TrimSuffix(name, "_total")
		}
	}
	head := make([]byte, 0, 2*len(name)+len(help)+24)
	head = append(head, "# HELP "...)
	head = append(head, name...)
	head = append(head, ' ')
	head = append(head, help...)
	head = append(head, "\n# TYPE "...)
	head = append(head, name...)
	head = append(head, ' ')
	head = append(head, fam.typ...)
	head = append(head, '\n')
	return head
}

// WriteTo writes every held result in the Prometheus text format.
func (t *Table) WriteTo(w io.Writer) (int64, error) {
	return t.WriteFormat(w, FormatText)
}

// WriteFormat writes every held result in format, in writes of up to
// batchSize bytes.
func (t *Table) WriteFormat(w io.Writer, format Format) (int64, error) {
	sc := t.snapshot(format)
	bw := newBatchWriter(w)
	for _, f := range sc.order {
		sc.writeFamily(bw, f, sc.rows, true)
		if bw.err != nil {
			break
		}
	}
	err := bw.release()
	return bw.n, err
}

// WriteGzip writes what WriteTo writes, gzip-compressed by up to workers
// goroutines. Each worker compresses its share of the rows family by family
// into gzip members; the members are written in order, which makes one
// valid multi-member gzip stream (RFC 1952) of the same text.
func (t *Table) WriteGzip(w io.Writer, workers int) error {
	return t.WriteGzipFormat(w, workers, FormatText)
}

// WriteGzipFormat writes what WriteFormat writes, gzip-compressed as
// WriteGzip does.
func (t *Table) WriteGzipFormat(w io.Writer, workers int, format Format) error {
	sc := t.snapshot(format)
	workers = max(1, min(workers, len(sc.rows)))
	return writeGzipParts(w, workers, len(sc.order), func(k int) func(i int, bw *batchWriter) {
		part := sc.rows[k*len(sc.rows)/workers : (k+1)*len(sc.rows)/workers]
		return func(i int, bw *batchWriter) { sc.writeFamily(bw, sc.order[i], part, k == 0) }
	})
}

// writeGzipParts writes an exposition of families, split into workers
// parts, gzip-compressed by one goroutine per part. part(k) is called in
// part k's goroutine and returns what writes that part's lines of the
// i-th family (the first part writes the family's header too). Each part's
// share of each family becomes one gzip member; the members are written in
// family order, then part order, which makes one valid multi-member gzip
// stream (RFC 1952) of the whole text.
func writeGzipParts(w io.Writer, workers, families int, part func(k int) func(i int, bw *batchWriter)) error {
	chunks := make([][][]byte, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() { chunks[k] = gzipMembers(families, part(k)) })
	}
	wg.Wait()
	for i := range families {
		for k := range workers {
			if _, err := w.Write(chunks[k][i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// gzipMembers compresses each of families families, written by write,
// into a gzip member of its own.
func gzipMembers(families int, write func(i int, bw *batchWriter)) [][]byte {
	members := make([][]byte, families)
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	bw := newBatchWriter(gz)
	for i := range families {
		buf := &bytes.Buffer{}
		gz.Reset(buf)
		write(i, bw)
		_ = bw.flush()
		_ = gz.Close()
		members[i] = buf.Bytes()
	}
	_ = bw.release()
	return members
}

// batchSize is how many bytes a batchWriter gathers before it writes them:
// a scrape of 100,000 targets (about 200 MiB) is a thousand writes.
const batchSize = 256 << 10

// batchWriter gathers what it is given in a buffer of its own and hands it
// to w in writes of up to batchSize bytes, so that copying a row's lines
// costs an append, not a call through an interface. n counts the bytes w
// took; err is w's first error, after which nothing more is written.
type batchWriter struct {
	w      io.Writer
	buf    []byte
	pooled *[]byte // where buf came from, given back by release
	n      int64
	err    error
}

var batchBuffers = sync.Pool{New: func() any { b := make([]byte, 0, batchSize); return &b }}

func newBatchWriter(w io.Writer) *batchWriter {
	p := batchBuffers.Get().(*[]byte)
	return &batchWriter{w: w, buf: (*p)[:0], pooled: p}
}

func (b *batchWriter) write(p []byte) {
	if len(p) > cap(b.buf)-len(b.buf) {
		b.writeLarge(p)
		return
	}
	b.buf = append(b.buf, p...)
}

// writeLarge writes what the buffer holds, then keeps p, or writes it at
// once when it is larger than the buffer.
func (b *batchWriter) writeLarge(p []byte) {
	if b.flush() != nil {
		return
	}
	if len(p) <= cap(b.buf) {
		b.buf = append(b.buf, p...)
		return
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	b.err = err
}

// flush writes what the buffer holds.
func (b *batchWriter) flush() error {
	if b.err != nil || len(b.buf) == 0 {
		b.buf = b.buf[:0]
		return b.err
	}
	n, err := b.w.Write(b.buf)
	b.n += int64(n)
	b.err = err
	b.buf = b.buf[:0]
	return err
}

// release flushes the buffer and gives it back for another writer; b must
// not be written to afterwards.
func (b *batchWriter) release() error {
	err := b.flush()
	*b.pooled = b.buf[:0]
	batchBuffers.Put(b.pooled)
	b.buf, b.pooled = nil, nil
	return err
}

// familyIndex numbers the series families seen, so rows can refer to them by
// a small integer.
type familyIndex struct {
	mu    sync.Mutex
	byKey sync.Map // name → int
	// list is replaced, never changed in place, when a family is added:
	// a snapshot is a load.
	list atomic.Pointer[[]family]
}

// family is one series family; help is escaped for the text format,
// omHelp for OpenMetrics.
type family struct{ name, help, omHelp, typ string }

func (fi *familyIndex) index(name, help, typ string) int {
	if i, ok := fi.byKey.Load(name); ok {
		return i.(int)
	}
	fi.mu.Lock()
	defer fi.mu.Unlock()
	if i, ok := fi.byKey.Load(name); ok {
		return i.(int)
	}
	list := append(slices.Clone(fi.snapshot()), family{name: name, help: escapeHelp(help), omHelp: escapeOpenMetricsHelp(help), typ: typ})
	fi.list.Store(&list)
	fi.byKey.Store(name, len(list)-1)
	return len(list) - 1
}

// snapshot returns the families seen so far; the caller must not change
// the slice.
func (fi *familyIndex) snapshot() []family {
	if l := fi.list.Load(); l != nil {
		return *l
	}
	return nil
}

func renderTargetLabels(t *Row) []byte {
	return appendTargetLabels(make([]byte, 0, 64), t)
}

// appendTargetLabels appends a target's labels: `target="…",module="…"`,
// then its configured labels.
func appendTargetLabels(b []byte, t *Row) []byte {
	b = append(b, `target="`...)
	b = appendEscaped(b, t.Target)
	b = append(b, `",module="`...)
	b = appendEscaped(b, t.Module)
	b = append(b, '"')
	for _, l := range t.Labels {
		b = append(b, ',')
		b = append(b, l.Name...)
		b = append(b, '=', '"')
		b = appendEscaped(b, l.Value)
		b = append(b, '"')
	}
	return b
}

// appendEscaped escapes a label value for the text format.
func appendEscaped(b []byte, s string) []byte {
	if !needsEscape(s) {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return b
}

func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c == '"' || c == '\n' {
			return true
		}
	}
	return false
}

func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func escapeOpenMetricsHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(s)
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
