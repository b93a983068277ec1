package exporter

import (
	"bufio"
	"compress/gzip"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"

	"github.com/vantageprobe/vantage/collector"
)

// handleMetrics serves the exporter's own metrics followed by the latest
// result of every scheduled target, in the Prometheus text format, or, with
// tracing on and when the scraper asks for it, in OpenMetrics, the format
// that carries the phase histograms' trace_id exemplars.
func (e *Exporter) handleMetrics(w http.ResponseWriter, r *http.Request) {
	mfs, err := e.reg.Gather()
	if err != nil {
		e.logger.Error("Error gathering metrics", "err", err)
		if len(mfs) == 0 {
			http.Error(w, "error gathering metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	format, tableFormat := e.metricsFormat(r)
	openMetrics := tableFormat == collector.FormatOpenMetrics
	w.Header().Set("Content-Type", string(format))
	gzipped := acceptsGzip(r)
	var out io.Writer = w
	var gz *gzip.Writer
	if gzipped {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	enc := expfmt.NewEncoder(bw, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			e.logger.Error("Error encoding metric family", "family", mf.GetName(), "err", err)
			return
		}
	}
	if !gzipped {
		// The exporter's own series go out before the table is read: a
		// client that wants only those (the scheduler's counters) has them
		// at once.
		err = bw.Flush()
		if err == nil {
			_, err = e.table.WriteFormat(bw, tableFormat)
		}
		if err == nil && openMetrics {
			_, err = expfmt.FinalizeOpenMetrics(bw)
		}
		if ferr := bw.Flush(); err == nil {
			err = ferr
		}
	} else {
		// The registry's series form the first gzip member; the table,
		// compressed on every core, follows as further members, and
		// OpenMetrics' "# EOF" as the last.
		if err = bw.Flush(); err == nil {
			err = gz.Close()
		}
		if err == nil {
			err = e.table.WriteGzipFormat(w, runtime.GOMAXPROCS(0), tableFormat)
		}
		if err == nil && openMetrics {
			gz.Reset(w)
			if _, err = expfmt.FinalizeOpenMetrics(gz); err == nil {
				err = gz.Close()
			}
		}
	}
	if err != nil {
		e.logger.Debug("Error writing scheduled results", "err", err)
	}
}

// metricsFormat negotiates the exposition format of /metrics: OpenMetrics
// when tracing is on and the scraper accepts it, the text format otherwise.
func (e *Exporter) metricsFormat(r *http.Request) (expfmt.Format, collector.Format) {
	if e.tracing.Enabled() {
		f := expfmt.NegotiateAccept(r.Header, expfmt.FmtOpenMetrics_1_0_0, expfmt.FmtOpenMetrics_0_0_1, expfmt.FmtText)
		if f.FormatType() == expfmt.TypeOpenMetrics {
			return f, collector.FormatOpenMetrics
		}
	}
	return expfmt.NewFormat(expfmt.TypeTextPlain), collector.FormatText
}

// acceptsGzip reports whether the client accepts gzip with a non-zero quality.
func acceptsGzip(r *http.Request) bool {
	for part := range strings.SplitSeq(r.Header.Get("Accept-Encoding"), ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}
